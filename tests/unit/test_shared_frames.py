"""SharedFrames' choice of directory when a write fails half way (the pool tests, with real
processes, are tests/integration/test_compute_shm.py)."""

from __future__ import annotations

import errno
from pathlib import Path

from adapters.compute.shared_frames import SharedFrames


class _FillsTheDisk:
    """A frame whose write runs out of space after some bytes, as on a tmpfs that filled up
    between the free-space check and the write (another task wrote beside it)."""

    def __init__(self, fail_in: Path) -> None:
        self.fail_in = fail_in

    def estimated_size(self) -> int:
        return 10

    def write_ipc(self, path: Path, compression: str) -> None:
        Path(path).write_bytes(b"partial")
        if Path(path).parent == self.fail_in:
            raise OSError(errno.ENOSPC, "No space left on device")


def test_a_write_that_runs_out_of_space_leaves_nothing_and_falls_back(tmp_path: Path) -> None:
    preferred, fallback = tmp_path / "shm", tmp_path / "tmp"
    preferred.mkdir()
    fallback.mkdir()
    frames = SharedFrames(preferred, fallback=fallback, free_space=lambda d: 1 << 30)
    written = frames.write(_FillsTheDisk(fail_in=preferred))  # type: ignore[arg-type]
    assert written is not None and written.parent == fallback
    assert list(preferred.iterdir()) == []


def test_when_every_directory_runs_out_nothing_is_left_and_the_pipe_takes_the_frame(tmp_path: Path) -> None:
    frames = SharedFrames(tmp_path, fallback=tmp_path, free_space=lambda d: 1 << 30)
    assert frames.directories == (tmp_path,)
    assert frames.write(_FillsTheDisk(fail_in=tmp_path)) is None  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
