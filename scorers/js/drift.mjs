// The drift reference of a modelState (its `reference` block) and the statistics that compare a batch
// with it: PSI, KS at the reference's bin edges, and the status PSI gives. The same pure functions as
// the Python domain (src/domain/gbm/reference.py), operation for operation, so both agree to 1e-12.
// index.mjs validates the block at loadModel and exposes driftPsi(model, rows); this module knows
// nothing of trees or rows.

/** A share below this (an empty bin included) counts as this in PSI, so ln never sees 0. */
export const PSI_EPSILON = 1e-4;
/** psi < STABLE_BELOW: "stable". */
export const STABLE_BELOW = 0.1;
/** psi >= DRIFTED_FROM: "drifted"; in between: "watch". */
export const DRIFTED_FROM = 0.25;

// Shares are rounded fractions of row counts; their sum is 1 up to the rounding of a few additions.
const SUM_TOLERANCE = 1e-9;
const MAX_EDGES = 9;
const SCORE_SOURCES = ['training', 'validation'];

// The correctly rounded sum, as Python's math.fsum (Shewchuk's partials, CPython's final rounding):
// the Python domain totals shares with fsum, and KS divides by that total.
function fsum(values) {
  const partials = [];
  for (let k = 0; k < values.length; k++) {
    let x = values[k];
    let i = 0;
    for (let j = 0; j < partials.length; j++) {
      let y = partials[j];
      if (Math.abs(x) < Math.abs(y)) [x, y] = [y, x];
      const hi = x + y;
      const lo = y - (hi - x);
      if (lo !== 0) partials[i++] = lo;
      x = hi;
    }
    partials.length = i;
    partials.push(x);
  }
  let n = partials.length;
  if (n === 0) return 0;
  let hi = partials[--n];
  let lo = 0;
  while (n > 0) {
    const x = hi;
    const y = partials[--n];
    hi = x + y;
    lo = y - (hi - x);
    if (lo !== 0) break;
  }
  // Half-even rounding across several partials.
  if (n > 0 && ((lo < 0 && partials[n - 1] < 0) || (lo > 0 && partials[n - 1] > 0))) {
    const y = lo * 2;
    const x = hi + y;
    if (y === x - hi) hi = x;
  }
  return hi;
}

/** "stable" (psi < 0.1), "watch" (0.1 <= psi < 0.25) or "drifted" (psi >= 0.25). */
export function driftStatus(value) {
  if (value < STABLE_BELOW) return 'stable';
  if (value < DRIFTED_FROM) return 'watch';
  return 'drifted';
}

