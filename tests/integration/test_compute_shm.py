"""Frames reach the pool's processes as memory-mapped files (adapters/compute/shared_frames.py): the
file exists while its task runs, is mapped by the worker without a copy, and is gone however the task
ends; a dead server's files are swept at the next start. Real forkserver processes throughout."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from adapters.compute.process_pool import ProcessPoolRunner
from adapters.compute.shared_frames import SharedFrames, free_bytes
from adapters.frames import PolarsDataset
from application.errors import TaskCancelled, TaskTimedOut, WorkerLost
from domain.errors import InternalFailure
from support import tasks
from support.eventually import eventually
from support.processes import alive

pytestmark = pytest.mark.timeout(90)


def _dataset(rows: int = 1000) -> PolarsDataset:
    return PolarsDataset(pl.DataFrame({"a": np.arange(rows), "b": np.linspace(0, 1, rows)}))


def _files(directory: Path) -> list[Path]:
    return sorted(directory.glob("ml-worker-*.arrow"))


def _everything(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


async def _started(frames: SharedFrames) -> ProcessPoolRunner:
    runner = ProcessPoolRunner(workers=1, threads_per_task=1, queue_limit=1, frames=frames)
    await runner.start()
    # The first frame a worker maps imports pyarrow there: done here, so that a test's task
    # announces itself at once.
    await runner.run(tasks.frame_files, _dataset(3))
    return runner


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[ProcessPoolRunner]:
    runner = await _started(SharedFrames(tmp_path))
    try:
        yield runner
    finally:
        await runner.close()


def _announced() -> tuple[asyncio.Event, list[str], Callable[[float, str], None]]:
    started = asyncio.Event()
    notes: list[str] = []

    def on_progress(fraction: float, note: str) -> None:
        notes.append(note)
        started.set()

    return started, notes, on_progress


def _mapped_by(process_id: int) -> set[str]:
    with open(f"/proc/{process_id}/maps") as maps:
        return {line.split(maxsplit=5)[-1].strip() for line in maps if "ml-worker-" in line}


async def _held_file(tmp_path: Path, started: asyncio.Event, notes: list[str]) -> tuple[int, Path]:
    """While hold_frame runs: the one file in the directory, and it is mapped by the task's process."""
    await asyncio.wait_for(started.wait(), 30)
    worker = int(notes[0])
    [held] = _files(tmp_path)
    assert str(held) in _mapped_by(worker)
    assert held.stat().st_mode & 0o777 == 0o600  # the caller's data: this user's only
    return worker, held


# ------------------------------------------------------------------------ the file's lifetime


async def test_the_worker_maps_the_file_and_it_is_gone_after_success(
    pool: ProcessPoolRunner, tmp_path: Path
) -> None:
    seen = await pool.run(tasks.frame_files, _dataset())
    assert seen["shape"] == [1000, 2]
    [mapped] = seen["mapped"]
    assert Path(mapped).parent == tmp_path
    assert Path(mapped).name.startswith(f"ml-worker-{os.getpid()}-")
    assert _files(tmp_path) == []
    # The worker lets go of the mapping too: shared memory is freed, not held until the next task.
    [worker] = pool.worker_pids()
    await eventually(lambda: _mapped_by(worker), lambda mapped: mapped == set(), timeout=5)


async def test_the_file_is_gone_after_the_task_fails(pool: ProcessPoolRunner, tmp_path: Path) -> None:
    with pytest.raises(InternalFailure) as caught:
        await pool.run(tasks.fail_with_frame, _dataset())
    assert f"failed holding ['{tmp_path}/ml-worker-" in caught.value.message
    assert _files(tmp_path) == []


async def test_the_file_is_gone_after_a_timeout(pool: ProcessPoolRunner, tmp_path: Path) -> None:
    started, notes, on_progress = _announced()
    run = asyncio.create_task(
        pool.run(tasks.hold_frame, _dataset(), 60.0, on_progress=on_progress, timeout=5)
    )
    await _held_file(tmp_path, started, notes)
    with pytest.raises(TaskTimedOut):
        await run
    assert _files(tmp_path) == []


