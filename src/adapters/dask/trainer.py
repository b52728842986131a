"""LightGBM on the Dask cluster behind the GbmTrainer port, for a `DaskTableDataset`.

Runs in a compute process like the local trainer, as a Dask client: the rows are read, encoded,
trained on and scored on the cluster's workers (partitions.py); this process holds the plan, the
per-part counts, the model and a bounded sample of scores.

- Parameters: the local trainer's (adapters/gbm/fitting.py: every spec parameter, binary objective,
  deterministic), trained by `lightgbm.dask.DaskLGBMClassifier`, LightGBM's own data-parallel
  learner. It chooses the ports its workers listen on between themselves (README, "Past one
  machine: Dask"); `time_out` bounds how long a worker waits for a dead peer.
- Early stopping: the validation rows' log loss after every tree is computed on the cluster and
  added up, and LightGBM's own rule (adapters/gbm/fitting.py: `lgb.early_stopping`) is applied to
  the sum, so the kept trees are those the local training would keep on the same rows. LightGBM's
  callback is not used because each Dask worker would decide on its own part of the validation
  rows, and workers that disagree wait on each other forever. The trees past the stopping point
  are still trained (at most `num_iterations`).
- The model goes through the local trainer's dump and checks (`model_state_from_dump`,
  `attach_blocks`), so both scorers score it exactly as LightGBM does.
- Metrics: computed by the local functions on the evaluated rows' labels and scores (scored on the
  cluster), all of them up to `score_sample` rows, else a seeded uniform sample of that many.
- The drift reference: the local summary (adapters/gbm/reference.py) of a seeded sample of at most
  REFERENCE_SAMPLE_ROWS training rows, each part's share drawn on its worker.
- Failure: a Dask worker that dies, or a LightGBM peer lost, ends the training as WORKER_LOST with
  the cluster's reason; the client's futures are released whatever ends it.
"""

from __future__ import annotations

import time
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl

from adapters.dask import partitions as tasks
from adapters.dask import training_parts as bookkeeping
from adapters.dask.cluster import cluster_client
from adapters.gbm.booster_dump import dump_model
from adapters.gbm.curves import training_curves
from adapters.gbm.fitting import lightgbm_params
from adapters.gbm.metrics import binary_metrics
from adapters.gbm.model_dump import model_state_from_dump
from adapters.gbm.parity_fixture import parity_fixture
from adapters.gbm.reference import REFERENCE_SAMPLE_ROWS, drift_reference
from adapters.postgres.partition_read import TableRead
from application.ports import GbmTrainer
from domain.data import Dataset
from domain.errors import ValidationFailed, field_error
from domain.gbm.model_state import attach_blocks
from domain.gbm.training import (
    Calibration,
    FeaturePlan,
    GbmTrainingOutcome,
    GbmTrainingSpec,
    TrainingDurations,
    check_bagging,
    check_class_balance,
    normalise_importance,
)
from domain.progress import ProgressReporter

# LightGBM's socket timeout between workers, in minutes (its default is 120).
_PEER_TIMEOUT_MINUTES = 2
_FIXTURE_ROWS = 5_000


