// Parity of the JS scorer with LightGBM on checked-in fixtures (tests/contract/make_js_fixtures.py).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

import { loadModel, rawMargin, score, scoreBatch, UnsupportedModelError, verifyParity } from '../index.mjs';

const dir = new URL('./fixtures/', import.meta.url);
const read = (name) => JSON.parse(readFileSync(new URL(name, dir), 'utf8'));
const cases = readdirSync(dir).filter((f) => f.endsWith('.json') && f !== 'rejected_models.json').sort();

test('there are fixtures to check', () => {
  assert.ok(cases.length >= 5, `only ${cases.length} fixtures`);
});

for (const file of cases) {
  test(`${file}: raw margins equal LightGBM bit for bit, scores to 1e-12`, () => {
    const fixture = read(file);
    const model = loadModel(fixture.modelState);
    const { rows, expected } = fixture;
    assert.ok(rows.length > 100);
    rows.forEach((row, i) => {
      const s = score(model, row);
      assert.equal(s.rawMargin, expected.rawMargin[i], `row ${i} ${JSON.stringify(row)}`);
      assert.ok(Math.abs(s.score - expected.score[i]) <= 1e-12, `score of row ${i}`);
      const sum = Object.values(s.contributions).reduce((a, b) => a + b, s.baseValue);
      assert.ok(Math.abs(sum - s.rawMargin) <= 1e-9, `contributions of row ${i} sum to ${sum}`);
      for (const [name, value] of Object.entries(expected.contributions[i])) {
        assert.ok(Math.abs(s.contributions[name] - value) <= 1e-12, `contribution ${name} of row ${i}`);
      }
      assert.deepEqual(Object.keys(s.contributions), Object.keys(expected.contributions[i]));
    });
  });

  test(`${file}: encoded arrays (edge codes, thresholds, kZero) equal LightGBM`, () => {
    const fixture = read(file);
    const model = loadModel(fixture.modelState);
    fixture.arrays.forEach((row, i) => {
      assert.equal(rawMargin(model, row), fixture.arraysExpected.rawMargin[i], `array ${i} ${JSON.stringify(row)}`);
      assert.ok(Math.abs(score(model, row).score - fixture.arraysExpected.score[i]) <= 1e-12);
    });
  });

  test(`${file}: scoreBatch and verifyParity agree with row-by-row scoring`, () => {
    const fixture = read(file);
    const model = loadModel(fixture.modelState);
    const batch = scoreBatch(model, fixture.rows);
    assert.deepEqual(batch, fixture.rows.map((row) => score(model, row)));
    const fast = scoreBatch(model, fixture.rows, { contributions: false });
    assert.deepEqual(fast.map((s) => s.rawMargin), fixture.expected.rawMargin);
    assert.ok(fast.every((s) => s.contributions === null));
    const report = verifyParity(model, fixture.rows, fixture.expected.rawMargin);
    assert.equal(report.ok, true);
    assert.equal(report.maxAbsDiff, 0);
    const tampered = fixture.expected.rawMargin.map((v, i) => (i === 3 ? v + 1e-9 : v));
    const bad = verifyParity(model, fixture.rows, tampered);
    assert.equal(bad.ok, false);
    assert.deepEqual(bad.failures.map((f) => f.index), [3]);
  });
}

for (const entry of read('rejected_models.json')) {
  test(`rejects ${entry.description}`, () => {
    assert.throws(
      () => loadModel(entry.modelState),
      (error) => error instanceof UnsupportedModelError && error.message.includes(entry.error),
    );
  });
}
