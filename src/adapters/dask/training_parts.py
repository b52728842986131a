"""The Dask trainer's bookkeeping in the client: the encoded features' names, the training
arrays over the workers' parts, a request limit's first rows, and which errors are the cluster's."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np

from adapters.dask import partitions as tasks
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


def lost(exc: BaseException) -> str | None:
    """Why the cluster lost the training, or None for an error that is not the cluster's."""
    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    if isinstance(exc, KilledWorker):
        return f"a Dask worker died running {exc.task!r}"
    if isinstance(exc, CommClosedError | OSError | TimeoutError):
        return f"the connection to the cluster was lost ({type(exc).__name__}: {exc})"
    if isinstance(exc, lgb.basic.LightGBMError) and any(
        word in str(exc).lower() for word in ("socket", "network", "connect", "machine")
    ):
        return f"a LightGBM worker lost its peers ({exc})"
    return None
