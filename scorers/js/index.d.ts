/** Schema versions of modelState this scorer understands: 1 (plain) and 2 (calibration/reference). */
export declare const SUPPORTED_SCHEMA_VERSIONS: readonly number[];
export declare const ISOTONIC: 'isotonic';
export declare const PLATT: 'platt';
/** A share below this (empty bins included) counts as this in PSI: 1e-4. */
export declare const PSI_EPSILON: number;
/** PSI below this is "stable": 0.1. */
export declare const STABLE_BELOW: number;
/** PSI from this on is "drifted": 0.25 (in between: "watch"). */
export declare const DRIFTED_FROM: number;
/** LightGBM's kZeroThreshold (float32(1e-35) widened to double). */
export declare const K_ZERO_THRESHOLD: number;

/** Thrown by loadModel for a modelState this scorer cannot score faithfully. */
export declare class UnsupportedModelError extends Error {
  name: 'UnsupportedModelError';
}

/** An input feature as recorded in modelState.input_features. */
export type InputFeature =
  | { name: string; kind: 'numeric' }
  | { name: string; kind: 'categorical'; encoding: 'onehot' | 'native'; categories: string[] };

/** A LightGBM tree node as dumped by Booster.dump_model(). */
export type TreeNode =
  | {
      split_index?: number;
      split_feature: number;
      threshold: number | string;
      decision_type: '<=' | '==';
      default_left: boolean;
      missing_type: 'None' | 'Zero' | 'NaN';
      internal_value?: number;
      left_child: TreeNode;
      right_child: TreeNode;
      [key: string]: unknown;
    }
  | { leaf_index?: number; leaf_value: number; [key: string]: unknown };

/** modelState.calibration: applied to `score` only (never to rawMargin or contributions). */
export type Calibration =
  | {
      method: 'isotonic';
      fitted_on: number;
      source?: 'validation' | 'cross_fitted';
      /** Breakpoints of LightGBM's probability: strictly increasing, in [0, 1]. */
      x: number[];
      /** Calibrated values at x: non-decreasing, in [0, 1], as long as x. */
      y: number[];
    }
  | {
      method: 'platt';
      fitted_on: number;
      source?: 'validation' | 'cross_fitted';
      /** score = 1 / (1 + exp(-(a * rawMargin + b))); a > 0. */
      a: number;
      b: number;
    };

/** One input feature's training distribution, in input_features order. */
export type ReferenceField =
  | {
      name: string;
      kind: 'numeric';
      /** At most 9 strictly increasing finite edges; bin i holds edges[i-1] < v <= edges[i]. */
      edges: number[];
      /** edges.length + 1 shares of all training rows. */
      shares: number[];
      missing_share: number;
    }
  | {
      name: string;
      kind: 'categorical';
      /** Exactly the input feature's categories, in order. */
      categories: string[];
      shares: number[];
      other_share: number;
      missing_share: number;
    };

/** modelState.reference: what driftPsi compares a batch with. Each bucket vector sums to 1. */
export interface Reference {
  rows: number;
  fields: ReferenceField[];
  score: { rows: number; source: 'validation' | 'training'; edges: number[]; shares: number[] };
  performance?: { rows: number; auc: number | null; logloss: number; ece: number };
}

/** The modelState contract (schemas/model_state.schema.json). */
export interface ModelState {
  /** 2 when calibration or reference is present (a version-1 state may carry neither). */
  schema_version: number;
  objective: string;
  num_class: number;
  num_tree_per_iteration: number;
  max_feature_idx: number;
  feature_names: string[];
  trees: { tree_index?: number; tree_structure: TreeNode; [key: string]: unknown }[];
  link: 'sigmoid';
  sigmoid: number;
  input_features: InputFeature[];
  content_hash: string;
  calibration?: Calibration;
  reference?: Reference;
  [key: string]: unknown;
}

