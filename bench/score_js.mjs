// Issue 7 benchmark: rows/s of the JS reference scorer on a 100-tree, 31-leaf model.
//
//   .venv/bin/python bench/make_score_fixture.py        # once: writes bench/results/score_model.json
//   node bench/score_js.mjs [fixture.json] [--json]
//
// Times one row at a time (score() per row, with and without contributions) and in a batch
// (scoreBatch over all rows), after checking every row's raw margin equals LightGBM's. Prints the
// median of 7 runs. bench/score_py.py runs this script too and prints it beside LightGBM's predict.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadModel, score, scoreBatch, verifyParity } from '../scorers/js/index.mjs';

const args = process.argv.slice(2);
const asJson = args.includes('--json');
const path = args.find((a) => !a.startsWith('--'))
  ?? fileURLToPath(new URL('./results/score_model.json', import.meta.url));
const fixture = JSON.parse(readFileSync(path, 'utf8'));
const RUNS = 7;

const loadStart = process.hrtime.bigint();
const model = loadModel(fixture.modelState);
const loadMs = Number(process.hrtime.bigint() - loadStart) / 1e6;
const { rows } = fixture;
const parity = verifyParity(model, rows, fixture.rawMargin);
if (!parity.ok) throw new Error(`parity failed on ${parity.failures.length} rows: ${JSON.stringify(parity.failures[0])}`);

const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
let sink = 0;

// Wall-clock and CPU-time rates: on a shared machine the CPU-time one shows the scorer's own cost.
function rowsPerSecond(work) {
  work(); // warm-up: lets V8 optimise before timing
  const wall = [];
  const cpu = [];
  for (let r = 0; r < RUNS; r++) {
    const cpuStart = process.cpuUsage();
    const start = process.hrtime.bigint();
    const n = work();
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const used = process.cpuUsage(cpuStart);
    wall.push(n / seconds);
    cpu.push(n / ((used.user + used.system) / 1e6));
  }
  return { wall: median(wall), cpu: median(cpu) };
}

const oneByOne = (options) => () => {
  for (let i = 0; i < rows.length; i++) sink += score(model, rows[i], options).rawMargin;
  return rows.length;
};
const batch = (options) => () => {
  const out = scoreBatch(model, rows, options);
  sink += out[out.length - 1].rawMargin;
  return out.length;
};

const results = {
  model: fixture.description,
  rows: rows.length,
  node: process.version,
  loadMs,
  oneRowWithContributions: rowsPerSecond(oneByOne(undefined)),
  oneRowRawOnly: rowsPerSecond(oneByOne({ contributions: false })),
  batchWithContributions: rowsPerSecond(batch(undefined)),
  batchRawOnly: rowsPerSecond(batch({ contributions: false })),
  parityMaxAbsDiff: parity.maxAbsDiff,
};
if (sink === 0.123456789) console.log(''); // keeps the work observable to the optimiser

if (asJson) {
  console.log(JSON.stringify(results));
} else {
  const fmt = (x) => Math.round(x).toLocaleString('en-US').padStart(10);
  console.log(`JS scorer, ${results.model}, ${results.rows} rows, node ${results.node}, median of ${RUNS} runs`);
  console.log(`parity with LightGBM: max |diff| = ${results.parityMaxAbsDiff} over ${results.rows} rows; load ${loadMs.toFixed(1)} ms`);
  console.log(`${''.padEnd(38)}${'wall rows/s'.padStart(12)}${'CPU rows/s'.padStart(12)}`);
  for (const [label, key] of [
    ['one row at a time, with contributions', 'oneRowWithContributions'],
    ['one row at a time, raw only', 'oneRowRawOnly'],
    ['batch, with contributions', 'batchWithContributions'],
    ['batch, raw only', 'batchRawOnly'],
  ]) {
    console.log(`${label.padEnd(38)}  ${fmt(results[key].wall)}  ${fmt(results[key].cpu)}`);
  }
}
