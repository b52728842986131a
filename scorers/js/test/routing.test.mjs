// LightGBM's routing rules, one at a time, on hand-built trees (leaf 1 = left, leaf 2 = right).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  categoryKey, encode, K_ZERO_THRESHOLD, loadModel, parseSigmoid, rawMargin, score, scoreBatch,
  SUPPORTED_SCHEMA_VERSIONS, UnsupportedModelError,
} from '../index.mjs';

const HASH = `sha256:${'0'.repeat(64)}`;
const LEFT = 1;
const RIGHT = 2;

function stateOf(roots, { names = ['x'], inputs = null, sigmoid = 1 } = {}) {
  return {
    schema_version: 1,
    objective: `binary sigmoid:${sigmoid}`,
    num_class: 1,
    num_tree_per_iteration: 1,
    max_feature_idx: names.length - 1,
    feature_names: names,
    trees: roots.map((root, i) => ({ tree_index: i, tree_structure: root })),
    link: 'sigmoid',
    sigmoid,
    input_features: inputs ?? names.map((name) => ({ name, kind: 'numeric' })),
    content_hash: HASH,
  };
}

const leaf = (value) => ({ leaf_value: value });
const split = (threshold, { feature = 0, missing = 'None', defaultLeft = true, value = 0, left = leaf(LEFT), right = leaf(RIGHT) } = {}) => ({
  split_feature: feature,
  threshold,
  decision_type: typeof threshold === 'string' ? '==' : '<=',
  default_left: defaultLeft,
  missing_type: missing,
  internal_value: value,
  left_child: left,
  right_child: right,
});
const side = (model, x) => rawMargin(model, [x]);

function nextUp(x) {
  const f = new Float64Array([x]);
  const bits = new BigInt64Array(f.buffer);
  bits[0] += x >= 0 ? 1n : -1n;
  return f[0];
}

test('numeric split: x <= threshold goes left, the next double goes right', () => {
  const t = 0.1 + 0.2;
  const model = loadModel(stateOf([split(t)]));
  assert.equal(side(model, t), LEFT);
  assert.equal(side(model, nextUp(t)), RIGHT);
  assert.equal(side(model, -Infinity), LEFT);
  assert.equal(side(model, Infinity), RIGHT);
  assert.equal(side(model, 'Infinity'), RIGHT);
  assert.equal(side(model, '-Infinity'), LEFT);
});

test('missing_type None: NaN reads as 0, whatever default_left says', () => {
  for (const defaultLeft of [true, false]) {
    assert.equal(side(loadModel(stateOf([split(0.5, { defaultLeft })])), NaN), LEFT);
    assert.equal(side(loadModel(stateOf([split(-0.5, { defaultLeft })])), null), RIGHT);
    assert.equal(side(loadModel(stateOf([split(-0.5, { defaultLeft })])), 'NaN'), RIGHT);
  }
});

test('missing_type Zero: |x| <= kZeroThreshold and NaN take the default side', () => {
  const right = loadModel(stateOf([split(5, { missing: 'Zero', defaultLeft: false })]));
  for (const x of [0, -0, NaN, null, 1e-36, K_ZERO_THRESHOLD, -K_ZERO_THRESHOLD]) assert.equal(side(right, x), RIGHT, `${x}`);
  for (const x of [nextUp(K_ZERO_THRESHOLD), 1e-30, 3, -2]) assert.equal(side(right, x), LEFT, `${x}`);
  const left = loadModel(stateOf([split(-5, { missing: 'Zero', defaultLeft: true })]));
  assert.equal(side(left, 0), LEFT);
  assert.equal(side(left, NaN), LEFT);
  assert.equal(side(left, 1), RIGHT);
  assert.equal(K_ZERO_THRESHOLD, 1.0000000180025095e-35);
});

test('missing_type NaN: NaN takes the default side, 0 is an ordinary value', () => {
  const right = loadModel(stateOf([split(5, { missing: 'NaN', defaultLeft: false })]));
  assert.equal(side(right, NaN), RIGHT);
  assert.equal(side(right, 0), LEFT);
  assert.equal(side(right, 6), RIGHT);
  const left = loadModel(stateOf([split(-5, { missing: 'NaN', defaultLeft: true })]));
  assert.equal(side(left, null), LEFT);
  assert.equal(side(left, 0), RIGHT);
});

test('inputs within kZeroThreshold reach the trees as exact 0 (LightGBM drops them)', () => {
  const model = loadModel(stateOf([split(-1e-36)]));
  assert.equal(side(model, -5e-36), RIGHT); // -5e-36 <= -1e-36, but LightGBM sees 0
  assert.equal(side(model, -nextUp(K_ZERO_THRESHOLD)), LEFT);
  // -kZero is one of LightGBM's own bin bounds: -kZero itself reads as 0, so it goes right.
  const atMinusK = loadModel(stateOf([split(-K_ZERO_THRESHOLD)]));
  assert.equal(side(atMinusK, -K_ZERO_THRESHOLD), RIGHT);
  assert.equal(side(atMinusK, -nextUp(K_ZERO_THRESHOLD)), LEFT);
  assert.equal(side(atMinusK, NaN), RIGHT);
  const atK = loadModel(stateOf([split(K_ZERO_THRESHOLD)]));
  assert.equal(side(atK, K_ZERO_THRESHOLD), LEFT);
  assert.equal(side(atK, nextUp(K_ZERO_THRESHOLD)), RIGHT);
  const atZero = loadModel(stateOf([split(0)]));
  assert.equal(side(atZero, 5e-36), LEFT);
  assert.equal(side(atZero, -5e-36), LEFT);
});

