/** Schema versions of modelState this scorer understands. */
export declare const SUPPORTED_SCHEMA_VERSIONS: readonly number[];
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

/** The modelState contract (schemas/model_state.schema.json). */
export interface ModelState {
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
  /** 1 / (1 + exp(-sigmoid * rawMargin)): LightGBM's predict(). */
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

export declare function loadModel(state: ModelState | Record<string, unknown>): Model;
export declare function score(model: Model, row: Row, options?: ScoreOptions): Score;
export declare function scoreBatch(model: Model, rows: readonly Row[], options?: ScoreOptions): Score[];
export declare function rawMargin(model: Model, row: Row): number;
export declare function encode(model: Model, row: Row): Float64Array;
export declare function parseSigmoid(objective: string): number;
export declare function categoryKey(value: unknown): string | null;
export declare function verifyParity(
  model: Model,
  rows: readonly Row[],
  expectedRawScores: readonly number[],
  tolerance?: number,
): ParityReport;
