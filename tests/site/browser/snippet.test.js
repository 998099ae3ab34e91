// roistat-visit.js outside the browser: it parses as ES5, stays small, and in a bare,
// old-browser-like environment (no MutationObserver, no addEventListener, no
// querySelectorAll, no counter) it neither throws nor leaves anything harmful behind.
'use strict';

const {test} = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const acorn = require('acorn');

const FILE = path.resolve(__dirname, '../../../site/js/roistat-visit.js');
const SOURCE = fs.readFileSync(FILE, 'utf8');
const MAX_BYTES = 4096;

test('the snippet is ES5: it parses with ecmaVersion 5', () => {
  assert.doesNotThrow(() => acorn.parse(SOURCE, {ecmaVersion: 5}));
});

test(`the snippet is small (at most ${MAX_BYTES} bytes, comments included)`, () => {
  const size = Buffer.byteLength(SOURCE);
  assert.ok(size <= MAX_BYTES, `${size} bytes`);
});

// Runs the snippet with only what is given; timers are recorded, not run.
function run(env) {
  const timers = [];
  const sandbox = Object.assign({
    setInterval: (fn) => { timers.push(fn); return timers.length; },
    clearInterval: () => {},
  }, env);
  sandbox.window = sandbox;
  vm.runInNewContext(SOURCE, sandbox);
  return {sandbox, timers};
}

test('in a bare old browser with no counter it throws nothing, now or on its timer', () => {
  const {sandbox, timers} = run({document: {cookie: ''}});
  assert.doesNotThrow(() => timers.forEach((fn) => fn()));
  assert.equal(sandbox.orderbridgeRoistatVisit.fill(), null);
  assert.equal(typeof sandbox.roistatVisitCallback, 'function');
  assert.doesNotThrow(() => sandbox.roistatVisitCallback(undefined));
});

test('a counter whose getVisit throws does not break it; the cookie is used instead', () => {
  const {sandbox} = run({
    document: {cookie: 'a=1; roistat_visit=777; b=2'},
    roistat: {getVisit() { throw new Error('counter bug'); }},
  });
  assert.equal(sandbox.orderbridgeRoistatVisit.visit(), '777');
});

test('the counter\'s getVisit() wins over the cookie', () => {
  const {sandbox} = run({
    document: {cookie: 'roistat_visit=777'},
    roistat: {getVisit: () => 888},
  });
  assert.equal(sandbox.orderbridgeRoistatVisit.visit(), '888');
});

test('only digits count as a visit, from any source', () => {
  const {sandbox} = run({document: {cookie: 'roistat_visit=nocookie'}, roistat: {getVisit: () => 'x1'}});
  assert.equal(sandbox.orderbridgeRoistatVisit.visit(), null);
  sandbox.roistatVisitCallback('12<b>');
  assert.equal(sandbox.orderbridgeRoistatVisit.visit(), null);
  sandbox.roistatVisitCallback('31337');
  assert.equal(sandbox.orderbridgeRoistatVisit.visit(), '31337');
});
