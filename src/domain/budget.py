"""What one request may cost, estimated from its shape before any work starts.

Pure arithmetic on a spec's parameters and the data's row and column counts. The use cases call it
after the data is loaded and checked, before anything is queued or run, and refuse with
`RESOURCE_LIMIT` what would not fit the per-task budget (the compute process's share of the
replica's memory limit) or the largest model a caller may receive. The estimates are upper bounds
of the compute process's growth, not predictions: they must refuse a bomb (a request whose cost grows
with a parameter product) and pass every ordinary request. Their constants were calibrated against
real trainings (bench/gbm_memory_calibration.py): estimated / measured growth of the compute process
(peak RSS over its RSS before training, one thread, validation 0.2) and of the modelState JSON:

    shape (rows x columns, leaves, bins, trees, minDataInLeaf)   memory          model
    20,000 x 10, 31, 255, 100, 20                                 71 / 27 MB      1.40 / 1.15 MB
    200,000 x 20, 31, 255, 100, 20                               169 / 161 MB     1.40 / 1.15 MB
    1,000,000 x 20, 31, 255, 100, 20 (the bench)                 581 / 419 MB     1.40 / 1.16 MB
    40,000 x 20, 255, 4095, 20, 1 (histogram-bound)              404 / 349 MB     2.33 / 1.92 MB
    40,000 x 20, 1024, 1023, 5, 1 (histogram-bound)              405 / 356 MB     2.34 / 1.93 MB

so the estimate is 1.05-1.4x the measured growth (2.6x on the smallest, where the fixed part rules)
and 1.21x the model. Content analysis: 233 MB estimated for 20,000 creatives, about 150 MB measured
(bench/content.py, peak RSS 348 MB); 100,000: 850 / about 710 MB. Segmentation (k-means, k 2-8):
100,000 x 8 numeric 103 / 72 MB; 300,000 x (8 numeric + 4 categoricals of 30 values) 543 / 458 MB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from domain.errors import WorkerError, field_error

MB = 1 << 20

# --- GBM (LightGBM) ------------------------------------------------------------------------------
# The input as the worker holds it: the frame, the encoded float64 matrix, and the train/validation
# row subsets copied out of it (LightGBM's Dataset takes a contiguous copy): about three float64
# copies of rows x features.
_GBM_INPUT_COPIES = 3
_FLOAT = 8
# LightGBM never makes more bins for a feature than its distinct values allow, and a bin needs
# `min_data_in_bin` (3 by default) rows: so rows / 3 bounds the bins per feature however large
# `max_bin` is.
_MIN_DATA_IN_BIN = 3
# One histogram entry is a (sum of gradients, sum of hessians) pair of doubles.
_HISTOGRAM_ENTRY = 16
# What any training allocates whatever its shape (OpenMP stacks, bin mappers, metric buffers):
# 20-27 MB measured on the smallest shapes.
_GBM_FIXED = 64 * MB
# Gradients, hessians, scores and the bagging/partition index: a few arrays of rows.
_PER_ROW = 40
# JSON per node of the dumped tree (keys and full-precision numbers: split_gain, threshold,
# internal_value/weight/count for an inner node; leaf_value/weight/count for a leaf), averaged over
# inner nodes and leaves. Measured 197 bytes (bench/gbm_memory_calibration.py); 240 is the bound.
_JSON_PER_NODE = 240


class ResourceLimitExceeded(WorkerError):
    """The request would need more memory or a larger answer than this replica allows."""

    code = "RESOURCE_LIMIT"


@dataclass(frozen=True)
class ResourceEstimate:
    """Peak memory of the compute process (over its idle size) and the size of the answer, in bytes,
    with the spec fields that drive them and how to change each (in the order to try)."""

    memory_bytes: int
    model_bytes: int = 0
    memory_drivers: tuple[tuple[str, str], ...] = ()
    model_drivers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ResourceBudget:
    """Per-task limits: `memory_bytes` what a task may grow its compute process by (the estimates'
    scale), `process_bytes` the resident size the process is held to (the pool's watchdog),
    `model_bytes` the largest model answered. None = no limit."""

    memory_bytes: int | None = None
    model_bytes: int | None = None
    process_bytes: int | None = None
    memory_setting: str = "ML_WORKER_MEMORY_LIMIT_MB"
    model_setting: str = "ML_WORKER_MAX_MODEL_MB"

    def check(self, estimate: ResourceEstimate) -> None:
        problems: list[str] = []
        details = []
        if self.memory_bytes is not None and estimate.memory_bytes > self.memory_bytes:
            problems.append(
                f"needs about {_mb(estimate.memory_bytes)} MB of memory, over the "
                f"{_mb(self.memory_bytes)} MB each task may use (from `{self.memory_setting}`)"
            )
            details += _details(estimate.memory_drivers, "to need less memory")
        if self.model_bytes is not None and estimate.model_bytes > self.model_bytes:
            problems.append(
                f"would answer a model of about {_mb(estimate.model_bytes)} MB, over the "
                f"{_mb(self.model_bytes)} MB allowed (`{self.model_setting}`)"
            )
            details += _details(estimate.model_drivers, "for a smaller model")
        if problems:
            drivers = dict.fromkeys(d["field"] for d in details)
            change = ", ".join(f"`{name}`" for name in drivers)
            raise ResourceLimitExceeded(
                f"this request {' and '.join(problems)}; change {change} (see details), or raise the limit",
                details,
            )


# The server process itself: FastAPI, polars and pyarrow loaded (170-290 MB measured idle), plus the
# request's frame and its pickled copy while a task is handed over.
SERVER_BASELINE = 512 * MB
# An idle compute process with LightGBM, scikit-learn and polars imported: 256 MB measured.
WORKER_IDLE = 300 * MB
# Never a budget so small that the smallest training is refused.
_MIN_TASK_GROWTH = 128 * MB


def task_budget(limit_bytes: int | None, workers: int, max_model_bytes: int | None) -> ResourceBudget:
    """Each of `workers` compute processes may hold an equal share of what the server leaves."""
    if limit_bytes is None:
        return ResourceBudget(model_bytes=max_model_bytes)
    process = max((limit_bytes - SERVER_BASELINE) // max(workers, 1), WORKER_IDLE + _MIN_TASK_GROWTH)
    return ResourceBudget(
        memory_bytes=process - WORKER_IDLE, model_bytes=max_model_bytes, process_bytes=process
    )


def _mb(size: int) -> str:
    return f"{size / MB:,.0f}" if size >= 10 * MB else f"{size / MB:.1f}"


def _details(drivers: Sequence[tuple[str, str]], purpose: str) -> list[dict[str, str]]:
    return [field_error(name, f"{advice} {purpose}") for name, advice in drivers]


_FEWER = "send fewer rows or columns"
_LOWER = "lower it"
_RAISE = "raise it"


def gbm_bytes_per_bin(max_bin: int) -> int:
    """LightGBM stores a binned value in 1 byte up to 256 bins, 2 up to 65536, else 4."""
    return 1 if max_bin <= 256 else 2 if max_bin <= 65536 else 4


def estimate_gbm(
    *,
    rows: int,
    columns: int,
    max_bin: int,
    num_leaves: int,
    num_iterations: int,
    min_data_in_leaf: int,
    column_bins: Sequence[int] = (),
) -> ResourceEstimate:
    """LightGBM binary training of `rows` x `columns` (encoded feature columns); `column_bins` gives
    the bins of columns known to have few values (one-hot columns: 2; native categoricals: their
    categories), the others get `max_bin`.

    Memory: the input copies, the binned data (rows x columns x bytes per bin), and the histogram
    pool, one histogram of total_bins x 16 bytes per cached leaf (num_leaves x total_bins x 16): the
    term that made 4096 leaves x 65535 bins over 40,000 rows grow to 7 GB. LightGBM's
    `histogram_pool_size` would bound that pool, but not without changing results: an evicted
    histogram is recomputed instead of subtracted from its parent's, which moves split gains in the
    last digits and then splits (measured: other trees at 0.05 MB and at 1 MB), so the trainer leaves
    it unbounded and the budget refuses what would not fit. Model: trees x (2 x leaves - 1) nodes x
    JSON per node, with leaves capped by rows / min_data_in_leaf (a tree cannot have more leaves than that).
    """
    rows, columns = max(rows, 1), max(columns, 1)
    bins = max(2, min(max_bin, rows // _MIN_DATA_IN_BIN))
    leaves = max(2, min(num_leaves, rows // max(min_data_in_leaf, 1)))
    known = list(column_bins)[:columns]
    total_bins = (columns - len(known)) * bins + sum(min(b, bins) for b in known)
    memory = (
        _GBM_FIXED
        + rows * columns * (_GBM_INPUT_COPIES * _FLOAT + gbm_bytes_per_bin(bins))
        + leaves * total_bins * _HISTOGRAM_ENTRY
        + rows * _PER_ROW
    )
    model = num_iterations * (2 * leaves - 1) * _JSON_PER_NODE
    return ResourceEstimate(
        memory_bytes=memory,
        model_bytes=model,
        memory_drivers=(
            ("params.num_leaves", _LOWER),
            ("params.max_bin", _LOWER),
            ("params.min_data_in_leaf", _RAISE),
            ("data", _FEWER),
        ),
        model_drivers=(
            ("params.num_iterations", _LOWER),
            ("params.num_leaves", _LOWER),
            ("params.min_data_in_leaf", _RAISE),
        ),
    )


# --- the analyses ----------------------------------------------------------------------------------
# Segmentation: the standardised float64 matrix (rows x features, features counting one-hot columns),
# a few working copies (imputation, scaling, the fit sample), and K-Means' distances (rows x k) for
# each k tried. The silhouette runs on a sample in 16 MB distance chunks (adapters/segmentation/
# silhouette.py: a few chunks live at once) with one one-hot column per cluster of every k tried.
_SEGMENT_COPIES = 4
_SILHOUETTE_CHUNKS = 64 * MB


def estimate_segmentation(
    *, rows: int, numeric: int, categorical: int, max_categories: int, max_clusters: int, sample: int
) -> ResourceEstimate:
    features = max(1, numeric + categorical * max_categories)
    memory = (
        rows * features * _FLOAT * _SEGMENT_COPIES
        + rows * max_clusters * _FLOAT * 2
        + _SILHOUETTE_CHUNKS
        + min(sample, rows) * (max_clusters * (max_clusters + 1) // 2) * _FLOAT
    )
    return ResourceEstimate(
        memory,
        memory_drivers=(
            ("fields", "segment on fewer fields"),
            ("max_categories", _LOWER),
            ("max_clusters", _LOWER),
            ("data", _FEWER),
        ),
    )


# Content: the creatives' text and its tokens, the sparse term counts (a float64 value and an int32
# index per distinct term of a row, about 100 for subject + headline + body + CTA, in a few copies:
# counts, TF-IDF, the train/hold-out split), and the forest, bounded whatever the rows: 60 trees of at
# most 2 x 8,000 / 10 nodes (adapters/content/forest.py: `max_samples`, `min_samples_leaf`).
_CONTENT_TEXT_PER_FIELD = 1024
_CONTENT_TERMS_PER_ROW = 100
_CONTENT_SPARSE_COPIES = 3
_CONTENT_FOREST = 60 * 2 * 800 * 64 + 64 * MB


def estimate_content(*, rows: int, text_fields: int) -> ResourceEstimate:
    text = rows * max(text_fields, 1) * _CONTENT_TEXT_PER_FIELD
    terms = rows * _CONTENT_TERMS_PER_ROW * (_FLOAT + 4) * _CONTENT_SPARSE_COPIES
    return ResourceEstimate(text + terms + _CONTENT_FOREST, memory_drivers=(("data", "send fewer rows"),))


# Policies: a few derived frames of the interactions (customer-weeks, channels), each a few columns
# of rows; no parameter multiplies the rows, so the data is the only driver.
_POLICY_BYTES_PER_ROW = 400


def estimate_policies(*, rows: int) -> ResourceEstimate:
    return ResourceEstimate(rows * _POLICY_BYTES_PER_ROW, memory_drivers=(("data", "send fewer rows"),))


# Drift: each reference field's column as float64 (and its bucket indices), and the batch scorer's
# encoded matrix (rows x model columns, one-hot columns included) in three copies: as encoded, read
# through kZeroThreshold, and with NaN read as 0 (adapters/gbm/batch_scorer.py); plus a few index
# arrays of the rows reaching a tree's nodes.
_DRIFT_FIELD_COPIES = 2
_DRIFT_MODEL_COPIES = 3
_DRIFT_ROUTING = 4 * _FLOAT
_DRIFT_FIXED = 32 * MB


def estimate_drift(*, rows: int, columns: int, model_columns: int) -> ResourceEstimate:
    """`columns`: the reference's fields; `model_columns`: the model's encoded columns (0 without one)."""
    per_row = (columns * _DRIFT_FIELD_COPIES + model_columns * _DRIFT_MODEL_COPIES) * _FLOAT + _DRIFT_ROUTING
    return ResourceEstimate(rows * per_row + _DRIFT_FIXED, memory_drivers=(("data", "send fewer rows"),))