test('categorical split: truncated codes in the set go left; NaN, negative, huge and unseen go right', () => {
  const model = loadModel(stateOf([split('0||3||40')]));
  for (const x of [0, 3, 40, 3.7, -0.5, -0, 0.999]) assert.equal(side(model, x), LEFT, `${x}`);
  for (const x of [1, 2, 39, 41, 64, -1, -1.5, NaN, null, Infinity, -Infinity, 2 ** 31, 2 ** 31 + 3, 2 ** 32 + 3, 1e10, -1e10]) {
    assert.equal(side(model, x), RIGHT, `${x}`);
  }
  const wide = loadModel(stateOf([split('31||32||63||100')]));
  for (const x of [31, 32, 63, 100]) assert.equal(side(wide, x), LEFT, `${x}`);
  for (const x of [30, 33, 64, 99, 101, 2 ** 31 - 1]) assert.equal(side(wide, x), RIGHT, `${x}`);
});

test('one-hot categorical: the matching column is 1, unseen and missing are all zeros', () => {
  const inputs = [{ name: 'c', kind: 'categorical', encoding: 'onehot', categories: ['a', 'b', 'true', '3'] }];
  const names = ['c=a', 'c=b', 'c=true', 'c=3'];
  const model = loadModel(stateOf([split(0.5, { feature: 1 })], { names, inputs }));
  assert.deepEqual([...encode(model, { c: 'b' })], [0, 1, 0, 0]);
  assert.deepEqual([...encode(model, { c: true })], [0, 0, 1, 0]);
  assert.deepEqual([...encode(model, { c: 3 })], [0, 0, 0, 1]);
  for (const c of ['zzz', null, undefined, 'B', 3.5]) assert.deepEqual([...encode(model, { c })], [0, 0, 0, 0]);
  assert.equal(rawMargin(model, { c: 'b' }), RIGHT);
  assert.equal(rawMargin(model, { c: 'a' }), LEFT);
  assert.equal(rawMargin(model, {}), LEFT);
  // the scratch buffer must not leak the previous row's one-hot column
  assert.equal(rawMargin(model, { c: 'b' }), RIGHT);
  assert.equal(rawMargin(model, { c: 'zzz' }), LEFT);
});

test('native categorical: the category index is the code; unseen and missing are NaN', () => {
  const inputs = [{ name: 'c', kind: 'categorical', encoding: 'native', categories: ['x', 'y', 'z'] }];
  const model = loadModel(stateOf([split('1')], { names: ['c'], inputs }));
  assert.deepEqual([...encode(model, { c: 'z' })], [2]);
  assert.ok(Number.isNaN(encode(model, { c: 'w' })[0]));
  assert.equal(rawMargin(model, { c: 'y' }), LEFT);
  for (const c of ['x', 'z', 'w', null, undefined, 1]) assert.equal(rawMargin(model, { c }), RIGHT, `${c}`);
});

test('inherited members of a row object are not values', () => {
  const inputs = [
    { name: 'constructor', kind: 'numeric' },
    { name: 'toString', kind: 'categorical', encoding: 'native', categories: ['a'] },
  ];
  const model = loadModel(stateOf([split(0.5)], { names: ['constructor', 'toString'], inputs }));
  assert.ok(Number.isNaN(encode(model, {})[0]));
  assert.ok(Number.isNaN(encode(model, {})[1]));
  assert.deepEqual([...encode(model, { constructor: 2, toString: 'a' })], [2, 0]);
});

test('values: booleans are 1/0, bad strings and wrong lengths throw', () => {
  const model = loadModel(stateOf([split(0.5)]));
  assert.equal(side(model, true), RIGHT);
  assert.equal(side(model, false), LEFT);
  assert.throws(() => rawMargin(model, { x: 'abc' }), TypeError);
  assert.throws(() => rawMargin(model, { x: {} }), TypeError);
  assert.throws(() => rawMargin(model, [1, 2]), /needs 1 values/);
  assert.throws(() => rawMargin(model, 'x'), TypeError);
  assert.equal(rawMargin(model, new Float64Array([0.7])), RIGHT);
  assert.equal(categoryKey(-0), '0');
  assert.equal(categoryKey(2.5), null);
  assert.equal(categoryKey(false), 'false');
});

