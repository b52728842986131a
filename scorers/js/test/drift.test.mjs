// The drift reference (modelState.reference) and driftPsi on a hand-built model, every number
// computed by hand from formats.md's definitions.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  binnedKs, DRIFTED_FROM, driftPsi, driftStatus, loadModel, numericBin, psi, PSI_EPSILON, score,
  STABLE_BELOW, UnsupportedModelError,
} from '../index.mjs';

const HASH = `sha256:${'0'.repeat(64)}`;
const LEFT = 1;
const RIGHT = 2;

const REFERENCE = {
  rows: 1000,
  fields: [
    { name: 'x', kind: 'numeric', edges: [0, 1], shares: [0.3, 0.3, 0.3], missing_share: 0.1 },
    { name: 'c', kind: 'categorical', categories: ['a', 'b'], shares: [0.5, 0.4], other_share: 0.05, missing_share: 0.05 },
  ],
  score: { rows: 200, source: 'validation', edges: [0.8], shares: [0.5, 0.5] },
};

// x (numeric) and c (one-hot a/b); one tree on x: x <= 0.5 (NaN reads as 0) -> 1, else 2.
function stateOf({ reference = REFERENCE, version = 2, ...rest } = {}) {
  return {
    schema_version: version,
    objective: 'binary sigmoid:1',
    num_class: 1,
    num_tree_per_iteration: 1,
    max_feature_idx: 2,
    feature_names: ['x', 'c=a', 'c=b'],
    trees: [{
      tree_index: 0,
      tree_structure: {
        split_feature: 0, threshold: 0.5, decision_type: '<=', default_left: true, missing_type: 'None',
        internal_value: 1.5, left_child: { leaf_value: LEFT }, right_child: { leaf_value: RIGHT },
      },
    }],
    link: 'sigmoid',
    sigmoid: 1,
    input_features: [
      { name: 'x', kind: 'numeric' },
      { name: 'c', kind: 'categorical', encoding: 'onehot', categories: ['a', 'b'] },
    ],
    content_hash: HASH,
    ...(reference === null ? {} : { reference }),
    ...rest,
  };
}

// sum (a - e) ln(a / e), written out term by term below.
const term = (a, e) => (a - e) * Math.log(a / e);
const close = (actual, expected, what) => assert.ok(Math.abs(actual - expected) <= 1e-15, `${what}: ${actual} vs ${expected}`);

test('constants and status thresholds', () => {
  assert.equal(PSI_EPSILON, 1e-4);
  assert.equal(STABLE_BELOW, 0.1);
  assert.equal(DRIFTED_FROM, 0.25);
  assert.equal(driftStatus(0), 'stable');
  assert.equal(driftStatus(0.0999), 'stable');
  assert.equal(driftStatus(0.1), 'watch');
  assert.equal(driftStatus(0.2499), 'watch');
  assert.equal(driftStatus(0.25), 'drifted');
  assert.equal(driftStatus(3), 'drifted');
});

test('numericBin counts the edges strictly below the value', () => {
  const edges = [1, 2, 3];
  const cases = [[-Infinity, 0], [0.5, 0], [1, 0], [1.0000001, 1], [2, 1], [3, 2], [3.5, 3], [Infinity, 3]];
  for (const [v, bin] of cases) assert.equal(numericBin(edges, v), bin, `${v}`);
  assert.equal(numericBin([], 5), 0);
});

test('psi: a hand computation, and the epsilon for empty bins', () => {
  // a = [0.75, 0.25] against e = [0.5, 0.5]: 0.25 ln 1.5 - 0.25 ln 0.5 = 0.25 ln 3.
  close(psi([0.5, 0.5], [3, 1]), 0.25 * Math.log(3), 'two bins');
  assert.equal(psi([0.2, 0.3, 0.5], [2, 3, 5]), 0);
  // An empty new bin and an empty reference bin both count as 1e-4 (no renormalising).
  close(psi([1, 0], [0, 2]), term(1e-4, 1) + term(1, 1e-4), 'epsilon both sides');
  close(psi([0.99995, 0.00005], [1, 0]), term(1, 0.99995), 'share below epsilon');
  assert.throws(() => psi([1], [0]), RangeError);
  assert.throws(() => psi([0.5, 0.5], [1]), RangeError);
});

