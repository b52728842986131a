"""How much memory this replica may use: the cgroup limit when there is one, else a share of RAM."""

from __future__ import annotations

from pathlib import Path

# Without a container limit the replica shares the machine (a developer's laptop, a VM running the
# database too): half the RAM leaves the other half to the system and its neighbours, and is still
# far more than any ordinary request needs (the bench's 1M x 20 training grows a worker by < 1 GB).
RAM_SHARE = 0.5
# cgroup v1 writes "no limit" as a huge number (PAGE_COUNTER_MAX pages); anything past this is none.
_UNLIMITED = 1 << 60


def _cgroup_v2_limit(root: Path) -> int | None:
    try:
        text = (root / "memory.max").read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        limit = int(text)
    except ValueError:
        return None
    return limit if 0 < limit < _UNLIMITED else None


def _cgroup_v1_limit(root: Path) -> int | None:
    try:
        limit = int((root / "memory" / "memory.limit_in_bytes").read_text().strip())
    except (OSError, ValueError):
        return None
    return limit if 0 < limit < _UNLIMITED else None


def _ram_bytes(meminfo: Path) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_limit_bytes(
    override_mb: float | None = None,
    cgroup_root: Path = Path("/sys/fs/cgroup"),
    meminfo: Path = Path("/proc/meminfo"),
) -> int | None:
    """The replica's memory limit: the setting, else cgroup v2 `memory.max`, else cgroup v1
    `memory.limit_in_bytes`, else RAM_SHARE of the RAM; None when nothing can be read."""
    if override_mb is not None:
        return int(override_mb * (1 << 20))
    limit = _cgroup_v2_limit(cgroup_root) or _cgroup_v1_limit(cgroup_root)
    if limit is not None:
        return limit
    ram = _ram_bytes(meminfo)
    return int(ram * RAM_SHARE) if ram is not None else None
