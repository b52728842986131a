"""A job's input as bytes the job store keeps, so that any replica can run the job.

The input (spec, caller's identifiers, table reference or loaded dataset) is pickled, and each
polars frame in it is written out of the pickle as a compressed Arrow IPC stream (zstd: a 50,000 x
20 frame of doubles is about 8 MB raw). A payload larger than `inline_bytes` is written to
`directory` (ML_WORKER_JOB_PAYLOAD_DIR, a directory every replica mounts) when one is given, and
the store keeps only a reference to the file.

Pickle is safe here because only replicas write the store (it holds no caller bytes that were not
first parsed and checked); the format version on each job record (domain.jobs JOB_FORMAT) is bumped
when the pickled input changes in a way an older replica could not read.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import re
import time
import uuid
from pathlib import Path
from typing import Any

import polars as pl

from application.ports import JobInput, JobInputCodec
from domain.errors import InternalFailure

_FRAME = "arrow-ipc-zstd"
_FILE_MARK = b"ml-worker-job-input-file:"
_NAME = re.compile(r"^job-([0-9A-Za-z_-]{1,64})\.input$")
# A file younger than this may belong to a job whose record is being written right now.
_SWEEP_AGE_S = 60.0


def _frame_bytes(frame: pl.DataFrame) -> bytes:
    # polars' own IPC writer: it keeps every dtype polars may hold (Int128 for integers past int64,
    # which pyarrow cannot take), and the frame reads back as it was.
    sink = io.BytesIO()
    frame.write_ipc_stream(sink, compression="zstd")
    return sink.getvalue()


def _frame(data: bytes) -> pl.DataFrame:
    return pl.read_ipc_stream(io.BytesIO(data))


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        if type(obj) is pl.DataFrame:
            return (_FRAME, _frame_bytes(obj))
        return None


class _Unpickler(pickle.Unpickler):
    def persistent_load(self, pid: Any) -> Any:
        tag, data = pid
        if tag != _FRAME:
            raise pickle.UnpicklingError(f"unknown persistent id {tag!r}")
        return _frame(data)


class PickledJobInputs(JobInputCodec):
    def __init__(self, *, inline_bytes: int = 8 << 20, directory: str | Path | None = None) -> None:
        self._inline = inline_bytes
        self._directory = Path(directory) if directory else None

    def encode(self, job_id: str, job_input: JobInput) -> bytes:
        buffer = io.BytesIO()
        _Pickler(buffer, pickle.HIGHEST_PROTOCOL).dump(job_input)
        data = buffer.getvalue()
        if self._directory is None or len(data) <= self._inline or not _NAME.match(f"job-{job_id}.input"):
            return data
        path = self._directory / f"job-{job_id}.input"
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        # Written whole, then renamed: a replica never reads half a file.
        partial.write_bytes(data)
        os.replace(partial, path)
        return _FILE_MARK + path.name.encode()

    def decode(self, payload: bytes) -> JobInput:
        data = payload
        if payload.startswith(_FILE_MARK):
            path = self._file(payload)
            try:
                data = path.read_bytes()
            except OSError as error:
                raise InternalFailure(f"the job's input file {path.name} cannot be read: {error}") from error
        job_input = _Unpickler(io.BytesIO(data)).load()
        if not isinstance(job_input, JobInput):
            raise InternalFailure("the job's stored input is not a job input")
        return job_input

    def discard(self, payload: bytes) -> None:
        if payload.startswith(_FILE_MARK):
            with contextlib.suppress(FileNotFoundError):
                self._file(payload).unlink()

    @property
    def keeps_files(self) -> bool:
        return self._directory is not None

    def stored_elsewhere(self) -> list[str]:
        if self._directory is None:
            return []
        old = time.time() - _SWEEP_AGE_S
        ids = []
        with contextlib.suppress(OSError):
            for path in self._directory.glob("job-*.input"):
                match = _NAME.match(path.name)
                with contextlib.suppress(OSError):
                    if match and path.stat().st_mtime < old:
                        ids.append(match[1])
        return ids

    def discard_job(self, job_id: str) -> None:
        if self._directory is not None and _NAME.match(f"job-{job_id}.input"):
            with contextlib.suppress(FileNotFoundError):
                (self._directory / f"job-{job_id}.input").unlink()

    def _file(self, payload: bytes) -> Path:
        name = payload[len(_FILE_MARK) :].decode()
        if self._directory is None or not _NAME.match(name):
            raise InternalFailure(
                "the job's input is in a file, and ML_WORKER_JOB_PAYLOAD_DIR is not set here"
            )
        return self._directory / name
