// Reference scorer of ML Worker's modelState (LightGBM binary models), dependency-free.
//
// It reproduces LightGBM 4.x's Booster.predict(raw_score=True) on float64 input bit for bit: the
// leaves are summed in tree order exactly as LightGBM does, and every routing rule below is
// LightGBM's own (Tree::NumericalDecision, Tree::CategoricalDecision, the dense-row reader). The
// Python reference scorer (src/domain/gbm/scorer.py) implements the same rules; both are tested
// against LightGBM itself.
//
// Version 2 adds two optional blocks: `calibration` (applied to `score`, never to `rawMargin` or the
// contributions) and `reference`, the training distribution that driftPsi() compares a batch with
// (drift.mjs). A version-1 state may carry neither, so a v1-only scorer refuses a calibrated model
// instead of scoring it uncalibrated.

import { compileReference, driftReport } from './drift.mjs';

export {
  binnedKs, DRIFTED_FROM, driftStatus, numericBin, psi, PSI_EPSILON, STABLE_BELOW,
} from './drift.mjs';

export const SUPPORTED_SCHEMA_VERSIONS = Object.freeze([1, 2]);
export const ISOTONIC = 'isotonic';
export const PLATT = 'platt';

// LightGBM declares `const double kZeroThreshold = 1e-35f`: a float literal widened to double.
export const K_ZERO_THRESHOLD = Math.fround(1e-35);

const NUM_NONE = 0;
const NUM_ZERO = 1;
const NUM_NAN = 2;
const CATEGORY = 3;
const KINDS = { None: NUM_NONE, Zero: NUM_ZERO, NaN: NUM_NAN };
// static_cast<int> keeps values in (-1, 2^31) non-negative; all else reads as a negative code.
const INT_LIMIT = 2147483648;
// The double just below -kZeroThreshold.
const BELOW_MINUS_K_ZERO = (() => {
  const f = new Float64Array([-K_ZERO_THRESHOLD]);
  new BigInt64Array(f.buffer)[0] += 1n; // for a negative double, +1 on the bits moves away from zero
  return f[0];
})();
// Bounds the bitset built per categorical split (2 MiB); trained codes are category indices.
const MAX_CATEGORY_CODE = 2 ** 24 - 1;
const NON_FINITE = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity };
const REQUIRED_KEYS = [
  'schema_version', 'objective', 'num_class', 'num_tree_per_iteration', 'max_feature_idx',
  'feature_names', 'trees', 'link', 'sigmoid', 'input_features', 'content_hash',
];
const HASH_PATTERN = /^sha256:[0-9a-f]{64}$/;
const CAT_THRESHOLD_PATTERN = /^\d+(\|\|\d+)*$/;
const LINEAR_LEAF_KEYS = ['leaf_coeff', 'leaf_const', 'leaf_features'];
// Only schema_version 2 may carry these.
const BLOCK_KEYS = ['calibration', 'reference'];

/** A modelState this scorer cannot score faithfully: unknown version, objective or shape. */
export class UnsupportedModelError extends Error {
  constructor(message) {
    super(message);
    this.name = 'UnsupportedModelError';
  }
}

