"""A job's stored input (adapters/job_payload.py): what a replica wrote, any replica reads back, the
frames compressed as Arrow IPC; a large input goes to the shared payload directory and is removed
when its job ends."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from adapters.frames import PolarsDataset
from adapters.job_payload import PickledJobInputs
from application.ports import JobInput
from domain.data import TableRef
from domain.errors import InternalFailure
from domain.jobs import RequestEcho
from domain.segmentation import SegmentationSpec


def _frame(rows: int) -> pl.DataFrame:
    rng = np.random.default_rng(7)
    return pl.DataFrame(
        {
            "x": rng.normal(size=rows),
            "n": rng.integers(0, 100, rows),
            "region": rng.choice(["north", "south", None], rows),
            "ok": rng.random(rows) > 0.5,
        }
    )


def test_inline_data_round_trips_with_its_spec_and_echo() -> None:
    codec = PickledJobInputs()
    frame = _frame(5000)
    job_input = JobInput(
        SegmentationSpec(min_clusters=3, max_clusters=6),
        RequestEcho("schema-1", "acme"),
        PolarsDataset(frame),
    )
    payload = codec.encode("job-1", job_input)
    back = codec.decode(payload)
    assert (back.spec, back.echo, back.data) == (job_input.spec, job_input.echo, None)
    assert back.dataset is not None
    assert_frame_equal(back.dataset.frame, frame)
    # Compressed: smaller than the frame itself (doubles and ints of random values compress little,
    # the strings and booleans a lot).
    assert len(payload) < frame.estimated_size()


def test_integers_past_int64_keep_their_type() -> None:
    frame = pl.DataFrame({"id": [-(2**63) - 1, 2**64]}, schema={"id": pl.Int128})
    codec = PickledJobInputs()
    back = codec.decode(
        codec.encode("job-1", JobInput(SegmentationSpec(), RequestEcho(), PolarsDataset(frame)))
    )
    assert back.dataset is not None
    assert_frame_equal(back.dataset.frame, frame)


def test_a_table_travels_as_its_reference() -> None:
    codec = PickledJobInputs()
    ref = TableRef("ds_customers", columns=("a", "b"), filters={"tenantId": "acme"}, limit=1000)
    back = codec.decode(codec.encode("job-1", JobInput(SegmentationSpec(), RequestEcho(), data=ref)))
    assert (back.data, back.dataset) == (ref, None)


def test_a_large_input_goes_to_the_payload_dir_and_is_removed_with_discard(tmp_path: Path) -> None:
    codec = PickledJobInputs(inline_bytes=1000, directory=tmp_path)
    small = codec.encode("small", JobInput(SegmentationSpec(), RequestEcho()))
    assert not list(tmp_path.iterdir())  # under the bound: in the store itself
    frame = _frame(20_000)
    payload = codec.encode("big", JobInput(SegmentationSpec(), RequestEcho(), PolarsDataset(frame)))
    assert len(payload) < 100  # the store keeps a reference
    assert [p.name for p in tmp_path.iterdir()] == ["job-big.input"]
    back = codec.decode(payload)
    assert back.dataset is not None
    assert_frame_equal(back.dataset.frame, frame)
    codec.discard(small)  # nothing outside the store: nothing to do
    codec.discard(payload)
    codec.discard(payload)  # idempotent
    assert not list(tmp_path.iterdir())


def test_the_sweep_lists_only_files_old_enough_to_belong_to_a_stored_job(tmp_path: Path) -> None:
    codec = PickledJobInputs(inline_bytes=0, directory=tmp_path)
    assert codec.keeps_files
    codec.encode("fresh", JobInput(SegmentationSpec(), RequestEcho()))
    codec.encode("old", JobInput(SegmentationSpec(), RequestEcho()))
    an_hour_ago = time.time() - 3600
    os.utime(tmp_path / "job-old.input", (an_hour_ago, an_hour_ago))
    (tmp_path / "unrelated.txt").write_text("not ours")
    assert codec.stored_elsewhere() == ["old"]
    codec.discard_job("old")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job-fresh.input", "unrelated.txt"]
    assert not PickledJobInputs().keeps_files


def test_a_reference_to_a_file_this_replica_cannot_see_is_a_clear_failure(tmp_path: Path) -> None:
    payload = PickledJobInputs(inline_bytes=0, directory=tmp_path).encode(
        "job-1", JobInput(SegmentationSpec(), RequestEcho())
    )
    with pytest.raises(InternalFailure, match="ML_WORKER_JOB_PAYLOAD_DIR"):
        PickledJobInputs().decode(payload)
    (tmp_path / "job-job-1.input").unlink()
    with pytest.raises(InternalFailure, match="cannot be read"):
        PickledJobInputs(directory=tmp_path).decode(payload)


def test_bytes_that_are_not_a_job_input_are_refused() -> None:
    with pytest.raises(InternalFailure):
        PickledJobInputs().decode(pickle.dumps({"not": "a job input"}))