/** The bin of a numeric value: the number of edges strictly below it (numpy searchsorted "left"). */
export function numericBin(edges, value) {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (edges[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * PSI of a batch's bucket counts against the reference's expected shares (same bucket order):
 * sum of (a - e) * ln(a / e), with every share below PSI_EPSILON counted as PSI_EPSILON.
 */
export function psi(expected, counts) {
  if (expected.length !== counts.length) throw new RangeError(`${expected.length} expected shares but ${counts.length} counts`);
  let n = 0;
  for (let i = 0; i < counts.length; i++) n += counts[i];
  if (!(n > 0)) throw new RangeError('psi needs at least one counted value');
  let total = 0;
  for (let i = 0; i < counts.length; i++) {
    const e = expected[i] < PSI_EPSILON ? PSI_EPSILON : expected[i];
    const share = counts[i] / n;
    const a = share < PSI_EPSILON ? PSI_EPSILON : share;
    total += (a - e) * Math.log(a / e);
  }
  return total;
}

/**
 * KS between the reference's non-missing shares and a batch's non-missing counts, at the reference's
 * bin edges (so a lower bound of the exact two-sample statistic); 0 with no edges, null when either
 * side has no non-missing value.
 */
export function binnedKs(shares, counts) {
  if (shares.length !== counts.length) throw new RangeError(`${shares.length} shares but ${counts.length} counts`);
  const totalRef = fsum(Array.from(shares));
  let totalNew = 0;
  for (let i = 0; i < counts.length; i++) totalNew += counts[i];
  if (!(totalRef > 0) || !(totalNew > 0)) return null;
  let ks = 0;
  let cumRef = 0;
  let cumNew = 0;
  for (let i = 0; i < shares.length - 1; i++) {
    cumRef += shares[i];
    cumNew += counts[i];
    const gap = Math.abs(cumRef / totalRef - cumNew / totalNew);
    if (gap > ks) ks = gap;
  }
  return ks;
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isFiniteNumber = (v) => typeof v === 'number' && Number.isFinite(v);
const isShare = (v) => isFiniteNumber(v) && v >= 0 && v <= 1;

const isCount = (v) => Number.isInteger(v) && v >= 0;

// The checks and messages are the Python domain's (domain.gbm.reference.validate_reference), so both
// scorers refuse the same blocks for the same reason.
function checkEdges(edges, where, refuse) {
  if (!Array.isArray(edges) || edges.length > MAX_EDGES || !edges.every(isFiniteNumber)) {
    throw refuse(`${where}: edges must be a list of at most ${MAX_EDGES} finite numbers`);
  }
  for (let i = 1; i < edges.length; i++) {
    if (!(edges[i] > edges[i - 1])) throw refuse(`${where}: edges must be strictly increasing (edges[${i}] <= edges[${i - 1}])`);
  }
}

// A bucket vector (shares, then other/missing): finite shares in [0, 1] summing to 1.
function checkShares(vector, where, refuse) {
  if (!vector.every(isShare)) throw refuse(`${where}: shares must be finite numbers in [0, 1]`);
  const sum = fsum(vector);
  if (Math.abs(sum - 1) > SUM_TOLERANCE) throw refuse(`${where}: shares must sum to 1 (they sum to ${sum})`);
  return vector.slice();
}

function checkBinned(entry, where, extra, refuse) {
  checkEdges(entry.edges, where, refuse);
  const { shares } = entry;
  if (!Array.isArray(shares) || shares.length !== entry.edges.length + 1) {
    throw refuse(`${where}: shares must hold one share per bin (len(edges) + 1)`);
  }
  return checkShares(shares.concat(extra.map((key) => entry[key])), where, refuse);
}

function compileField(entry, spec, refuse) {
  const where = `field ${JSON.stringify(spec.name)}`;
  if (!isObject(entry) || entry.name !== spec.name || entry.kind !== spec.kind) {
    throw refuse(`${where}: entry must carry the input feature's name and kind, in order`);
  }
  if (spec.kind === 'numeric') {
    const expected = checkBinned(entry, where, ['missing_share'], refuse);
    return { name: spec.name, kind: 'numeric', edges: Float64Array.from(entry.edges), expected };
  }
  const { categories, shares } = entry;
  if (!Array.isArray(categories) || categories.length !== spec.categories.length || categories.some((c, j) => c !== spec.categories[j])) {
    throw refuse(`${where}: categories must equal the input feature's categories`);
  }
  if (!Array.isArray(shares) || shares.length !== categories.length) throw refuse(`${where}: shares must hold one share per category`);
  const expected = checkShares(shares.concat([entry.other_share, entry.missing_share]), where, refuse);
  return { name: spec.name, kind: 'categorical', codes: new Map(categories.map((c, j) => [c, j])), expected };
}

function checkPerformance(performance, refuse) {
  if (!isObject(performance) || !isCount(performance.rows)) {
    throw refuse('performance must be an object with a non-negative integer rows');
  }
  for (const key of ['logloss', 'ece']) {
    if (!isFiniteNumber(performance[key])) throw refuse(`performance: ${key} must be a finite number`);
  }
  if (performance.auc !== null && performance.auc !== undefined && !isFiniteNumber(performance.auc)) {
    throw refuse('performance: auc must be a finite number or null');
  }
}

/**
 * Internal (index.mjs calls it at loadModel): validate a `reference` block against the model's
 * already-validated input_features and compile it; `fail(message)` builds the error to throw.
 */
export function compileReference(block, inputFeatures, fail) {
  const refuse = (message) => fail(`reference: ${message}`);
  if (!isObject(block)) throw refuse('must be an object');
  if (!isCount(block.rows)) throw refuse('rows must be a non-negative integer');
  const { fields } = block;
  if (!Array.isArray(fields) || fields.length !== inputFeatures.length) {
    throw refuse('fields must hold one entry per input feature, in input_features order');
  }
  const compiled = fields.map((entry, i) => compileField(entry, inputFeatures[i], refuse));
  const { score } = block;
  if (!isObject(score) || !isCount(score.rows)) throw refuse('score must be an object with a non-negative integer rows');
  if (!SCORE_SOURCES.includes(score.source)) throw refuse(`score: source must be one of ${JSON.stringify(SCORE_SOURCES)}`);
  const scoreExpected = checkBinned(score, 'score', [], refuse);
  if (block.performance !== undefined && block.performance !== null) checkPerformance(block.performance, refuse);
  return Object.freeze({
    rows: block.rows,
    fields: compiled,
    score: { edges: Float64Array.from(score.edges), expected: scoreExpected },
  });
}

// Counts per bucket: numeric bins then missing (NaN).
function numericCounts(edges, values) {
  const counts = new Array(edges.length + 2).fill(0);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    counts[v !== v ? edges.length + 1 : numericBin(edges, v)] += 1;
  }
  return counts;
}

// Counts per bucket: the categories, then other (a key not recorded, or none: null), then missing
// (undefined).
function categoricalCounts(codes, keys) {
  const other = codes.size;
  const counts = new Array(other + 2).fill(0);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    const code = key === undefined ? other + 1 : codes.get(key);
    counts[code === undefined ? other : code] += 1;
  }
  return counts;
}

/**
 * Internal (driftPsi in index.mjs): the drift report of one batch. `values[f]` holds field f's values
 * (numeric: numbers, NaN = missing; categorical: category keys, null = no key, undefined = missing);
 * `scores` the batch's scores.
 */
export function driftReport(reference, values, scores) {
  const n = scores.length;
  const fields = reference.fields.map((field, f) => {
    const numeric = field.kind === 'numeric';
    const counts = numeric ? numericCounts(field.edges, values[f]) : categoricalCounts(field.codes, values[f]);
    const value = psi(field.expected, counts);
    const last = counts.length - 1;
    return {
      field: field.name,
      kind: field.kind,
      psi: value,
      ks: numeric ? binnedKs(field.expected.slice(0, last), counts.slice(0, last)) : null,
      missingShareChange: counts[last] / n - field.expected[last],
      status: driftStatus(value),
    };
  });
  const counts = numericCounts(reference.score.edges, scores);
  counts.pop(); // a score is never missing
  const scorePsi = psi(reference.score.expected, counts);
  return {
    rows: n,
    fields,
    score: { psi: scorePsi, ks: binnedKs(reference.score.expected, counts), status: driftStatus(scorePsi) },
  };
}