function fail(message) {
  return new UnsupportedModelError(`modelState: ${message}`);
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isFiniteNumber = (v) => typeof v === 'number' && Number.isFinite(v);
const isInteger = (v) => typeof v === 'number' && Number.isInteger(v);

/** The sigma of `binary sigmoid:<sigma>`; any other objective is refused. */
export function parseSigmoid(objective) {
  const tokens = String(objective).split(/\s+/).filter(Boolean);
  if (tokens[0] !== 'binary') {
    throw fail(`objective ${JSON.stringify(objective)} is not supported: only binary models can be scored`);
  }
  const sigmas = tokens.slice(1).filter((t) => t.startsWith('sigmoid:'));
  if (sigmas.length !== 1) throw fail(`objective ${JSON.stringify(objective)} lacks one sigmoid:<sigma>`);
  const text = sigmas[0].slice('sigmoid:'.length);
  const sigma = Number(text);
  if (text.trim() === '' || !Number.isFinite(sigma) || sigma <= 0) {
    throw fail(`objective ${JSON.stringify(objective)}: sigmoid must be a positive finite number`);
  }
  return sigma;
}

function inputColumns(inputFeatures, featureNames) {
  if (!Array.isArray(inputFeatures) || inputFeatures.length === 0) {
    throw fail('input_features must be a non-empty array');
  }
  const position = new Map(featureNames.map((name, i) => [name, i]));
  const owner = new Map();
  const seen = new Set();
  const inputs = [];
  for (const spec of inputFeatures) {
    if (!isObject(spec) || typeof spec.name !== 'string') throw fail('each input feature needs a string name');
    const { name, kind } = spec;
    if (seen.has(name)) throw fail(`input feature ${JSON.stringify(name)} is listed twice`);
    seen.add(name);
    let wanted;
    let encoding = null;
    let codes = null;
    if (kind === 'numeric') {
      wanted = [name];
    } else if (kind === 'categorical') {
      const { categories } = spec;
      encoding = spec.encoding;
      if (!Array.isArray(categories) || !categories.every((c) => typeof c === 'string')) {
        throw fail(`categorical input ${JSON.stringify(name)} needs categories as an array of strings`);
      }
      codes = new Map(categories.map((c, i) => [c, i]));
      if (codes.size !== categories.length) throw fail(`categorical input ${JSON.stringify(name)} has duplicates`);
      if (encoding === 'onehot') wanted = categories.map((c) => `${name}=${c}`);
      else if (encoding === 'native') wanted = [name];
      else throw fail(`input ${JSON.stringify(name)}: encoding ${JSON.stringify(encoding)} is not onehot or native`);
    } else {
      throw fail(`input ${JSON.stringify(name)}: kind ${JSON.stringify(kind)} is not numeric or categorical`);
    }
    const columns = wanted.map((column) => {
      const index = position.get(column);
      if (index === undefined) {
        throw fail(`input ${JSON.stringify(name)} expects column ${JSON.stringify(column)}, absent from feature_names`);
      }
      if (owner.has(index)) {
        throw fail(`column ${JSON.stringify(column)} is claimed by ${JSON.stringify(owner.get(index))} and ${JSON.stringify(name)}`);
      }
      owner.set(index, name);
      return index;
    });
    inputs.push({ name, kind, encoding, columns, codes });
  }
  if (owner.size !== featureNames.length) {
    const orphans = featureNames.filter((_, i) => !owner.has(i)).slice(0, 5);
    throw fail(`columns not produced by any input feature: ${JSON.stringify(orphans)}`);
  }
  return inputs;
}

function validateHeader(state) {
  if (!isObject(state)) throw fail('must be a JSON object');
  // The version first: a newer contract may rename keys, and "unsupported version" is the real cause.
  if ('schema_version' in state && !SUPPORTED_SCHEMA_VERSIONS.includes(state.schema_version)) {
    throw fail(`schema_version ${JSON.stringify(state.schema_version)} is not supported (supported: ${SUPPORTED_SCHEMA_VERSIONS.join(', ')}); upgrade the scorer`);
  }
  const carried = BLOCK_KEYS.filter((k) => k in state);
  if (state.schema_version === 1 && carried.length) {
    throw fail(`schema_version 1 cannot carry ${carried.join(' or ')}: a model with them is version 2`);
  }
  const missing = REQUIRED_KEYS.filter((k) => !(k in state));
  if (missing.length) throw fail(`lacks required keys: ${missing.join(', ')}`);
  const sigma = parseSigmoid(state.objective);
  if (state.link !== 'sigmoid') throw fail(`link ${JSON.stringify(state.link)} is not supported (only "sigmoid")`);
  if (state.sigmoid !== sigma) throw fail(`sigmoid ${state.sigmoid} disagrees with objective ${JSON.stringify(state.objective)}`);
  for (const key of ['num_class', 'num_tree_per_iteration']) {
    if (state[key] !== 1) throw fail(`${key} is ${JSON.stringify(state[key])}: only single-output binary models are supported`);
  }
  if (state.average_output === true) throw fail('average_output models (boosting "rf") are not supported');
  const names = state.feature_names;
  if (!Array.isArray(names) || !names.every((n) => typeof n === 'string')) throw fail('feature_names must be an array of strings');
  if (new Set(names).size !== names.length) throw fail('feature_names has duplicates');
  if (state.max_feature_idx !== names.length - 1) throw fail('max_feature_idx disagrees with feature_names');
  if (!Array.isArray(state.trees)) throw fail('trees must be an array');
  // The hash is recorded, not recomputed: see README ("Content hash").
  if (typeof state.content_hash !== 'string' || !HASH_PATTERN.test(state.content_hash)) {
    throw fail('content_hash must be "sha256:" and 64 lowercase hex digits');
  }
  return sigma;
}

// Flattens every tree into shared typed arrays; a child >= 0 is an inner node, < 0 is ~leaf.
function compileTrees(trees, numFeatures, columnOwner) {
  const feature = [];
  const threshold = [];
  const kind = [];
  const defaultLeft = [];
  const left = [];
  const right = [];
  const value = [];
  const catOffset = [];
  const catWords = [];
  const catBits = [];
  const leafValue = [];
  const roots = [];

  const add = (node, where) => {
    if (!isObject(node)) throw fail(`${where} has a node that is not an object`);
    if (!('split_feature' in node)) {
      if (LINEAR_LEAF_KEYS.some((k) => k in node)) throw fail(`${where} has linear leaves: linear_tree models are not supported`);
      if (!isFiniteNumber(node.leaf_value)) throw fail(`${where} has a leaf without a finite leaf_value`);
      leafValue.push(node.leaf_value);
      return ~(leafValue.length - 1);
    }
    const f = node.split_feature;
    if (!isInteger(f) || f < 0 || f >= numFeatures) throw fail(`${where} splits on feature ${f}, outside feature_names`);
    if (typeof node.default_left !== 'boolean') throw fail(`${where} has a split without a boolean default_left`);
    if (!(node.missing_type in KINDS)) throw fail(`${where} has missing_type ${JSON.stringify(node.missing_type)}`);
    const internal = node.internal_value ?? 0;
    if (typeof internal !== 'number') throw fail(`${where} has a non-numeric internal_value`);
    const index = feature.length;
    feature.push(f);
    defaultLeft.push(node.default_left ? 1 : 0);
    value.push(internal);
    left.push(0);
    right.push(0);
    if (node.decision_type === '==') {
      if (typeof node.threshold !== 'string' || !CAT_THRESHOLD_PATTERN.test(node.threshold)) {
        throw fail(`${where} has a categorical split whose threshold is not "||"-joined codes`);
      }
      const codes = node.threshold.split('||').map(Number);
      if (codes.some((c) => c > MAX_CATEGORY_CODE)) throw fail(`${where} has a categorical code above ${MAX_CATEGORY_CODE}`);
      const words = (codes.reduce((a, b) => Math.max(a, b), 0) >>> 5) + 1;
      const offset = catBits.length;
      for (let w = 0; w < words; w++) catBits.push(0);
      for (const c of codes) catBits[offset + (c >>> 5)] |= 1 << (c & 31);
      kind.push(CATEGORY);
      threshold.push(NaN);
      catOffset.push(offset);
      catWords.push(words);
    } else if (node.decision_type === '<=') {
      if (!isFiniteNumber(node.threshold)) throw fail(`${where} has a numeric split without a finite threshold`);
      kind.push(KINDS[node.missing_type]);
      threshold.push(node.threshold);
      catOffset.push(0);
      catWords.push(0);
    } else {
      throw fail(`${where} has decision_type ${JSON.stringify(node.decision_type)} (supported: "<=", "==")`);
    }
    return index;
  };

  trees.forEach((tree, t) => {
    const where = `trees[${t}]`;
    if (!isObject(tree) || !isObject(tree.tree_structure)) throw fail(`${where} needs a tree_structure object`);
    if (tree.is_linear) throw fail(`${where} is a linear tree: linear_tree models are not supported`);
    const rootRef = add(tree.tree_structure, where);
    roots.push(rootRef);
    // Iterative: deep trees would overflow the call stack.
    const pending = rootRef >= 0 ? [[tree.tree_structure, rootRef]] : [];
    while (pending.length) {
      const [node, index] = pending.pop();
      const l = add(node.left_child, where);
      const r = add(node.right_child, where);
      left[index] = l;
      right[index] = r;
      if (l >= 0) pending.push([node.left_child, l]);
      if (r >= 0) pending.push([node.right_child, r]);
    }
  });

  // LightGBM's dense-row reader drops inputs with |x| <= kZeroThreshold, so they reach the trees as
  // exact 0. Instead of zeroing every row, move the few thresholds in [-kZero, kZero) to the value
  // that routes every input as the zeroed input would: left iff x <= kZero when 0 <= t, and left iff
  // x < -kZero when t < 0. NaN still reads as 0 and 0 <= t keeps its truth value.
  for (let i = 0; i < threshold.length; i++) {
    const t = threshold[i];
    if (kind[i] !== CATEGORY && t >= -K_ZERO_THRESHOLD && t < K_ZERO_THRESHOLD) {
      threshold[i] = t >= 0 ? K_ZERO_THRESHOLD : BELOW_MINUS_K_ZERO;
    }
  }
  const childValue = (c) => (c >= 0 ? value[c] : leafValue[~c]);
  return {
    roots: Int32Array.from(roots),
    feature: Int32Array.from(feature),
    owner: Int32Array.from(feature, (f) => columnOwner[f]),
    // Path contribution of each edge, as the Python scorer computes it (same double).
    deltaLeft: Float64Array.from(left, (c, i) => childValue(c) - value[i]),
    deltaRight: Float64Array.from(right, (c, i) => childValue(c) - value[i]),
    threshold: Float64Array.from(threshold),
    kind: Uint8Array.from(kind),
    defaultLeft: Uint8Array.from(defaultLeft),
    left: Int32Array.from(left),
    right: Int32Array.from(right),
    value: Float64Array.from(value),
    catOffset: Int32Array.from(catOffset),
    catWords: Int32Array.from(catWords),
    catBits: Uint32Array.from(catBits, (b) => b >>> 0),
    leafValue: Float64Array.from(leafValue),
  };
}

const CALIBRATION_SOURCES = ['cross_fitted', 'validation'];

// Returns (probability, rawMargin) -> calibrated score. The checks and messages are the Python
// scorer's (domain.gbm.calibration), and the expressions formats.md's, operation for operation, so
// both scorers agree to the last bit.
function compileCalibration(block) {
  const refuse = (message) => fail(`calibration: ${message}`);
  if (!isObject(block)) throw refuse('must be an object');
  const { method } = block;
  if (method !== ISOTONIC && method !== PLATT) throw refuse(`method ${JSON.stringify(method)} is not one of ["${ISOTONIC}", "${PLATT}"]`);
  if (!isInteger(block.fitted_on) || block.fitted_on < 0) throw refuse('fitted_on must be a non-negative integer');
  if (!CALIBRATION_SOURCES.includes(block.source)) {
    throw refuse(`source ${JSON.stringify(block.source)} is not one of ${JSON.stringify(CALIBRATION_SOURCES)}`);
  }
  if (method === PLATT) {
    const { a, b } = block;
    if (!isFiniteNumber(a) || a <= 0) throw refuse('platt needs a finite a > 0 (a <= 0 would reverse the ranking)');
    if (!isFiniteNumber(b)) throw refuse('platt needs a finite b');
    return (_probability, margin) => 1 / (1 + Math.exp(-(a * margin + b)));
  }
  if (!Array.isArray(block.x) || !Array.isArray(block.y) || block.x.length === 0 || block.x.length !== block.y.length) {
    throw refuse('isotonic needs x and y: non-empty lists of the same length');
  }
  if (!block.x.concat(block.y).every((v) => isFiniteNumber(v) && v >= 0 && v <= 1)) {
    throw refuse('isotonic x and y must be finite numbers in [0, 1]');
  }
  const x = Float64Array.from(block.x);
  const y = Float64Array.from(block.y);
  for (let i = 1; i < x.length; i++) {
    if (!(x[i] > x[i - 1])) throw refuse(`isotonic x must be strictly increasing (x[${i}] <= x[${i - 1}])`);
  }
  for (let i = 1; i < y.length; i++) {
    if (!(y[i] >= y[i - 1])) throw refuse(`isotonic y must be non-decreasing (y[${i}] < y[${i - 1}])`);
  }
  const last = x.length - 1;
  return (p) => {
    if (p <= x[0]) return y[0];
    if (p >= x[last]) return y[last];
    // The largest i with x[i] <= p: x[lo] <= p < x[hi] throughout.
    let lo = 0;
    let hi = last;
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1;
      if (x[mid] <= p) lo = mid;
      else hi = mid;
    }
    const q = y[lo] + (p - x[lo]) * ((y[lo + 1] - y[lo]) / (x[lo + 1] - x[lo]));
    return Math.min(1, Math.max(0, q));
  };
}