test('binnedKs: the largest CDF gap at the edges, over non-missing values', () => {
  // F_ref = 0.25, 0.5; F_new = 0.5, 0.5.
  assert.equal(binnedKs([0.25, 0.25, 0.5], [2, 0, 2]), 0.25);
  // Shares need not sum to 1 without the missing share: they are renormalised.
  close(binnedKs([0.3, 0.3, 0.3], [1, 1, 1]), 0, 'renormalised');
  assert.equal(binnedKs([1], [7]), 0);
  // The shares' total is correctly rounded, as Python's math.fsum: 0.3 + 0.6 + 0.1 is exactly 1 (a
  // plain loop gives 0.9999999999999999, and KS 0.30000000000000004 where Python gives 0.3).
  assert.equal(binnedKs([0.3, 0.6, 0.1], [0, 1, 0]), 0.3);
  assert.equal(binnedKs([0.3, 0.6, 0.1], [1, 1, 0]), 0.2);
  assert.equal(binnedKs([0.5, 0.5], [0, 0]), null);
  assert.equal(binnedKs([0, 0], [1, 2]), null);
});

test('driftPsi on a hand-made batch: every bucket, missing value and status', () => {
  const model = loadModel(stateOf());
  assert.equal(model.hasReference, true);
  const rows = [
    { x: -1, c: 'a' }, // bin 0
    { x: 0, c: 'a' }, // bin 0: 0 is not above edge 0
    { x: true, c: 'b' }, // 1 -> bin 1
    { x: 0.5, c: 'b' }, // bin 1
    { x: 'Infinity', c: 'z' }, // bin 2; c other
    { x: 7, c: 1.5 }, // bin 2; c other (no key)
    { x: null, c: true }, // missing; c other ("true" not recorded)
    { x: 'NaN', c: null }, // missing; c missing
    { c: 'a' }, // x absent: missing
    { x: NaN }, // missing; c absent: missing
  ];
  const report = driftPsi(model, rows);
  assert.equal(report.rows, 10);
  const [x, c] = report.fields;
  // x: counts [2, 2, 2, 4] / 10 against [0.3, 0.3, 0.3, 0.1].
  const xPsi = term(0.2, 0.3) + term(0.2, 0.3) + term(0.2, 0.3) + term(0.4, 0.1);
  close(x.psi, xPsi, 'x psi');
  assert.equal(x.kind, 'numeric');
  assert.equal(x.field, 'x');
  // Non-missing: F_new = 1/3, 2/3 and F_ref = 1/3, 2/3.
  close(x.ks, 0, 'x ks');
  close(x.missingShareChange, 0.4 - 0.1, 'x missing');
  assert.equal(x.status, 'drifted');
  // c: counts a 3, b 2, other 3, missing 2.
  const cPsi = term(0.3, 0.5) + term(0.2, 0.4) + term(0.3, 0.05) + term(0.2, 0.05);
  close(c.psi, cPsi, 'c psi');
  assert.deepEqual([c.field, c.kind, c.ks, c.status], ['c', 'categorical', null, 'drifted']);
  close(c.missingShareChange, 0.2 - 0.05, 'c missing');
  // Score: x <= 0.5 or missing -> sigmoid(1) = 0.731 (bin 0); else sigmoid(2) = 0.881 (bin 1).
  // PSI 0.169: the score is on watch.
  const left = rows.filter((r) => score(model, r).rawMargin === LEFT).length;
  assert.equal(left, 7);
  close(report.score.psi, term(0.7, 0.5) + term(0.3, 0.5), 'score psi');
  close(report.score.ks, 0.2, 'score ks');
  assert.equal(report.score.status, 'watch');
  assert.deepEqual(Object.keys(report), ['rows', 'fields', 'score']);
  assert.deepEqual(Object.keys(x), ['field', 'kind', 'psi', 'ks', 'missingShareChange', 'status']);
});

