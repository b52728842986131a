// Calibrated version-2 fixtures (tests/contract/make_js_fixtures.py, calibrated_*.json): the JS
// scorer's calibrated scores and drift reports equal the Python scorer's and the Python domain's.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

import { driftPsi, loadModel, score, scoreBatch } from '../index.mjs';

const TOLERANCE = 1e-12;
const dir = new URL('./fixtures/', import.meta.url);
const read = (name) => JSON.parse(readFileSync(new URL(name, dir), 'utf8'));
const files = readdirSync(dir).filter((f) => f.startsWith('calibrated_') && f.endsWith('.json')).sort();
const near = (actual, expected, what) => {
  if (expected === null) assert.equal(actual, null, what);
  else assert.ok(Math.abs(actual - expected) <= TOLERANCE, `${what}: ${actual} vs ${expected}`);
};

test('there are calibrated fixtures of both methods, with a reference', () => {
  const methods = files.map((f) => read(f).modelState.calibration.method).sort();
  assert.deepEqual(methods, ['isotonic', 'platt']);
});

for (const file of files) {
  test(`${file}: version 2, calibrated scores equal the Python scorer's, margins LightGBM's`, () => {
    const fixture = read(file);
    const state = fixture.modelState;
    const model = loadModel(state);
    assert.equal(model.schemaVersion, 2);
    assert.equal(model.calibration, state.calibration.method);
    assert.equal(model.hasReference, true);
    const { rawMargin, score: calibrated, probability } = fixture.expected;
    let moved = 0;
    fixture.rows.forEach((row, i) => {
      const s = score(model, row);
      assert.equal(s.rawMargin, rawMargin[i], `raw margin of row ${i}`);
      near(s.score, calibrated[i], `calibrated score of row ${i}`);
      if (Math.abs(calibrated[i] - probability[i]) > 1e-3) moved += 1;
    });
    // The calibration does change the scores, so an uncalibrated scorer could not pass.
    assert.ok(moved > fixture.rows.length / 4, `calibration moved only ${moved} scores`);
    const fast = scoreBatch(model, fixture.rows, { contributions: false }).map((s) => s.score);
    assert.deepEqual(fast, fixture.rows.map((row) => score(model, row).score));
  });

  for (const [label, batch] of Object.entries(read(file).drift)) {
    test(`${file}, ${label} batch: driftPsi equals the Python domain to 1e-12`, () => {
      const fixture = read(file);
      const model = loadModel(fixture.modelState);
      const report = driftPsi(model, batch.rows);
      const expected = batch.expected;
      assert.equal(report.rows, expected.rows);
      assert.deepEqual(report.fields.map((f) => [f.field, f.kind]), expected.fields.map((f) => [f.field, f.kind]));
      report.fields.forEach((field, i) => {
        const want = expected.fields[i];
        near(field.psi, want.psi, `${field.field} psi`);
        near(field.ks, want.ks, `${field.field} ks`);
        near(field.missingShareChange, want.missingShareChange, `${field.field} missingShareChange`);
        assert.equal(field.status, want.status, field.field);
        assert.equal(field.status, batch.drifted.includes(field.field) ? 'drifted' : 'stable', field.field);
      });
      near(report.score.psi, expected.score.psi, 'score psi');
      near(report.score.ks, expected.score.ks, 'score ks');
      assert.equal(report.score.status, expected.score.status);
    });
  }
}
