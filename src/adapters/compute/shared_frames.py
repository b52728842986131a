"""Frames cross to the pool's processes as files in shared memory, not as bytes through the pipe.

The server writes each polars DataFrame of a task once, as an uncompressed Arrow IPC file, and
pickles only its path; the worker memory-maps the file, so its frame points into the pages the
server wrote: no copy through the pipe, and none in the worker (its anonymous memory does not grow
by the frame's size, see tests/integration/test_compute_shm.py). The server removes the files when
the task ends, however it ends; files left by a server that itself died are swept at the next pool
start, which is why each name carries its writer's pid and start time.

Module level imports are standard library only: the worker imports this module before it sets its
thread limits, and polars or pyarrow must not load before that.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import re
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

_PREFIX = "ml-worker-"
_NAME = re.compile(r"^ml-worker-(\d+)-(\d+)-[0-9a-f]{32}\.arrow$")
_SHM = Path("/dev/shm")
_PROC = Path("/proc/self/stat").exists()
_FILE_TAG = "arrow-file"
# Room beyond the frame's estimated size: IPC metadata and the 64-byte alignment of every buffer.
_HEADROOM = 1 << 20


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged writer may still use in `directory` (0 when it cannot be read)."""
    try:
        stats = os.statvfs(directory)
    except OSError:
        return 0
    return stats.f_bavail * stats.f_frsize


def _start_time(pid: int) -> int | None:
    """The process's start, in clock ticks since boot (None: no such process, or a zombie). With
    the pid it names one process: a server restarted in a new container is often pid 1 again,
    while a Kubernetes emptyDir at /dev/shm outlives the container."""
    if not _PROC:  # not Linux: the pid alone has to do
        return 0 if _pid_exists(pid) else None
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[19])


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _writer_alive(pid: int, started: int) -> bool:
    now = _start_time(pid)
    return now is not None and (started == 0 or now == 0 or now == started)


@dataclass(eq=False)
class TaskPayload:
    """A pickled task and the frame files it names; `remove` is idempotent."""

    data: bytes
    files: list[Path] = field(default_factory=list)
    piped_frames: int = 0  # frames that found no room in any directory and travel in `data`

    def remove(self) -> None:
        while self.files:
            with contextlib.suppress(FileNotFoundError):
                self.files.pop().unlink()


class SharedFrames:
    """Writes a task's frames to the first directory with room for them: `directory` (default
    /dev/shm when it exists), else the system temp dir; with room in neither, the frame is pickled
    into the payload as before. `free_space` is injectable for tests."""

    def __init__(
        self,
        directory: str | Path | None = None,
        *,
        fallback: str | Path | None = None,
        free_space: Callable[[Path], int] = free_bytes,
    ) -> None:
        preferred = Path(directory) if directory else (_SHM if _SHM.is_dir() else None)
        backup = Path(fallback) if fallback else Path(tempfile.gettempdir())
        self.directories = tuple(dict.fromkeys(d for d in (preferred, backup) if d is not None))
        self._free_space = free_space
        self._owner = f"{os.getpid()}-{_start_time(os.getpid()) or 0}"

    def dumps(self, obj: Any) -> TaskPayload:
        """Pickles `obj`, writing its frames. Blocking: call it in a thread."""
        payload = TaskPayload(b"")
        buffer = io.BytesIO()
        try:
            _FramePickler(buffer, self, payload).dump(obj)
        except BaseException:
            payload.remove()
            raise
        payload.data = buffer.getvalue()
        return payload

    def write(self, frame: pl.DataFrame) -> Path | None:
        needed = frame.estimated_size() + _HEADROOM
        for directory in self.directories:
            if self._free_space(directory) < needed:
                continue
            path = directory / f"{_PREFIX}{self._owner}-{uuid.uuid4().hex}.arrow"
            try:
                # Readable by this user only: it is the caller's data, and /dev/shm is shared.
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except OSError:  # not writable
                continue
            try:
                frame.write_ipc(path, compression="uncompressed")
            except OSError:  # full after all: another task wrote beside this one
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            return path
        return None

    def sweep(self) -> list[Path]:
        """Removes the files of writers that are gone (a server killed before its `finally`)."""
        removed = []
        for directory in self.directories:
            with contextlib.suppress(OSError):
                for path in directory.glob(f"{_PREFIX}*.arrow"):
                    match = _NAME.match(path.name)
                    if match and not _writer_alive(int(match[1]), int(match[2])):
                        with contextlib.suppress(OSError):
                            path.unlink()
                            removed.append(path)
        return removed


class _FramePickler(pickle.Pickler):
    def __init__(self, buffer: io.BytesIO, frames: SharedFrames, payload: TaskPayload) -> None:
        super().__init__(buffer, pickle.HIGHEST_PROTOCOL)
        import polars as pl

        self._frame_type = pl.DataFrame
        self._frames = frames
        self._payload = payload
        self._written: dict[int, str] = {}  # the same frame twice in one task is written once

    def persistent_id(self, obj: Any) -> Any:
        if type(obj) is not self._frame_type or obj.width == 0:
            return None
        path = self._written.get(id(obj))
        if path is None:
            written = self._frames.write(obj)
            if written is None:
                self._payload.piped_frames += 1
                return None
            self._payload.files.append(written)
            path = self._written[id(obj)] = str(written)
        return (_FILE_TAG, path)


class _FrameUnpickler(pickle.Unpickler):
    def persistent_load(self, pid: Any) -> Any:
        tag, path = pid
        if tag != _FILE_TAG:
            raise pickle.UnpicklingError(f"unknown persistent id {tag!r}")
        return map_frame(path)


def map_frame(path: str) -> pl.DataFrame:
    """The frame in the file, memory-mapped. Through pyarrow: polars' own read_ipc copies every
    buffer into the heap (measured with polars 2.1: +154 MB of anonymous memory for a 160 MB frame;
    this path: +0)."""
    import polars as pl
    import pyarrow as pa
    import pyarrow.ipc

    # The buffers keep the mapping alive after the file object closes (and after the unlink).
    with pa.memory_map(path) as source:
        table = pyarrow.ipc.open_file(source).read_all()
    frame = pl.from_arrow(table, rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    return frame


def loads(data: bytes) -> Any:
    """Unpickles what `SharedFrames.dumps` made (or any plain pickle)."""
    return _FrameUnpickler(io.BytesIO(data)).load()
