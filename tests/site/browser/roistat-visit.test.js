// roistat-visit.js in a real browser: headless Debian chromium driven by playwright-core,
// against the pages in pages/ served by server.js. Every test submits the checkout form to
// the local server and asserts the roistat_visit that arrived there. The "control" tests
// block the snippet and show that the same page then submits no visit, so the other tests
// prove the snippet's work, not the page's.
'use strict';

const {test, before, after} = require('node:test');
const assert = require('node:assert/strict');
const {chromium} = require('playwright-core');
const {start} = require('./server');

const VISIT = '4521890';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let browser;
let server;

before(async () => {
  server = await start();
  // launch() gives every run a fresh temporary user-data-dir.
  browser = await chromium.launch({executablePath: CHROMIUM, args: ARGS, headless: true});
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.close();
});

// A fresh browser context (no cookies) on `page`, with page errors collected.
async function open(page, {cookie, blockSnippet} = {}) {
  const context = await browser.newContext();
  const errors = [];
  if (cookie !== undefined) {
    await context.addCookies([{name: 'roistat_visit', value: cookie, url: server.base}]);
  }
  if (blockSnippet) {
    await context.route('**/js/roistat-visit.js', (route) => route.abort());
  }
  const p = await context.newPage();
  p.on('pageerror', (e) => errors.push(e.message));
  await p.goto(server.base + page);
  return {p, context, errors};
}

test('plain form: the visit from the cookie is submitted', async () => {
  const {p, context, errors} = await open('/pages/plain.html', {cookie: VISIT});
  const sent = server.nextSubmission();
  await p.click('#submit');
  assert.equal((await sent).fields.roistat_visit, VISIT);
  assert.equal((await sent).fields.name, 'Ivan');
  assert.deepEqual(errors, []);
  await context.close();
});

test('control: without the snippet the plain form submits no visit', async () => {
  const {p, context} = await open('/pages/plain.html', {cookie: VISIT, blockSnippet: true});
  const sent = server.nextSubmission();
  await p.click('#submit');
  assert.equal((await sent).fields.roistat_visit, '');
  await context.close();
});

test('form rendered 1 s after load: the visit is submitted', async () => {
  const {p, context, errors} = await open('/pages/late-form.html', {cookie: VISIT});
  await p.waitForSelector('#submit', {timeout: 5000});
  assert.equal(await p.inputValue('input[name=roistat_visit]'), VISIT,
    'filled as soon as the form appeared, before any submit');
  const sent = server.nextSubmission();
  await p.click('#submit');
  assert.equal((await sent).fields.roistat_visit, VISIT);
  assert.deepEqual(errors, []);
  await context.close();
});

test('form re-rendered after an AJAX change: the new field is filled before "Place order"', async () => {
  const {p, context, errors} = await open('/pages/ajax.html', {cookie: VISIT});
  await p.selectOption('#delivery', 'courier');
  await p.waitForSelector('#checkout[data-renders="2"]', {timeout: 5000});
  const sent = server.nextSubmission();
  await p.click('#place');
  const got = await sent;
  assert.equal(got.fields.delivery, 'courier', 'this is the re-rendered form');
  assert.equal(got.fields.roistat_visit, VISIT);
  assert.deepEqual(errors, []);
  await context.close();
});

test('control: without the snippet the re-rendered form submits no visit', async () => {
  const {p, context} = await open('/pages/ajax.html', {cookie: VISIT, blockSnippet: true});
  await p.selectOption('#delivery', 'courier');
  await p.waitForSelector('#checkout[data-renders="2"]', {timeout: 5000});
  const sent = server.nextSubmission();
  await p.click('#place');
  assert.equal((await sent).fields.roistat_visit, '');
  await context.close();
});

test('counter sets the cookie 2 s late: the visit is filled in without any event', async () => {
  const {p, context, errors} = await open('/pages/late-counter.html?via=cookie');
  assert.equal(await p.inputValue('input[name=roistat_visit]'), '', 'nothing known at load');
  await p.waitForTimeout(2800);
  const sent = server.nextSubmission();
  await p.click('#place');
  assert.equal((await sent).fields.roistat_visit, VISIT);
  assert.deepEqual(errors, []);
  await context.close();
});

test('control: without the snippet the late cookie never reaches the form', async () => {
  const {p, context} = await open('/pages/late-counter.html?via=cookie', {blockSnippet: true});
  await p.waitForTimeout(2800);
  const sent = server.nextSubmission();
  await p.click('#place');
  assert.equal((await sent).fields.roistat_visit, '');
  await context.close();
});

test('counter calls roistatVisitCallback 2 s late: the field is filled at once; the site\'s own callback still runs', async () => {
  const {p, context, errors} = await open('/pages/late-counter.html?via=callback&autoplace=1');
  const got = await server.nextSubmission();
  assert.equal(got.fields.roistat_visit, VISIT);
  assert.equal(await p.evaluate(() => window.siteCallbackGot), VISIT);
  assert.deepEqual(errors, []);
  await context.close();
});

test('counter reports through registerOnVisitProcessedCallback and getVisit(): the field is filled at once', async () => {
  const {p, context, errors} = await open('/pages/late-counter.html?via=processed&autoplace=1');
  const got = await server.nextSubmission();
  assert.equal(got.fields.roistat_visit, VISIT);
  assert.deepEqual(errors, []);
  await context.close();
});

test('no counter at all (its script blocked): the order is submitted, without a visit, without errors', async () => {
  const {p, context, errors} = await open('/pages/no-counter.html');
  const sent = server.nextSubmission();
  await p.click('#submit');
  const got = await sent;
  assert.equal(got.fields.roistat_visit, '');
  assert.equal(got.fields.name, 'Ivan');
  await p.waitForSelector('#done');
  assert.deepEqual(errors, []);
  await context.close();
});

for (const bad of ['nocookie', '12ab34', '1'.repeat(33), '%3Cscript%3E']) {
  test(`a cookie that is not a visit (${bad.slice(0, 12)}) is not copied into the form`, async () => {
    const {p, context, errors} = await open('/pages/plain.html', {cookie: bad});
    const sent = server.nextSubmission();
    await p.click('#submit');
    assert.equal((await sent).fields.roistat_visit, '');
    assert.deepEqual(errors, []);
    await context.close();
  });
}

test('a framework resetting the field, ORDER_PROP_<id> configured, snippet included twice: all filled at submit', async () => {
  const {p, context, errors} = await open('/pages/framework.html', {cookie: VISIT});
  const sent = server.nextSubmission();
  await p.click('#submit');
  const got = await sent;
  assert.equal(got.fields.roistat_visit, VISIT, 'refilled in the submit event');
  assert.equal(got.fields.ORDER_PROP_21, VISIT, 'the configured order property field');
  assert.equal(got.fields.ORDER_PROP_22, 'untouched', 'other fields are left alone');
  assert.deepEqual(errors, []);
  await context.close();
});