async def test_the_file_is_gone_after_a_cancel(pool: ProcessPoolRunner, tmp_path: Path) -> None:
    started, notes, on_progress = _announced()
    cancel = asyncio.Event()
    run = asyncio.create_task(
        pool.run(tasks.hold_frame, _dataset(), 60.0, on_progress=on_progress, cancel_event=cancel)
    )
    worker, held = await _held_file(tmp_path, started, notes)
    cancel.set()
    with pytest.raises(TaskCancelled):
        await run
    assert not held.exists() and _files(tmp_path) == []
    await eventually(lambda: not alive(worker), timeout=5)


async def test_the_file_is_gone_when_the_callers_task_is_cancelled(
    pool: ProcessPoolRunner, tmp_path: Path
) -> None:
    started, notes, on_progress = _announced()
    run = asyncio.create_task(pool.run(tasks.hold_frame, _dataset(), 60.0, on_progress=on_progress))
    await _held_file(tmp_path, started, notes)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert _files(tmp_path) == []


async def test_the_file_is_gone_after_the_worker_is_killed(pool: ProcessPoolRunner, tmp_path: Path) -> None:
    started, notes, on_progress = _announced()
    run = asyncio.create_task(pool.run(tasks.hold_frame, _dataset(), 60.0, on_progress=on_progress))
    worker, held = await _held_file(tmp_path, started, notes)
    os.kill(worker, signal.SIGKILL)
    with pytest.raises(WorkerLost):
        await asyncio.wait_for(run, 10)
    assert not held.exists() and _files(tmp_path) == []
    assert (await pool.run(tasks.frame_files, _dataset(5)))["shape"] == [5, 2]


async def test_the_file_is_gone_when_cancelled_while_queued(pool: ProcessPoolRunner, tmp_path: Path) -> None:
    started, notes, on_progress = _announced()
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(
        pool.run(tasks.hold_frame, _dataset(), 60.0, on_progress=on_progress, cancel_event=stop_first)
    )
    await _held_file(tmp_path, started, notes)
    second = asyncio.create_task(pool.run(tasks.frame_files, _dataset(7), cancel_event=stop_second))
    # Written before it waits for a worker: two files now, the queued task's among them.
    await eventually(lambda: len(_files(tmp_path)) == 2, timeout=10)
    stop_second.set()
    with pytest.raises(TaskCancelled):
        await second
    assert len(_files(tmp_path)) == 1
    stop_first.set()
    with pytest.raises(TaskCancelled):
        await first
    assert _files(tmp_path) == []


# ------------------------------------------------------------------------ a server that died


async def test_files_of_a_dead_pid_are_swept_at_start_and_a_live_pids_are_kept(tmp_path: Path) -> None:
    finished = await asyncio.create_subprocess_exec("sleep", "0")
    await finished.wait()
    sleeper = await asyncio.create_subprocess_exec("sleep", "60")
    try:
        uuid = "0" * 32
        dead = tmp_path / f"ml-worker-{finished.pid}-12345-{uuid}.arrow"
        live = tmp_path / f"ml-worker-{sleeper.pid}-{_start_time(sleeper.pid)}-{uuid}.arrow"
        own = tmp_path / f"ml-worker-{os.getpid()}-{_start_time(os.getpid())}-{uuid}.arrow"
        # The pid of a live process that is not the writer (it started later): pid reuse.
        reused = tmp_path / f"ml-worker-{sleeper.pid}-{_start_time(sleeper.pid) - 1}-{uuid}.arrow"
        unrelated = [tmp_path / "ml-worker-notes.arrow", tmp_path / "other-1-2.arrow"]
        for path in (dead, live, own, reused, *unrelated):
            path.write_bytes(b"x")
        runner = ProcessPoolRunner(
            workers=1, threads_per_task=1, queue_limit=0, frames=SharedFrames(tmp_path)
        )
        await runner.start()
        await runner.close()
        assert _everything(tmp_path) == sorted([live, own, *unrelated])
    finally:
        sleeper.kill()
        await sleeper.wait()