class DaskGbmTrainer(GbmTrainer[TableRead]):
    def __init__(
        self,
        scheduler: str,
        database_url: str | None,
        *,
        partition_rows: int = 1_000_000,
        score_sample: int = 2_000_000,
        connect_timeout_s: float = 10.0,
        listen_port: int | None = None,
    ) -> None:
        self._scheduler = scheduler
        self._database_url = database_url
        self._partition_rows = partition_rows
        self._score_sample = score_sample
        self._connect_timeout = connect_timeout_s
        # None: lightgbm.dask opens a free port on each worker at every training.
        self._network: dict[str, Any] = {} if listen_port is None else {"local_listen_port": listen_port}

    def train(
        self,
        dataset: Dataset[TableRead],
        spec: GbmTrainingSpec,
        plan: FeaturePlan,
        progress: ProgressReporter,
    ) -> GbmTrainingOutcome:
        _refuse_unsupported(spec)
        client = cluster_client(self._scheduler, timeout_s=self._connect_timeout)
        return bookkeeping.on_cluster(
            client, "training", lambda held: self._train(client, held, dataset, spec, plan, progress)
        )

    def _train(
        self,
        client: Any,
        held: list[Any],
        dataset: Dataset[TableRead],
        spec: GbmTrainingSpec,
        plan: FeaturePlan,
        progress: ProgressReporter,
    ) -> GbmTrainingOutcome:
        read, seed, fraction = dataset.frame, spec.params.seed, spec.validation_fraction
        clock = time.perf_counter()
        workers = client.scheduler_info(n_workers=-1)["workers"]
        threads = sum(int(w.get("nthreads", 1)) for w in workers.values()) or 1
        frames = bookkeeping.read_parts(client, held, read, self._database_url, self._partition_rows)
        lengths: list[int] = client.gather(client.map(tasks.height, frames))
        if sum(lengths) > read.max_rows:  # rows added since the count
            raise bookkeeping.too_large(read.max_rows)
        frames = bookkeeping.first_rows(client, frames, lengths, read.request.limit)
        held += frames
        n = len(frames)
        counts_f = client.map(
            tasks.count_task, frames, [spec.label] * n, [plan] * n, [fraction] * n, [seed] * n, range(n)
        )
        held += counts_f
        counts: list[tasks.PartCounts] = client.gather(counts_f)
        rows = sum(c.rows for c in counts)
        positives = sum(c.positives for c in counts)
        check_class_balance(positives, rows - positives, fraction)
        valid_rows = sum(c.valid_rows for c in counts)
        check_bagging(spec.params, rows - valid_rows)
        if spec.early_stopping_rounds is not None and valid_rows == 0:
            raise ValidationFailed(
                "early stopping needs a validation split; set `validation_fraction` above 0",
                [field_error("early_stopping_rounds", "needs `validation_fraction` > 0")],
            )
        recorded, warnings = tasks.chosen_categories(counts, plan, spec.max_categories)
        n = len(frames)
        encoded = client.map(
            tasks.encode_task,
            frames,
            [spec.label] * n,
            [plan] * n,
            [spec.categorical_encoding] * n,
            [recorded] * n,
            [fraction] * n,
            [seed] * n,
            range(n),
            pure=False,
        )
        held += encoded
        bookkeeping.settled(encoded)
        # The fixture's rows are drawn from the first part's (the fixture samples at most a few
        # hundred of them): a bounded frame, the only rows this process ever holds.
        sample = None
        if spec.include_parity_fixture:
            sample = client.submit(tasks.head, frames[0], _FIXTURE_ROWS, pure=False)
            held.append(sample)
        reference_rows = None
        if spec.include_reference:
            # The drift baseline summarises at most REFERENCE_SAMPLE_ROWS training rows locally;
            # here each part sends its share of such a sample, drawn before the frames are let go.
            keep = min(1.0, REFERENCE_SAMPLE_ROWS / max(1, rows - valid_rows))
            names = list(plan.inputs)
            reference_rows = client.map(
                tasks.training_sample,
                frames,
                [names] * n,
                [spec.label] * n,
                [fraction] * n,
                [seed] * n,
                range(n),
                [keep] * n,
                pure=False,
            )
            held += reference_rows
        # The encoded matrices are what the workers keep from here on: the frames are let go (not
        # cancelled, which would cancel what was computed from them).
        held[:] = [future for future in held if all(future is not frame for frame in frames)]
        frames = []
        input_features, feature_names, native = bookkeeping.features(plan, spec, recorded)
        prepare_ms = _elapsed_ms(clock)
        progress(0.1, "data prepared on the cluster")

        clock = time.perf_counter()
        trained = [(f, c) for f, c in zip(encoded, counts, strict=True) if c.rows - c.valid_rows > 0]
        x, y = bookkeeping.training_arrays(trained, len(feature_names))
        params = lightgbm_params(spec.params)
        iterations = int(params.pop("num_iterations"))
        model = lgb.DaskLGBMClassifier(
            client=client,
            objective="binary",
            n_estimators=iterations,
            verbosity=-1,
            deterministic=True,
            force_col_wise=True,
            time_out=_PEER_TIMEOUT_MINUTES,
            **self._network,
            **params,
        )
        model.fit(x, y, feature_name=[f"f{i}" for i in range(len(feature_names))], categorical_feature=native)
        booster: lgb.Booster = model.booster_
        train_ms = _elapsed_ms(clock)
        progress(0.8, "model trained on the cluster")

        clock = time.perf_counter()
        [shared] = client.scatter([booster], broadcast=True, hash=False)
        held.append(shared)
        grown = booster.current_iteration()
        used = grown
        if spec.early_stopping_rounds is not None:
            losses = client.gather(
                client.map(tasks.losses_task, encoded, [shared] * n, [grown] * n, [spec.params.sigmoid] * n)
            )
            used = tasks.early_stopping(np.sum(losses, axis=0) / valid_rows, spec.early_stopping_rounds)
        on_validation = valid_rows > 0
        evaluated = valid_rows if on_validation else rows
        keep = min(1.0, self._score_sample / evaluated)
        scored = client.gather(
            client.map(
                tasks.scores_task,
                encoded,
                [shared] * n,
                [used] * n,
                [on_validation] * n,
                [keep] * n,
                [seed] * n,
                range(n),
            )
        )
        y_eval = np.concatenate([s[0] for s in scored])
        p_eval = np.concatenate([s[1] for s in scored])
        metrics = binary_metrics(
            y_eval,
            p_eval,
            training_samples=rows - valid_rows,
            validation_samples=valid_rows,
            positive_rate=positives / rows,
            best_iteration=used,
            num_trees=used,
            evaluated_on="validation" if on_validation else "training",
        )
        gains: dict[str, float] = dict.fromkeys(plan.inputs, 0.0)
        fields = bookkeeping.column_fields(input_features)
        for name, gain in zip(fields, booster.feature_importance("gain", iteration=used), strict=True):
            gains[name] += float(gain)
        evaluate_ms = _elapsed_ms(clock)

        clock = time.perf_counter()
        model_text = booster.model_to_string(num_iteration=used)
        state = model_state_from_dump(
            dump_model(booster, used, model_text),
            feature_names=feature_names,
            input_features=input_features,
            model_text=model_text,
            seal=False,
        )
        reference = None
        if reference_rows is not None:
            summarised = pl.concat(client.gather(reference_rows))
            reference = drift_reference(
                summarised,
                input_features,
                np.arange(summarised.height),
                p_eval,
                "validation" if on_validation else "training",
                performance=(y_eval, p_eval),
            )
        state = attach_blocks(state, calibration=None, reference=reference)
        dump_ms = _elapsed_ms(clock)
        fixture, fixture_ms = None, None
        if sample is not None:
            clock = time.perf_counter()
            encoding = spec.categorical_encoding
            fixture = parity_fixture(sample.result(), plan, encoding, input_features, booster, used, seed)
            fixture_ms = _elapsed_ms(clock)
        progress(1.0, "done")
        if used < iterations:
            warnings.append(f"early stopping kept {used} of {iterations} trees")
        if keep < 1.0:
            warnings.append(
                f"metrics computed on a uniform sample of {len(y_eval)} of the {evaluated} evaluated rows"
            )
        return GbmTrainingOutcome(
            model_state=state,
            metrics=metrics,
            feature_importance=normalise_importance(gains),
            durations_ms=TrainingDurations(
                prepare=prepare_ms,
                train=train_ms,
                evaluate=evaluate_ms,
                dump=dump_ms,
                parity_fixture=fixture_ms,
            ),
            library_version=lgb.__version__,
            threads=threads,
            warnings=tuple(warnings),
            parity_fixture=fixture,
            curves=training_curves(y_eval, p_eval, None),
        )


def _refuse_unsupported(spec: GbmTrainingSpec) -> None:
    unsupported = [
        ("cv_folds", spec.cv_folds),
        ("calibration", spec.calibration is not Calibration.NONE),
    ]
    named = [name for name, asked in unsupported if asked]
    if named:
        raise ValidationFailed(
            f"{', '.join(named)} are not available yet for tables trained on the Dask cluster; "
            "train without them, or on fewer rows than ML_WORKER_DASK_MIN_ROWS",
            [field_error(name, "not available on the Dask cluster yet") for name in named],
        )


def _elapsed_ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000.0, 3)