/**
 * Validate a modelState and compile it for scoring. Throws UnsupportedModelError on an unknown
 * schema_version, a non-binary objective, linear trees, or any malformed shape.
 */
export function loadModel(state) {
  const sigmoid = validateHeader(state);
  const featureNames = state.feature_names.slice();
  const inputs = inputColumns(state.input_features, featureNames);
  const owner = new Int32Array(featureNames.length);
  inputs.forEach((input, i) => input.columns.forEach((c) => { owner[c] = i; }));
  const trees = compileTrees(state.trees, featureNames.length, owner);
  const hasCalibration = state.calibration !== undefined;
  const calibrate = hasCalibration ? compileCalibration(state.calibration) : null;
  const reference = state.reference !== undefined ? compileReference(state.reference, state.input_features, fail) : null;
  let baseValue = 0;
  for (const root of trees.roots) baseValue += root >= 0 ? trees.value[root] : trees.leafValue[~root];
  return Object.freeze({
    schemaVersion: state.schema_version,
    contentHash: state.content_hash,
    featureNames: Object.freeze(featureNames),
    inputNames: Object.freeze(inputs.map((i) => i.name)),
    numTrees: trees.roots.length,
    sigmoid,
    baseValue,
    calibration: hasCalibration ? state.calibration.method : null,
    hasReference: reference !== null,
    _calibrate: calibrate,
    _reference: reference,
    _encoder: {
      numericNames: inputs.filter((i) => i.kind === 'numeric').map((i) => i.name),
      numericColumns: Int32Array.from(inputs.filter((i) => i.kind === 'numeric'), (i) => i.columns[0]),
      categoricals: inputs.filter((i) => i.kind === 'categorical'),
    },
    _contributionsTemplate: Object.fromEntries(inputs.map((i) => [i.name, 0])),
    _trees: trees,
    _x: new Float64Array(featureNames.length),
    _credit: new Float64Array(inputs.length),
  });
}

