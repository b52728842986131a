"""The report of a training (`POST /train/gbm`'s answer, or the CLI's `--result`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from entrypoints.report import plots
from entrypoints.report.page import Page, number


def training_page(result: Mapping[str, Any]) -> Page:
    metrics: Mapping[str, Any] = result.get("metrics") or {}
    page = Page(
        "LightGBM training",
        f"{metrics.get('numTrees', '?')} trees; metrics on {metrics.get('evaluatedOn', '?')} rows "
        f"({metrics.get('validationSamples') or metrics.get('trainingSamples')})",
    )
    page.section("Metrics")
    keys = (
        "auc",
        "logloss",
        "accuracy",
        "precision",
        "recall",
        "positiveRate",
        "trainingSamples",
        "validationSamples",
        "bestIteration",
    )
    page.table(["metric", "value"], [(key, metrics.get(key)) for key in keys if key in metrics])
    calibration = metrics.get("calibration")
    if calibration:
        page.text(
            f"Calibration: {calibration.get('method')}, fitted on {calibration.get('fittedOn')} held-out "
            "rows; "
            "before and after measured on rows the calibrator did not see."
        )
        page.table(
            ["", "before", "after"],
            [
                ("Brier score", calibration.get("brierBefore"), calibration.get("brierAfter")),
                ("expected calibration error", calibration.get("eceBefore"), calibration.get("eceAfter")),
            ],
        )
    cross = metrics.get("crossValidation")
    if cross:
        page.text(
            f"{cross.get('folds')}-fold cross-validation: AUC {number(cross.get('aucMean'), 4)} "
            f"± {number(cross.get('aucStd'), 2)}, logloss {number(cross.get('loglossMean'), 4)} "
            f"± {number(cross.get('loglossStd'), 2)}"
        )
    curves = result.get("curves")
    if curves:
        page.section("Curves")
        charts = []
        roc = curves.get("roc")
        if roc:
            charts.append(
                plots.line(
                    roc["fpr"],
                    roc["tpr"],
                    xlabel="false positive rate",
                    ylabel="true positive rate",
                    diagonal=True,
                    label="ROC",
                )
            )
        reliability = curves.get("calibration")
        if reliability:
            lines = [("trees", reliability)]
            if curves.get("calibrated"):
                lines.append(("calibrated (out of fold)", curves["calibrated"]))
            charts.append(plots.reliability(lines))
        page.charts(*charts)
    else:
        page.text("This result carries no curves (a worker older than the curves in the contract).", "note")
    importance = [item for item in result.get("featureImportance") or [] if item.get("importance", 0) > 0]
    if importance:
        page.section("Feature importance (share of gain)")
        top = importance[:25]
        page.charts(plots.horizontal_bars([i["field"] for i in top], [i["importance"] for i in top]))
    page.bullets(result.get("warnings") or [], "warning")
    return page
