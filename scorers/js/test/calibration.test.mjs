// Calibration (modelState.calibration, schema_version 2) on hand-built models: the expressions of
// formats.md, and the refusals of malformed blocks and of version-1 states that carry one.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ISOTONIC, loadModel, PLATT, rawMargin, score, scoreBatch, UnsupportedModelError } from '../index.mjs';

const HASH = `sha256:${'0'.repeat(64)}`;

// One tree on x: x <= 0 reaches leaf `left`, else leaf `right`.
function stateOf({ left = 0, right = 1.5, sigmoid = 1, version = 2, ...blocks } = {}) {
  return {
    schema_version: version,
    objective: `binary sigmoid:${sigmoid}`,
    num_class: 1,
    num_tree_per_iteration: 1,
    max_feature_idx: 0,
    feature_names: ['x'],
    trees: [{
      tree_index: 0,
      tree_structure: {
        split_feature: 0, threshold: 0, decision_type: '<=', default_left: true, missing_type: 'None',
        internal_value: 0.25, left_child: { leaf_value: left }, right_child: { leaf_value: right },
      },
    }],
    link: 'sigmoid',
    sigmoid,
    input_features: [{ name: 'x', kind: 'numeric' }],
    content_hash: HASH,
    ...blocks,
  };
}

const isotonic = (x, y) => ({ method: 'isotonic', fitted_on: 100, source: 'validation', x, y });
const platt = (a, b) => ({ method: 'platt', fitted_on: 100, source: 'cross_fitted', a, b });
const sigmoid = (m) => 1 / (1 + Math.exp(-m));

test('a model without calibration scores as LightGBM, with calibration null', () => {
  for (const version of [1, 2]) {
    const model = loadModel(stateOf({ version }));
    assert.equal(model.calibration, null);
    assert.equal(model.hasReference, false);
    assert.equal(score(model, { x: 1 }).score, sigmoid(1.5));
  }
});

test('isotonic: p between breakpoints is interpolated by the documented expression', () => {
  // Margin 0 gives p = 1 / (1 + 1) = 0.5 exactly.
  const x = [0.1, 0.25, 0.75, 0.9];
  const y = [0.05, 0.2, 0.6, 0.61];
  const model = loadModel(stateOf({ calibration: isotonic(x, y) }));
  assert.equal(model.calibration, ISOTONIC);
  const p = 0.5;
  const expected = y[1] + (p - x[1]) * ((y[2] - y[1]) / (x[2] - x[1]));
  assert.equal(score(model, { x: -1 }).score, expected);
  assert.ok(Math.abs(expected - 0.4) < 1e-15);
  // p = sigmoid(1.5) = 0.8175...: between x[2] and x[3].
  const q = sigmoid(1.5);
  assert.equal(score(model, { x: 1 }).score, y[2] + (q - x[2]) * ((y[3] - y[2]) / (x[3] - x[2])));
});

test('isotonic: p on a breakpoint gives its y; beyond the ends, the end values', () => {
  const onPoint = loadModel(stateOf({ calibration: isotonic([0.2, 0.5, 0.8], [0.1, 0.3, 0.9]) }));
  assert.equal(score(onPoint, { x: -1 }).score, 0.3);
  const below = loadModel(stateOf({ left: -30, right: 30, calibration: isotonic([0.2, 0.5, 0.8], [0.1, 0.3, 0.9]) }));
  assert.equal(score(below, { x: -1 }).score, 0.1);
  assert.equal(score(below, { x: 1 }).score, 0.9);
  const single = loadModel(stateOf({ calibration: isotonic([0.3], [0.7]) }));
  assert.equal(score(single, { x: -1 }).score, 0.7);
  assert.equal(score(single, { x: 1 }).score, 0.7);
  // A flat step: every p inside it maps to the same value (isotonic's ties).
  const flat = loadModel(stateOf({ calibration: isotonic([0, 0.4, 0.95, 1], [0, 0.5, 0.5, 1]) }));
  assert.equal(score(flat, { x: -1 }).score, 0.5);
  assert.equal(score(flat, { x: 1 }).score, 0.5);
});

test('platt applies a and b to the raw margin, not to the probability', () => {
  const a = 0.8;
  const b = -0.3;
  const model = loadModel(stateOf({ sigmoid: 2, calibration: platt(a, b) }));
  assert.equal(model.calibration, PLATT);
  for (const [x, m] of [[-1, 0], [1, 1.5]]) {
    assert.equal(score(model, { x }).score, 1 / (1 + Math.exp(-(a * m + b))));
  }
  // exp overflowing gives 0, as LightGBM's sigmoid.
  const huge = loadModel(stateOf({ left: -1e300, calibration: platt(10, 0) }));
  assert.equal(score(huge, { x: -1 }).score, 0);
  assert.equal(score(huge, { x: 1 }).score, sigmoid(15));
});

