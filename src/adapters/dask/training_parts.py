"""The Dask client's bookkeeping (trainer and segmenter): the parts read on the workers, the encoded
features' names, the training arrays over the parts, a request limit's first rows, and which
errors are the cluster's."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import lightgbm as lgb
import numpy as np

from adapters.dask import partitions as tasks
from adapters.postgres.partition_read import TableRead, exported_snapshot
from application.errors import PayloadTooLarge, WorkerLost
from domain.errors import WorkerError, field_error
from domain.gbm.training import FeaturePlan, GbmTrainingSpec


def features(
    plan: FeaturePlan, spec: GbmTrainingSpec, recorded: dict[str, list[str]]
) -> tuple[list[dict[str, Any]], list[str], list[int]]:
    """What encode_features records for these categories: input features, column names, and the
    native categorical columns."""
    inputs: list[dict[str, Any]] = [{"name": name, "kind": "numeric"} for name in plan.numeric]
    names, native = list(plan.numeric), []
    for name in plan.categorical:
        categories = recorded[name]
        inputs.append(
            {
                "name": name,
                "kind": "categorical",
                "encoding": spec.categorical_encoding.value,
                "categories": categories,
            }
        )
        if spec.categorical_encoding.value == "native":
            native.append(len(names))
            names.append(name)
        else:
            names.extend(f"{name}={category}" for category in categories)
    return inputs, names, native


def column_fields(inputs: list[dict[str, Any]]) -> list[str]:
    fields: list[str] = []
    for feature in inputs:
        width = (
            1
            if feature["kind"] == "numeric" or feature["encoding"] == "native"
            else len(feature["categories"])
        )
        fields.extend([feature["name"]] * width)
    return fields


def training_arrays(trained: list[tuple[Any, tasks.PartCounts]], width: int) -> tuple[Any, Any]:
    import dask.array as da
    from dask.delayed import delayed

    xs = [
        da.from_delayed(delayed(tasks.x_train)(f), shape=(c.rows - c.valid_rows, width), dtype=np.float64)
        for f, c in trained
    ]
    ys = [
        da.from_delayed(delayed(tasks.y_train)(f), shape=(c.rows - c.valid_rows,), dtype=np.float64)
        for f, c in trained
    ]
    return da.concatenate(xs, axis=0), da.concatenate(ys, axis=0)


def first_rows(client: Any, frames: list[Any], lengths: list[int], limit: int | None) -> list[Any]:
    """A request `limit` keeps the first rows in page order, as one sequential read returns them:
    each part was read up to `limit` rows; the parts past the first `limit` rows are dropped and
    the one that crosses it is cut."""
    if limit is None or sum(lengths) <= limit:
        return frames
    kept, left = [], limit
    for frame, length in zip(frames, lengths, strict=True):
        if left <= 0:
            break
        kept.append(frame if length <= left else client.submit(tasks.head, frame, left, pure=False))
        left -= length
    return kept


T = TypeVar("T")


def on_cluster(client: Any, what: str, work: Callable[[list[Any]], T]) -> T:
    """`work(held)` with `client` as the current client (lightgbm.dask waits on its futures through
    it); the futures `work` puts in `held` are cancelled however it ends, and a lost worker or
    LightGBM peer is WORKER_LOST naming `what`."""
    held: list[Any] = []
    try:
        with client.as_current():
            return work(held)
    except WorkerError:
        raise
    except Exception as exc:
        reason = lost(exc)
        if reason is None:
            raise
        raise WorkerLost(f"the Dask {what} failed: {reason}") from exc
    finally:
        if held:
            client.cancel(held, force=True)


def lost(exc: BaseException) -> str | None:
    """Why the cluster lost the training, or None for an error that is not the cluster's."""
    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    if isinstance(exc, KilledWorker):
        return f"a Dask worker died running {exc.task!r}"
    if isinstance(exc, CommClosedError | OSError | TimeoutError):
        return f"the connection to the cluster was lost ({type(exc).__name__}: {exc})"
    if isinstance(exc, lgb.basic.LightGBMError) and any(
        word in str(exc).lower() for word in ("socket", "connecting to rank", "connection reset")
    ):
        return f"a LightGBM worker lost its peers ({exc})"
    return None


def read_parts(
    client: Any, held: list[Any], read: TableRead, database_url: str | None, partition_rows: int
) -> list[Any]:
    """The parts' frames, read on the workers: at least two parts per worker, at most
    `partition_rows` rows each (page ranges; one part for a relation that cannot be split). The
    parts import one snapshot, held open here while they read: together they are one moment's rows."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    pages = read.parts(max(2 * len(workers), math.ceil(read.rows / partition_rows)))
    n = len(pages)
    if database_url is None or n < 2:
        frames = client.map(tasks.read_task, [read] * n, pages, [None] * n, pure=False)
        held += frames
        return list(frames)
    with exported_snapshot(database_url) as snapshot:
        frames = client.map(tasks.read_task, [read] * n, pages, [snapshot] * n, pure=False)
        held += frames
        settled(frames)
    return list(frames)


def settled(futures: list[Any]) -> None:
    """Once every future is done (through its own client: `distributed.wait` would look for a
    default client, and this one is not made the default); the first error raised."""
    for future in futures:
        error = future.exception()
        if error is not None:
            raise error


def too_large(max_rows: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the table has more than {max_rows} matching rows (ML_WORKER_DASK_MAX_ROWS); "
        "pass a limit or narrower filters",
        [field_error("data.limit", f"at most {max_rows} rows can be read")],
    )