test('contributions credit each split to its input and sum with the base value to the raw margin', () => {
  const inputs = [
    { name: 'a', kind: 'numeric' },
    { name: 'c', kind: 'categorical', encoding: 'onehot', categories: ['u', 'v'] },
  ];
  const names = ['a', 'c=u', 'c=v'];
  const tree0 = split(1, { feature: 0, value: 0.5, left: split(0.5, { feature: 2, value: 0.25, left: leaf(0.125), right: leaf(1) }), right: leaf(2) });
  const tree1 = leaf(-0.75);
  const model = loadModel(stateOf([tree0, tree1], { names, inputs, sigmoid: 2 }));
  assert.equal(model.baseValue, 0.5 - 0.75);
  const s = score(model, { a: 0, c: 'v' });
  assert.equal(s.rawMargin, 1 - 0.75);
  assert.deepEqual(s.contributions, { a: 0.25 - 0.5, c: 1 - 0.25 });
  assert.equal(s.score, 1 / (1 + Math.exp(-2 * 0.25)));
  const t = score(model, { a: 5, c: 'v' });
  assert.deepEqual(t.contributions, { a: 1.5, c: 0 });
  assert.equal(score(model, { a: 5 }, { contributions: false }).contributions, null);
  assert.deepEqual(scoreBatch(model, [{ a: 0, c: 'v' }, { a: 5, c: 'v' }]), [s, t]);
});

test('sigmoid saturates without NaN', () => {
  const model = loadModel(stateOf([split(0, { left: leaf(-1e6), right: leaf(1e6) })], { sigmoid: 0.5 }));
  assert.equal(score(model, [-1]).score, 0);
  assert.equal(score(model, [1]).score, 1);
});

test('a single-leaf tree contributes its value and no path', () => {
  const model = loadModel(stateOf([leaf(0.25), split(0)]));
  assert.equal(rawMargin(model, [5]), 0.25 + RIGHT);
  assert.equal(model.numTrees, 2);
  assert.equal(model.baseValue, 0.25);
});

test('loadModel refuses what it does not understand, with a clear error', () => {
  const good = stateOf([split(0)]);
  assert.deepEqual(SUPPORTED_SCHEMA_VERSIONS, [1, 2]);
  const cases = [
    [{ ...good, schema_version: 99 }, /schema_version 99 is not supported.*upgrade the scorer/],
    [{ ...good, schema_version: '1' }, /schema_version "1" is not supported/],
    [{ ...good, objective: 'multiclass num_class:3' }, /only binary models/],
    [{ ...good, objective: 'binary' }, /sigmoid/],
    [{ ...good, sigmoid: 2 }, /disagrees with objective/],
    [{ ...good, average_output: true }, /average_output/],
    [{ ...good, feature_names: ['x', 'x'], max_feature_idx: 1 }, /duplicates/],
    [{ ...good, max_feature_idx: 3 }, /max_feature_idx/],
    [{ ...good, content_hash: 'sha256:abc' }, /content_hash/],
    [{ ...good, input_features: [] }, /input_features/],
    [{ ...good, input_features: [{ name: 'x', kind: 'text' }] }, /kind "text"/],
    [{ ...good, trees: [{ tree_structure: split(Infinity) }] }, /finite threshold/],
    [{ ...good, trees: [{ tree_structure: split('1|2') }] }, /"\|\|"-joined codes/],
    [{ ...good, trees: [{ tree_structure: { ...split(0), missing_type: 'Maybe' } }] }, /missing_type "Maybe"/],
    [{ ...good, trees: [{ tree_structure: split(0, { left: { leaf_value: null } }) }] }, /finite leaf_value/],
    [{ ...good, trees: [{ is_linear: true, tree_structure: split(0) }] }, /linear/],
    [{ ...good, trees: [{ tree_structure: split('1||16777216') }] }, /categorical code above 16777215/],
  ];
  for (const [state, pattern] of cases) {
    assert.throws(() => loadModel(state), (e) => e instanceof UnsupportedModelError && pattern.test(e.message), JSON.stringify(state).slice(0, 80));
  }
  for (const bad of [null, [], 'model', 42]) assert.throws(() => loadModel(bad), UnsupportedModelError);
  const { trees, ...noTrees } = good;
  assert.throws(() => loadModel(noTrees), /lacks required keys: trees/);
});

test('parseSigmoid reads sigma from the objective string', () => {
  assert.equal(parseSigmoid('binary sigmoid:1'), 1);
  assert.equal(parseSigmoid('binary sigmoid:0.25 extra'), 0.25);
  assert.throws(() => parseSigmoid('binary sigmoid:-1'), UnsupportedModelError);
  assert.throws(() => parseSigmoid('cross_entropy'), UnsupportedModelError);
});

test('a loaded model is frozen', () => {
  const model = loadModel(stateOf([split(0)]));
  assert.ok(Object.isFrozen(model));
  assert.throws(() => { model.sigmoid = 3; }, TypeError);
});

test('an unknown schema_version is reported before any missing key', () => {
  assert.throws(() => loadModel({ schema_version: 3, model: 'a future shape' }), /schema_version 3 is not supported/);
});