test('driftPsi: a batch matching the reference is stable with PSI 0', () => {
  const model = loadModel(stateOf());
  const rows = [];
  for (let i = 0; i < 20; i++) {
    // x: 6 in bin 0, 6 in bin 1, 6 in bin 2, 2 missing; c: 10 a, 8 b, 1 other, 1 missing.
    const x = i < 6 ? -1 : i < 12 ? 0.7 : i < 18 ? 5 : null;
    const c = i < 10 ? 'a' : i < 18 ? 'b' : i === 18 ? 'zz' : null;
    rows.push({ x, c });
  }
  // Scores: x <= 0.5 or missing -> bin 0 (8 rows), else bin 1 (12 rows): 0.4/0.6 against 0.5/0.5.
  const report = driftPsi(model, rows);
  for (const field of report.fields) {
    close(field.psi, 0, field.field);
    assert.equal(field.status, 'stable');
    close(field.missingShareChange, 0, field.field);
  }
  close(report.score.psi, term(0.4, 0.5) + term(0.6, 0.5), 'score psi');
  assert.equal(report.score.status, 'stable');
});

test('driftPsi uses the calibrated score, and options.scores when given', () => {
  // Platt a = 1, b = -10 pushes both scores below the 0.8 edge.
  const model = loadModel(stateOf({ calibration: { method: 'platt', fitted_on: 10, source: 'validation', a: 1, b: -10 } }));
  const rows = [{ x: 1 }, { x: 2 }];
  assert.ok(rows.every((r) => score(model, r).score < 0.8));
  const report = driftPsi(model, rows);
  close(report.score.psi, term(1, 0.5) + term(1e-4, 0.5), 'calibrated score psi');
  const given = driftPsi(model, rows, { scores: [0.9, 0.95] });
  close(given.score.psi, term(1e-4, 0.5) + term(1, 0.5), 'given scores');
  assert.deepEqual(given.fields, report.fields);
  assert.throws(() => driftPsi(model, rows, { scores: [0.5] }), TypeError);
  assert.throws(() => driftPsi(model, rows, { scores: [0.5, 1.5] }), TypeError);
  assert.throws(() => driftPsi(model, rows, { scores: [0.5, null] }), TypeError);
});

test('driftPsi refuses a model without a reference, an empty batch and rows it cannot read', () => {
  const plain = loadModel(stateOf({ reference: null }));
  assert.equal(plain.hasReference, false);
  assert.throws(() => driftPsi(plain, [{ x: 1 }]), (e) => e instanceof UnsupportedModelError && /no reference/.test(e.message));
  const model = loadModel(stateOf());
  assert.throws(() => driftPsi(model, []), RangeError);
  assert.throws(() => driftPsi(model, 'rows'), RangeError);
  assert.throws(() => driftPsi(model, [[1, 0, 0]]), /objects keyed by input feature/);
  assert.throws(() => driftPsi(model, [null]), TypeError);
  assert.throws(() => driftPsi(model, [{ x: 'high' }]), /x: expected a number/);
});

