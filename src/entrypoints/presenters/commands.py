"""Contract models (generated from openapi.yaml) to domain commands; training outcomes back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain.content import ContentSpec
from domain.data import DataSpec, InlineColumns, InlineRows, TableRef
from domain.gbm.training import CategoricalEncoding, GbmTrainingOutcome, GbmTrainingSpec, lightgbm_params
from domain.segmentation import SegmentationSpec
from entrypoints import contract as c

# The CLI still reads it here; entrypoints.presenters.policies is its home.
from entrypoints.presenters.policies import policy_spec as policy_spec


def _names(items: Sequence[Any] | None) -> tuple[str, ...] | None:
    if items is None:
        return None
    return tuple(getattr(item, "root", item) for item in items)


def data_spec(source: c.InlineRows | c.InlineColumns | c.TableData) -> DataSpec:
    if isinstance(source, c.InlineColumns):
        return InlineColumns(columns=source.columns)
    if isinstance(source, c.InlineRows):
        return InlineRows(rows=source.rows)
    return TableRef(
        table=source.table,
        columns=_names(source.columns),
        filters=dict(source.filters or {}),
        limit=source.limit,
    )


def training_spec(body: c.TrainGbmRequest) -> GbmTrainingSpec:
    given = body.params.model_dump(exclude_unset=True) if body.params else {}
    return GbmTrainingSpec(
        label=body.label,
        features=_names(body.features),
        id_field=body.idField,
        categorical_features=_names(body.categoricalFeatures),
        categorical_encoding=CategoricalEncoding(body.categoricalEncoding),
        max_categories=body.maxCategories,
        params=lightgbm_params(given),
        validation_fraction=body.validationFraction,
        early_stopping_rounds=body.earlyStoppingRounds,
        include_parity_fixture=body.includeParityFixture,
    )


def training_response(outcome: GbmTrainingOutcome, parse_ms: float, total_ms: float) -> dict[str, Any]:
    m = outcome.metrics
    return {
        "modelState": outcome.model_state,
        "metrics": {
            "auc": m.auc,
            "logloss": m.logloss,
            "accuracy": m.accuracy,
            "precision": m.precision,
            "recall": m.recall,
            "trainingSamples": m.training_samples,
            "validationSamples": m.validation_samples,
            "positiveRate": m.positive_rate,
            "bestIteration": m.best_iteration,
            "numTrees": m.num_trees,
            "evaluatedOn": m.evaluated_on,
        },
        "featureImportance": [
            {"field": f.field, "importance": f.importance, "selected": f.selected}
            for f in outcome.feature_importance
        ],
        "durationMs": {"parse": parse_ms, **outcome.durations_ms, "total": total_ms},
        "library": {"name": "lightgbm", "version": outcome.library_version},
        "warnings": list(outcome.warnings),
        **({"parityFixture": dict(outcome.parity_fixture)} if outcome.parity_fixture is not None else {}),
    }


def segmentation_spec(body: c.SegmentsRequest) -> SegmentationSpec:
    return SegmentationSpec(
        fields=_names(body.fields),
        algorithm=body.algorithm,
        min_clusters=body.minClusters,
        max_clusters=body.maxClusters,
        random_state=body.randomState,
        eps=body.eps,
        min_samples=body.minSamples,
        silhouette_sample_size=body.silhouetteSampleSize,
        max_categories=body.maxCategories,
    )


def content_spec(body: c.ContentRequest) -> ContentSpec:
    fields = body.fieldMap or c.FieldMap1()
    return ContentSpec(
        id_field=fields.id,
        channel_field=fields.channel,
        text_fields=_names(body.textFields) or (),
        impressions_field=fields.impressions,
        clicks_field=fields.clicks,
        conversions_field=fields.conversions,
        revenue_field=fields.revenue or "",
        target=body.target,
        min_impressions=body.minImpressions,
        top_terms=body.topTerms,
        random_state=body.randomState,
    )