function toNumber(value, field) {
  if (typeof value === 'number') return value;
  if (value === null || value === undefined) return NaN;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'string' && Object.hasOwn(NON_FINITE, value)) return NON_FINITE[value];
  if (typeof value === 'bigint') return Number(value);
  throw new TypeError(`${field}: expected a number, null, "NaN", "Infinity" or "-Infinity", got ${JSON.stringify(value)}`);
}

/** The category string a raw value matches: strings as-is, booleans "true"/"false", integral numbers. */
export function categoryKey(value) {
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number' && Number.isInteger(value) && Math.abs(value) < 2 ** 53) return String(value);
  return null;
}

function encodeInto(model, row, x) {
  const names = model.featureNames;
  if (Array.isArray(row) || ArrayBuffer.isView(row)) {
    if (row.length !== names.length) {
      throw new TypeError(`an encoded row needs ${names.length} values, got ${row.length}`);
    }
    for (let i = 0; i < names.length; i++) x[i] = toNumber(row[i], names[i]);
    return x;
  }
  if (row === null || typeof row !== 'object') {
    throw new TypeError('a row must be an object keyed by feature name or an array in feature_names order');
  }
  const { numericNames, numericColumns, categoricals } = model._encoder;
  for (let i = 0; i < numericNames.length; i++) {
    const name = numericNames[i];
    const value = row[name];
    // Not own: an inherited member such as `constructor` is not a value of the row.
    x[numericColumns[i]] = typeof value === 'number' ? value : toNumber(Object.hasOwn(row, name) ? value : undefined, name);
  }
  for (let i = 0; i < categoricals.length; i++) {
    const input = categoricals[i];
    const value = Object.hasOwn(row, input.name) ? row[input.name] : undefined;
    const key = value === null || value === undefined ? null : categoryKey(value);
    const code = key === null ? undefined : input.codes.get(key);
    const cols = input.columns;
    if (input.encoding === 'onehot') {
      for (let j = 0; j < cols.length; j++) x[cols[j]] = 0;
      if (code !== undefined) x[cols[code]] = 1;
    } else {
      x[cols[0]] = code === undefined ? NaN : code;
    }
  }
  return x;
}