SERVER = textwrap.dedent(
    """
    import asyncio, sys
    import polars as pl
    from adapters.compute.process_pool import ProcessPoolRunner
    from adapters.compute.shared_frames import SharedFrames
    from adapters.frames import PolarsDataset
    from support import tasks

    async def main():
        frames = SharedFrames(sys.argv[1])
        pool = ProcessPoolRunner(workers=1, threads_per_task=1, queue_limit=0, frames=frames)
        await pool.start()
        data = PolarsDataset(pl.DataFrame({"a": [1, 2, 3]}))
        await pool.run(tasks.hold_frame, data, 60.0, on_progress=lambda f, m: print(m, flush=True))

    if __name__ == "__main__":
        asyncio.run(main())
    """
)


async def test_a_killed_servers_file_is_removed_by_the_next_pool_start(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVER, str(tmp_path), env=env, stdout=asyncio.subprocess.PIPE
    )
    worker = None
    try:
        assert server.stdout is not None
        worker = int(await asyncio.wait_for(server.stdout.readline(), 60))
        [left] = _files(tmp_path)
        server.kill()
        await server.wait()
        assert left.exists()  # nobody ran the server's `finally`
        runner = ProcessPoolRunner(
            workers=1, threads_per_task=1, queue_limit=0, frames=SharedFrames(tmp_path)
        )
        await runner.start()
        await runner.close()
        assert _files(tmp_path) == []
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
        if worker is not None and alive(worker):
            os.kill(worker, signal.SIGKILL)


