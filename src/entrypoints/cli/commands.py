"""The offline commands: each one's help, its options (the API request's fields) and how it runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from entrypoints.cli import runs
from entrypoints.cli.options import Option, inferred_options, integers, json_file, json_object, names

if TYPE_CHECKING:
    from domain.data import FileRef
    from entrypoints.cli.progress import Progress
    from entrypoints.container import OfflineServices


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    description: str
    examples: str
    request: str  # the contract model's name
    options: tuple[Option, ...]
    run: Callable[[OfflineServices, FileRef, Any, Progress], Awaitable[runs.Output]]

    @property
    def all_options(self) -> tuple[Option, ...]:
        """The declared options, then one from the contract for each other field of the request."""
        return self.options + inferred_options(self.request, self.options)


OFFLINE_ENVIRONMENT_HELP = """\
environment variables (the service's; those that apply offline):
  ML_WORKER_MAX_ROWS               rows read from the file at most (5000000)
  ML_WORKER_CPU_LIMIT              CPUs to use (default: cgroup cpu.max, else the CPU count)
  ML_WORKER_THREADS_PER_TASK       threads of the computation (default: every CPU of the budget)
  ML_WORKER_MEMORY_LIMIT_MB        memory a computation may use (cgroup memory.max, else RAM/2)
  ML_WORKER_MAX_MODEL_MB           largest model a training may write (50)
  ML_WORKER_TRAIN_TIMEOUT_SECONDS  limit of one training (280)
  ML_WORKER_JOB_TIMEOUT_SECONDS    limit of one analysis (3600)

exit status: 0 done, 2 a mistake in the options or the data (`error: CODE: message` on stderr),
130 interrupted.
"""

# The caller's identifiers of the jobs' requests, handed back in the result as the service does.
ECHO_OPTIONS = (
    Option("--schema-id", "schemaId", "echoed in the result as schemaId", metavar="ID"),
    Option("--tenant-id", "tenantId", "echoed in the result as tenantId", metavar="ID"),
)

FILE_HELP = "a CSV or Parquet file (the format from the extension unless --format is given)"

COMMANDS = (
    Command(
        name="train-gbm",
        help="train a LightGBM model on a file (as POST /train/gbm)",
        description=(
            "Train a binary LightGBM model on a CSV or Parquet file, exactly as POST /train/gbm does.\n"
            "--out gets the modelState (the JSON ensemble the platform scores); --result the whole\n"
            "response (metrics, feature importance, durations)."
        ),
        examples="""\
examples:
  ml-worker train-gbm customers.csv --label converted --out model.json
  ml-worker train-gbm customers.parquet --label churned --features age,income,region \\
      --categorical region --params '{"numIterations": 300, "learningRate": 0.05}' \\
      --validation-fraction 0.25 --early-stopping 20 --out model.json --result training.json
  ml-worker train-gbm small.csv --label converted --calibration isotonic --cv-folds 5 --out model.json
""",
        request="TrainGbmRequest",
        options=(
            Option("--label", "label", "the 0/1 column to predict", required=True, metavar="COLUMN"),
            Option(
                "--features",
                "features",
                "feature columns (default: all but the label and id)",
                value=names,
                metavar="A,B",
            ),
            Option(
                "--id-field", "idField", "a column never used as a feature (default: id)", metavar="COLUMN"
            ),
            Option(
                "--categorical",
                "categoricalFeatures",
                "columns to treat as categorical (default: every non-numeric feature)",
                value=names,
                metavar="A,B",
            ),
            Option(
                "--encoding",
                "categoricalEncoding",
                "categorical encoding (default: onehot)",
                choices=("onehot", "native"),
            ),
            Option(
                "--max-categories",
                "maxCategories",
                "most frequent categories kept per field (50)",
                type=int,
                metavar="N",
            ),
            Option(
                "--include-parity-fixture",
                "includeParityFixture",
                "also return parityFixture (in --result): sample and edge rows with LightGBM's own scores",
                type=bool,
            ),
            Option(
                "--params",
                "params",
                "LightGBM parameters as a JSON object with the API's names, e.g. '{\"numLeaves\": 15}'",
                value=json_object,
                metavar="JSON",
            ),
            Option(
                "--validation-fraction",
                "validationFraction",
                "seeded stratified hold-out for the metrics, 0..0.5 (0.2)",
                type=float,
                metavar="F",
            ),
            Option(
                "--early-stopping",
                "earlyStoppingRounds",
                "stop when validation logloss has not improved for N rounds",
                type=int,
                metavar="N",
            ),
            Option(
                "--calibration",
                "calibration",
                "calibrate the score on held-out rows (default: none)",
                choices=("none", "isotonic", "platt"),
            ),
            Option(
                "--cv-folds",
                "cvFolds",
                "also report stratified K-fold cross-validated metrics, 3..10 (0: none)",
                type=int,
                metavar="K",
            ),
            Option(
                "--reference",
                "includeReference",
                "carry the drift reference in the model; without it and uncalibrated, a version-1 "
                "model (default: on)",
                type=bool,
            ),
        ),
        run=runs.train_gbm,
    ),
    Command(
        name="segment",
        help="segment customers in a file (as POST /analyze/segments)",
        description="Segment the rows of a CSV or Parquet file, as POST /analyze/segments does.",
        examples="""\
examples:
  ml-worker segment customers.csv --out segments.json
  ml-worker segment customers.parquet --fields income,age,visits --max-clusters 6 --out segments.json
  ml-worker segment customers.csv --algorithm dbscan --out segments.json
""",
        request="SegmentsRequest",
        options=(
            Option(
                "--fields",
                "fields",
                "fields to segment on (default: every numeric field)",
                value=names,
                metavar="A,B",
            ),
            Option("--algorithm", "algorithm", "(default: kmeans)", choices=("kmeans", "dbscan")),
            Option("--min-clusters", "minClusters", "smallest k tried (2)", type=int, metavar="K"),
            Option("--max-clusters", "maxClusters", "largest k tried (8)", type=int, metavar="K"),
            Option("--random-state", "randomState", "seed (42)", type=int, metavar="N"),
            Option(
                "--silhouette-sample-size",
                "silhouetteSampleSize",
                "seeded sample the silhouette that chooses k is computed on, 100..20000 (10000)",
                type=int,
                metavar="N",
            ),
            Option(
                "--max-categories",
                "maxCategories",
                "most frequent categories one-hot encoded per categorical field (10)",
                type=int,
                metavar="N",
            ),
            Option("--eps", "eps", "DBSCAN radius (default: estimated)", type=float, metavar="R"),
            Option("--min-samples", "minSamples", "DBSCAN core-point size", type=int, metavar="N"),
            *ECHO_OPTIONS,
        ),
        run=runs.segment,
    ),
    Command(
        name="policies",
        help="analyse contact frequency in an interaction log (as POST /analyze/policies)",
        description=(
            "Analyse an interaction log (customer id, channel, timestamp, interaction type) for\n"
            "contact-policy recommendations, as POST /analyze/policies does."
        ),
        examples="""\
examples:
  ml-worker policies interactions.csv --out policies.json
  ml-worker policies events.parquet --lookback-days 60 \\
      --field-map '{"customerId": "user_id", "timestamp": "ts", "interactionType": "event"}' \\
      --caps '{"daily": 2, "weekly": 7, "monthly": 20}' --out policies.json
""",
        request="PoliciesRequest",
        options=(
            Option(
                "--field-map",
                "fieldMap",
                "the file's column for each role, as JSON: customerId, channel, timestamp, "
                "interactionType, offerId",
                value=json_object,
                metavar="JSON",
            ),
            Option(
                "--interaction-values",
                "interactionValues",
                'which interaction types count, as JSON, e.g. \'{"conversion": ["purchase"]}\'',
                value=json_object,
                metavar="JSON",
            ),
            Option("--lookback-days", "lookbackDays", "days analysed (90)", type=int, metavar="N"),
            Option(
                "--as-of",
                "asOf",
                "end of the lookback window, ISO 8601 with a zone (default: the newest timestamp)",
                metavar="TIME",
            ),
            Option(
                "--caps",
                "caps",
                'caps never exceeded, as JSON (\'{"daily": 3, "weekly": 10, "monthly": 30}\')',
                value=json_object,
                metavar="JSON",
            ),
            Option(
                "--bands",
                "bands",
                "upper bounds of the weekly-frequency bands, strictly increasing (1,3,5,7,10)",
                value=integers,
                metavar="N,N",
            ),
            Option("--min-samples-per-band", "minSamplesPerBand", "(30)", type=int, metavar="N"),
            Option(
                "--alpha",
                "alpha",
                "family-wise significance level of the fatigue and cooldown tests (0.05)",
                type=float,
                metavar="A",
            ),
            Option("--random-state", "randomState", "seed (42)", type=int, metavar="N"),
            *ECHO_OPTIONS,
        ),
        run=runs.policies,
    ),
    Command(
        name="content",
        help="find the terms that drive CTR or CVR in creatives (as POST /analyze/content)",
        description=(
            "Analyse creatives (id, channel, text, impressions, clicks, conversions) for the terms\n"
            "that drive the click-through or conversion rate, as POST /analyze/content does."
        ),
        examples="""\
examples:
  ml-worker content creatives.csv --out content.json
  ml-worker content creatives.parquet --text-fields subject,body --target cvr \\
      --field-map '{"id": "creative_id", "revenue": null}' --min-impressions 500 --out content.json
""",
        request="ContentRequest",
        options=(
            Option(
                "--field-map",
                "fieldMap",
                "the file's column for each role, as JSON: id, channel, impressions, clicks, "
                "conversions, revenue",
                value=json_object,
                metavar="JSON",
            ),
            Option(
                "--text-fields",
                "textFields",
                "text columns (subject,headline,body,ctaText)",
                value=names,
                metavar="A,B",
            ),
            Option("--target", "target", "(default: ctr)", choices=("ctr", "cvr")),
            Option(
                "--min-impressions",
                "minImpressions",
                "creatives with fewer are left out (100)",
                type=int,
                metavar="N",
            ),
            Option("--top-terms", "topTerms", "terms reported (20)", type=int, metavar="N"),
            Option("--random-state", "randomState", "seed (42)", type=int, metavar="N"),
            *ECHO_OPTIONS,
        ),
        run=runs.content,
    ),
    Command(
        name="drift",
        help="compare a file's rows with a trained model's drift reference (as POST /analyze/drift)",
        description=(
            "Compare the rows of a CSV or Parquet file (typically recent ones) with the training\n"
            "distributions a model carries (modelState.reference), as POST /analyze/drift does: PSI and\n"
            "KS per field and for the score, performance when --label is given, and recommendations."
        ),
        examples="""\
examples:
  ml-worker train-gbm customers.csv --label converted --out model.json
  ml-worker drift recent.csv --model model.json --label converted --out drift.json
  ml-worker report drift.json --out drift.html
""",
        request="DriftAnalysisRequest",
        options=(
            Option(
                "--model",
                "modelState",
                "a JSON file holding the modelState (train-gbm's --out, or a saved /train/gbm answer)",
                value=lambda path: _model_state(json_file(path)),
                metavar="PATH",
            ),
            Option(
                "--reference",
                "reference",
                "a JSON file holding a reference alone (field drift only: no trees to score with)",
                value=json_file,
                metavar="PATH",
            ),
            Option("--label", "label", "a column of 0/1 outcomes, for performance", metavar="COLUMN"),
            *ECHO_OPTIONS,
        ),
        run=runs.drift,
    ),
)


def _model_state(document: Any) -> Any:
    # A whole /train/gbm answer (train-gbm's --result) holds the model under `modelState`.
    if isinstance(document, dict) and isinstance(document.get("modelState"), dict):
        return document["modelState"]
    return document