/** The float64 vector, in feature_names order, that LightGBM would be given for `row`. */
export function encode(model, row) {
  return encodeInto(model, row, new Float64Array(model.featureNames.length));
}

// One routing step of LightGBM: the child `node` sends `x` to. Small enough for V8 to inline.
function route(t, node, x) {
  const v = x[t.feature[node]];
  switch (t.kind[node]) {
    case NUM_NONE:
      // NaN reads as 0.
      return (v !== v ? 0 <= t.threshold[node] : v <= t.threshold[node]) ? t.left[node] : t.right[node];
    case NUM_NAN:
      if (v !== v) return t.defaultLeft[node] === 1 ? t.left[node] : t.right[node];
      return v <= t.threshold[node] ? t.left[node] : t.right[node];
    case NUM_ZERO:
      // NaN reads as 0, and 0 (|x| <= kZeroThreshold) is the missing value.
      if (v !== v || (v >= -K_ZERO_THRESHOLD && v <= K_ZERO_THRESHOLD)) {
        return t.defaultLeft[node] === 1 ? t.left[node] : t.right[node];
      }
      return v <= t.threshold[node] ? t.left[node] : t.right[node];
    default: {
      // Categorical: NaN, negative and out-of-int-range codes go right; -1 < v < 0 truncates to 0.
      if (!(v > -1 && v < INT_LIMIT)) return t.right[node];
      const code = v >>> 0;
      const word = code >>> 5;
      const hit = word < t.catWords[node] && ((t.catBits[t.catOffset[node] + word] >>> (code & 31)) & 1) === 1;
      return hit ? t.left[node] : t.right[node];
    }
  }
}

