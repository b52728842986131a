"""Whether a process is still there, for the tests that stop or kill compute processes."""

from __future__ import annotations


def alive(process_id: int) -> bool:
    """True while the process exists and is not a zombie (a killed child not yet reaped is gone
    for our purposes: it runs nothing)."""
    try:
        with open(f"/proc/{process_id}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