test('calibration leaves rawMargin, contributions and baseValue unchanged', () => {
  const plain = loadModel(stateOf());
  for (const calibration of [platt(0.5, 1), isotonic([0.1, 0.9], [0.2, 0.3])]) {
    const model = loadModel(stateOf({ calibration }));
    for (const x of [-1, 1, null]) {
      const [a, b] = [score(model, { x }), score(plain, { x })];
      assert.equal(a.rawMargin, b.rawMargin);
      assert.deepEqual(a.contributions, b.contributions);
      assert.equal(a.baseValue, b.baseValue);
      assert.notEqual(a.score, b.score);
      assert.equal(rawMargin(model, [x]), rawMargin(plain, [x]));
    }
    const fast = scoreBatch(model, [{ x: -1 }, { x: 1 }], { contributions: false });
    assert.deepEqual(fast.map((s) => s.score), [score(model, { x: -1 }).score, score(model, { x: 1 }).score]);
  }
});

test('a version-1 state carrying calibration or reference is refused', () => {
  const both = { calibration: platt(1, 0), reference: { rows: 1 } };
  assert.throws(() => loadModel(stateOf({ version: 1, ...both })), /cannot carry calibration or reference/);
  for (const blocks of [{ calibration: platt(1, 0) }, { reference: { rows: 1 } }, { calibration: null }]) {
    assert.throws(
      () => loadModel(stateOf({ version: 1, ...blocks })),
      (e) => e instanceof UnsupportedModelError && /schema_version 1 cannot carry (calibration|reference): a model with them is version 2/.test(e.message),
    );
  }
});

test('malformed calibration blocks are refused, naming the key', () => {
  const cases = [
    [null, /calibration: must be an object/],
    [[1, 2], /calibration: must be an object/],
    [{ ...platt(1, 0), method: 'beta' }, /calibration: method "beta" is not one of/],
    [{ ...platt(1, 0), fitted_on: -1 }, /calibration: fitted_on/],
    [{ ...platt(1, 0), fitted_on: 1.5 }, /calibration: fitted_on/],
    [{ ...platt(1, 0), fitted_on: undefined }, /calibration: fitted_on/],
    [{ ...platt(1, 0), source: 'training' }, /calibration: source "training"/],
    [{ ...platt(1, 0), source: undefined }, /calibration: source/],
    [platt(0, 0), /calibration: platt needs a finite a > 0/],
    [platt(-1, 0), /calibration: platt needs a finite a > 0/],
    [platt(Infinity, 0), /calibration: platt needs a finite a > 0/],
    [platt('1', 0), /calibration: platt needs a finite a > 0/],
    [platt(1, NaN), /calibration: platt needs a finite b/],
    [platt(1, null), /calibration: platt needs a finite b/],
    [isotonic([], []), /calibration: isotonic needs x and y/],
    [isotonic([0.1, 0.5], [0.2]), /calibration: isotonic needs x and y/],
    [isotonic([0.1, 0.5], 'flat'), /calibration: isotonic needs x and y/],
    [isotonic([0.1, 1.2], [0.1, 0.2]), /calibration: isotonic x and y must be finite numbers in \[0, 1\]/],
    [isotonic([-0.1, 0.5], [0.1, 0.2]), /calibration: isotonic x and y must be finite/],
    [isotonic([0.1, NaN], [0.1, 0.2]), /calibration: isotonic x and y must be finite/],
    [isotonic([0.1, 0.5], [0.2, 1.5]), /calibration: isotonic x and y must be finite/],
    [isotonic([0.5, 0.5], [0.1, 0.2]), /calibration: isotonic x must be strictly increasing/],
    [isotonic([0.6, 0.5], [0.1, 0.2]), /calibration: isotonic x must be strictly increasing/],
    [isotonic([0.1, 0.5], [0.3, 0.2]), /calibration: isotonic y must be non-decreasing/],
  ];
  for (const [calibration, pattern] of cases) {
    assert.throws(
      () => loadModel(stateOf({ calibration })),
      (e) => e instanceof UnsupportedModelError && pattern.test(e.message),
      JSON.stringify(calibration),
    );
  }
});