def _start_time(process_id: int) -> int:
    with open(f"/proc/{process_id}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[19])


# ------------------------------------------------------------------------ the data that arrives


async def test_a_frame_of_every_common_type_round_trips_exactly(
    pool: ProcessPoolRunner, tmp_path: Path
) -> None:
    when = [
        dt.datetime(2024, 1, 1, 12, 0, 0, 123456),
        None,
        dt.datetime(1970, 1, 1),
        dt.datetime(2038, 1, 19),
    ]
    frame = pl.DataFrame(
        {
            "text": ["north", None, "süd €", ""],
            "count": [1, None, -3, 2**40],
            "ratio": [1.5, float("nan"), None, -0.0],
            "flag": [True, False, None, True],
            "at": when,
            "day": [dt.date(2024, 2, 29), None, dt.date(1, 1, 1), dt.date(9999, 12, 31)],
            "segment": ["a", "b", None, "a"],
            "small": [1, 2, None, 255],
            "tags": [["x", "y"], None, [], [None]],
        },
        schema_overrides={"segment": pl.Categorical, "small": pl.UInt8},
    ).with_columns(
        at_berlin=pl.col("at").dt.replace_time_zone("Europe/Berlin"),
        waited=pl.col("at") - pl.datetime(2000, 1, 1),
        level=pl.Series(["lo", "hi", None, "lo"], dtype=pl.Enum(["lo", "hi"])),
    )
    echoed = await pool.run(tasks.echo_frame, PolarsDataset(frame))
    [mapped] = echoed["mapped"]
    assert Path(mapped).parent == tmp_path
    assert_frame_equal(echoed["frame"], frame)
    assert echoed["frame"].schema == frame.schema


async def test_an_empty_frame_arrives_and_a_frame_passed_twice_is_written_once(
    pool: ProcessPoolRunner,
) -> None:
    frame = pl.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert_frame_equal(
        (await pool.run(tasks.echo_frame, PolarsDataset(frame.clear())))["frame"], frame.clear()
    )
    same = PolarsDataset(frame)
    twice = await pool.run(tasks.echo_frames, same, same)
    assert len(twice["mapped"]) == 1
    other = await pool.run(tasks.echo_frames, same, PolarsDataset(frame.head(1)))
    assert len(other["mapped"]) == 2
    assert_frame_equal(other["frames"][0], frame)
    assert_frame_equal(other["frames"][1], frame.head(1))


# ------------------------------------------------------------------------ where the file goes


async def test_the_fallback_directory_is_used_when_the_preferred_one_has_no_room(tmp_path: Path) -> None:
    preferred, fallback = tmp_path / "shm", tmp_path / "tmp"
    preferred.mkdir()
    fallback.mkdir()

    def room(directory: Path) -> int:
        return 2 << 20 if directory == preferred else free_bytes(directory)

    runner = await _started(SharedFrames(preferred, fallback=fallback, free_space=room))
    try:
        [mapped] = (await runner.run(tasks.frame_files, _dataset(200_000)))["mapped"]  # 3.2 MB
        # A frame smaller than the space left still goes to the preferred directory.
        [small] = (await runner.run(tasks.frame_files, PolarsDataset(pl.DataFrame({"a": [1]}))))["mapped"]
    finally:
        await runner.close()
    assert Path(mapped).parent == fallback
    assert Path(small).parent == preferred
    assert _files(preferred) == _files(fallback) == []


async def test_a_preferred_directory_that_cannot_be_written_falls_back(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "shm"
    not_a_directory.write_text("")
    runner = await _started(SharedFrames(not_a_directory, fallback=tmp_path, free_space=lambda d: 1 << 40))
    try:
        [mapped] = (await runner.run(tasks.frame_files, _dataset()))["mapped"]
    finally:
        await runner.close()
    assert Path(mapped).parent == tmp_path


async def test_with_no_room_anywhere_the_frame_travels_through_the_pipe(tmp_path: Path) -> None:
    runner = await _started(SharedFrames(tmp_path, fallback=tmp_path, free_space=lambda d: 0))
    try:
        echoed = await runner.run(tasks.echo_frame, _dataset())
    finally:
        await runner.close()
    assert echoed["mapped"] == []
    assert_frame_equal(echoed["frame"], _dataset().frame)
    assert _everything(tmp_path) == []


# ------------------------------------------------------------------------ zero copy


async def test_the_worker_maps_the_frame_instead_of_copying_it(tmp_path: Path) -> None:
    """The worker's private memory (RssAnon) does not grow by the frame's size, neither when the frame
    arrives nor when every value is read: its pages are the file's (RssShmem or RssFile). The same
    frame through the pipe grows it by at least the frame's size, so the measurement can tell."""
    frame = pl.DataFrame({f"x{i}": np.arange(1_000_000, dtype=np.float64) + i for i in range(8)})
    size_kb = frame.estimated_size() // 1024  # 62,500 kB
    expected_sum = float(frame.sum().sum_horizontal()[0])

    async def growth(frames: SharedFrames) -> dict[str, int]:
        runner = await _started(frames)
        try:
            [worker] = runner.worker_pids()
            before = tasks.read_memory_kb(worker)
            seen = await runner.run(tasks.frame_memory, PolarsDataset(frame))
        finally:
            await runner.close()
        assert seen["sum"] == expected_sum
        grown = {
            f"{k}.{stage}": seen[stage][k] - before[k] for stage in ("loaded", "touched") for k in before
        }
        return {**grown, "mapped": len(seen["mapped"])}

    mapped = await growth(SharedFrames(tmp_path))
    piped = await growth(SharedFrames(tmp_path, free_space=lambda d: 0))
    assert mapped["mapped"] == 1 and piped["mapped"] == 0
    assert mapped["RssAnon.loaded"] < size_kb / 4, mapped
    assert mapped["RssAnon.touched"] < size_kb / 4, mapped
    assert mapped["RssShmem.touched"] + mapped["RssFile.touched"] > size_kb * 0.9, mapped
    assert piped["RssAnon.loaded"] > size_kb * 0.9, piped