test('malformed reference blocks are refused at loadModel, naming the key', () => {
  const [x, c] = REFERENCE.fields;
  const withField = (i, change) => ({ ...REFERENCE, fields: REFERENCE.fields.map((f, j) => (j === i ? { ...f, ...change } : f)) });
  const cases = [
    ['not an object', [], /reference: must be an object/],
    ['negative rows', { ...REFERENCE, rows: -1 }, /reference: rows must be a non-negative integer/],
    ['fields missing', { ...REFERENCE, fields: undefined }, /reference: fields must hold one entry per input feature/],
    ['one field short', { ...REFERENCE, fields: [x] }, /reference: fields must hold one entry per input feature/],
    ['fields out of order', { ...REFERENCE, fields: [c, x] }, /reference: field "x": entry must carry the input feature's name and kind/],
    ['kind disagrees', withField(0, { kind: 'categorical' }), /reference: field "x": entry must carry/],
    ['edges not increasing', withField(0, { edges: [1, 1] }), /reference: field "x": edges must be strictly increasing/],
    ['edges non-finite', withField(0, { edges: [0, null] }), /reference: field "x": edges must be a list of at most 9 finite numbers/],
    ['ten edges', withField(0, { edges: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], shares: [...Array(10).fill(0.09), 0] }), /at most 9/],
    ['shares one short', withField(0, { shares: [0.45, 0.45] }), /reference: field "x": shares must hold one share per bin/],
    ['a negative share', withField(0, { shares: [0.5, 0.5, -0.1] }), /reference: field "x": shares must be finite numbers in \[0, 1\]/],
    ['missing_share absent', withField(0, { missing_share: undefined }), /reference: field "x": shares must be finite/],
    ['numeric sum off', withField(0, { missing_share: 0.1 + 2e-9 }), /reference: field "x": shares must sum to 1/],
    ['categories differ', withField(1, { categories: ['b', 'a'] }), /reference: field "c": categories must equal/],
    ['a category short', withField(1, { categories: ['a'], shares: [0.9] }), /reference: field "c": categories must equal/],
    ['shares per category', withField(1, { shares: [0.9] }), /reference: field "c": shares must hold one share per category/],
    ['other_share absent', withField(1, { other_share: undefined }), /reference: field "c": shares must be finite/],
    ['categorical sum off', withField(1, { other_share: 0.15 }), /reference: field "c": shares must sum to 1/],
    ['score absent', { ...REFERENCE, score: undefined }, /reference: score must be an object/],
    ['score source', { ...REFERENCE, score: { ...REFERENCE.score, source: 'test' } }, /reference: score: source must be one of/],
    ['score edges', { ...REFERENCE, score: { ...REFERENCE.score, edges: [0.8, 0.2] } }, /reference: score: edges/],
    ['score shares', { ...REFERENCE, score: { ...REFERENCE.score, shares: [0.5, 0.4] } }, /reference: score: shares must sum to 1/],
    ['score rows', { ...REFERENCE, score: { ...REFERENCE.score, rows: 2.5 } }, /reference: score must be an object with a non-negative integer rows/],
    ['performance', { ...REFERENCE, performance: { rows: 5, auc: 0.7, logloss: 'low', ece: 0.01 } }, /reference: performance: logloss/],
    ['performance auc', { ...REFERENCE, performance: { rows: 5, auc: NaN, logloss: 0.4, ece: 0.01 } }, /reference: performance: auc/],
  ];
  for (const [what, reference, pattern] of cases) {
    assert.throws(
      () => loadModel(stateOf({ reference })),
      (e) => e instanceof UnsupportedModelError && pattern.test(e.message),
      what,
    );
  }
  // Shares summing to 1 within 1e-9 pass; a field with no edges has one bin.
  loadModel(stateOf({ reference: withField(0, { missing_share: 0.1 + 5e-10 }) }));
  loadModel(stateOf({ reference: { ...REFERENCE, performance: { rows: 5, auc: null, logloss: 0.4, ece: 0.01 } } }));
  const single = loadModel(stateOf({ reference: withField(0, { edges: [], shares: [0.9] }) }));
  const [field] = driftPsi(single, [{ x: 3 }, { x: null }]).fields;
  assert.equal(field.ks, 0);
  close(field.psi, term(0.5, 0.9) + term(0.5, 0.1), 'one bin');
});