/** A compiled model; treat as opaque. */
export interface Model {
  readonly schemaVersion: number;
  readonly contentHash: string;
  readonly featureNames: readonly string[];
  readonly inputNames: readonly string[];
  readonly numTrees: number;
  readonly sigmoid: number;
  /** Sum of the trees' root values: the starting point of the contributions. */
  readonly baseValue: number;
  /** The calibration method applied to `score`, or null when the model is uncalibrated. */
  readonly calibration: 'isotonic' | 'platt' | null;
  /** Whether the model carries a drift reference (driftPsi needs one). */
  readonly hasReference: boolean;
}

/**
 * A numeric value: a number, a boolean (1/0), null/undefined (missing), or the strings
 * "NaN", "Infinity", "-Infinity" (JSON has no non-finite numbers).
 */
export type NumericValue = number | boolean | null | undefined | 'NaN' | 'Infinity' | '-Infinity' | bigint;
/** A categorical value: matched as a string (booleans as "true"/"false", integers in decimal). */
export type CategoricalValue = string | number | boolean | null | undefined | bigint;
/** A raw row keyed by input feature name, or an already-encoded array in feature_names order. */
export type Row =
  | Record<string, NumericValue | CategoricalValue>
  | ArrayLike<NumericValue>;

export interface ScoreOptions {
  /** Compute per-feature contributions (default true). */
  contributions?: boolean;
}

export interface Score {
  /** Sum of the leaves reached: LightGBM's predict(raw_score=True). */
  rawMargin: number;
  /** 1 / (1 + exp(-sigmoid * rawMargin)) (LightGBM's predict()), then the calibration if any. */
  score: number;
  /** Path contributions per input feature; null when disabled. Sum + baseValue = rawMargin. */
  contributions: Record<string, number> | null;
  baseValue: number;
}

export interface ParityReport {
  ok: boolean;
  checked: number;
  maxAbsDiff: number;
  failures: { index: number; expected: number; actual: number }[];
}

export type DriftStatus = 'stable' | 'watch' | 'drifted';

export interface FieldDrift {
  field: string;
  kind: 'numeric' | 'categorical';
  psi: number;
  /** KS at the reference's bin edges (a lower bound of the exact statistic); null for categorical
   * fields and when either side has no non-missing value. */
  ks: number | null;
  /** The batch's missing share minus the reference's. */
  missingShareChange: number;
  status: DriftStatus;
}

export interface DriftReport {
  rows: number;
  /** One entry per input feature, in model order. */
  fields: FieldDrift[];
  /** Of the model's (calibrated) score. */
  score: { psi: number; ks: number | null; status: DriftStatus };
}

export interface DriftOptions {
  /** The batch's scores, one per row, if already computed (else the rows are scored). */
  scores?: ArrayLike<number>;
}

export declare function loadModel(state: ModelState | Record<string, unknown>): Model;
export declare function score(model: Model, row: Row, options?: ScoreOptions): Score;
export declare function scoreBatch(model: Model, rows: readonly Row[], options?: ScoreOptions): Score[];
export declare function rawMargin(model: Model, row: Row): number;
export declare function encode(model: Model, row: Row): Float64Array;
export declare function parseSigmoid(objective: string): number;
export declare function categoryKey(value: unknown): string | null;
/** Throws UnsupportedModelError without a reference, RangeError for an empty batch. */
export declare function driftPsi(
  model: Model,
  rows: readonly Record<string, NumericValue | CategoricalValue>[],
  options?: DriftOptions,
): DriftReport;
export declare function driftStatus(psi: number): DriftStatus;
/** sum (a - e) ln(a / e) over buckets, every share below PSI_EPSILON counted as PSI_EPSILON. */
export declare function psi(expected: ArrayLike<number>, counts: ArrayLike<number>): number;
/** Max CDF gap at the edges between non-missing shares and counts; null if either side is empty. */
export declare function binnedKs(shares: ArrayLike<number>, counts: ArrayLike<number>): number | null;
/** The number of edges strictly below `value`. */
export declare function numericBin(edges: ArrayLike<number>, value: number): number;
export declare function verifyParity(
  model: Model,
  rows: readonly Row[],
  expectedRawScores: readonly number[],
  tolerance?: number,
): ParityReport;