function walkRaw(t, x) {
  const { roots, leafValue } = t;
  let total = 0;
  for (let tree = 0; tree < roots.length; tree++) {
    let node = roots[tree];
    while (node >= 0) node = route(t, node, x);
    total += leafValue[~node];
  }
  return total;
}

function walkCredit(t, x, credit) {
  const { roots, leafValue, owner, deltaLeft, deltaRight, left } = t;
  let total = 0;
  for (let tree = 0; tree < roots.length; tree++) {
    let node = roots[tree];
    while (node >= 0) {
      const child = route(t, node, x);
      credit[owner[node]] += child === left[node] ? deltaLeft[node] : deltaRight[node];
      node = child;
    }
    total += leafValue[~node];
  }
  return total;
}

// LightGBM's probability, then the calibration if the model carries one. Math.exp overflowing to
// Infinity gives 0, as LightGBM's sigmoid does in C.
function probability(model, rawMargin) {
  const p = 1 / (1 + Math.exp(-model.sigmoid * rawMargin));
  return model._calibrate === null ? p : model._calibrate(p, rawMargin);
}

/** Sum of the leaves reached: equals LightGBM's predict(raw_score=True). */
export function rawMargin(model, row) {
  return walkRaw(model._trees, encodeInto(model, row, model._x));
}

/**
 * Score one row: {rawMargin, score, contributions, baseValue}. `contributions` maps every input
 * feature to its path contribution; pass {contributions: false} to skip them (faster).
 */
export function score(model, row, options) {
  const x = encodeInto(model, row, model._x);
  if (options && options.contributions === false) {
    const margin = walkRaw(model._trees, x);
    return { rawMargin: margin, score: probability(model, margin), contributions: null, baseValue: model.baseValue };
  }
  const credit = model._credit.fill(0);
  const margin = walkCredit(model._trees, x, credit);
  // Cloning a template keeps every result object on one hidden class.
  const contributions = { ...model._contributionsTemplate };
  const names = model.inputNames;
  for (let i = 0; i < names.length; i++) contributions[names[i]] = credit[i];
  return { rawMargin: margin, score: probability(model, margin), contributions, baseValue: model.baseValue };
}

/** Score many rows; same options as score(). */
export function scoreBatch(model, rows, options) {
  const out = new Array(rows.length);
  for (let i = 0; i < rows.length; i++) out[i] = score(model, rows[i], options);
  return out;
}

/**
 * Drift of a batch of rows against the model's training reference (modelState.reference): PSI, KS and
 * the missing-share change per input field, and PSI/KS of the (calibrated) score. Rows are objects
 * keyed by input feature, read as score() reads them. `options.scores`: the batch's scores if already
 * computed (e.g. the ones served), instead of scoring the rows again.
 */
export function driftPsi(model, rows, options) {
  const reference = model._reference;
  if (reference === null || reference === undefined) {
    throw new UnsupportedModelError('modelState: has no reference (the drift reference of schema_version 2): retrain with the reference included to measure drift');
  }
  if (!Array.isArray(rows) || rows.length === 0) throw new RangeError('driftPsi needs a non-empty array of rows');
  const given = options && options.scores !== undefined ? options.scores : null;
  if (given !== null && (!(Array.isArray(given) || ArrayBuffer.isView(given)) || given.length !== rows.length)) {
    throw new TypeError(`options.scores must hold one score per row (${rows.length})`);
  }
  const n = rows.length;
  const values = reference.fields.map((field) => (field.kind === 'numeric' ? new Float64Array(n) : new Array(n)));
  const scores = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    const row = rows[r];
    if (row === null || typeof row !== 'object' || Array.isArray(row) || ArrayBuffer.isView(row)) {
      throw new TypeError(`row ${r}: driftPsi needs rows as objects keyed by input feature name`);
    }
    reference.fields.forEach((field, f) => {
      const value = Object.hasOwn(row, field.name) ? row[field.name] : undefined;
      if (field.kind === 'numeric') {
        values[f][r] = toNumber(value, field.name);
      } else {
        // undefined marks missing; null a value no category can match (it falls in "other").
        values[f][r] = value === null || value === undefined ? undefined : categoryKey(value);
      }
    });
    if (given === null) {
      scores[r] = score(model, row, { contributions: false }).score;
    } else {
      const s = given[r];
      if (!isFiniteNumber(s) || s < 0 || s > 1) throw new TypeError(`options.scores[${r}] must be a number in [0, 1]`);
      scores[r] = s;
    }
  }
  return driftReport(reference, values, scores);
}

/**
 * Check a model against LightGBM's own raw scores for some rows (e.g. a parity fixture from
 * /train/gbm) before activating it.
 */
export function verifyParity(model, rows, expectedRawScores, tolerance = 1e-12) {
  if (rows.length !== expectedRawScores.length) {
    throw new TypeError(`${rows.length} rows but ${expectedRawScores.length} expected raw scores`);
  }
  const failures = [];
  let maxAbsDiff = 0;
  for (let i = 0; i < rows.length; i++) {
    const actual = rawMargin(model, rows[i]);
    const expected = expectedRawScores[i];
    const diff = Math.abs(actual - expected);
    if (!(diff <= tolerance)) failures.push({ index: i, expected, actual });
    if (diff > maxAbsDiff || Number.isNaN(diff)) maxAbsDiff = diff;
  }
  return { ok: failures.length === 0, checked: rows.length, maxAbsDiff, failures };
}
