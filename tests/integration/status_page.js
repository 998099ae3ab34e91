// The status page in headless Debian chromium (playwright-core from tests/site): logs in
// with HTTP Basic (any user, the admin token as the password), finds the dead letter of
// $PAGE_ORDER, clicks its Retry button, and reloads the order's page until its Roistat
// delivery is "done". Prints one JSON line per step ({"step":"dead","words":…},
// {"step":"retried"}, {"step":"delivered"}) and saves screenshots in $PAGE_ARTIFACTS:
// status-page.png (the page), status-page-dead.png (the dead letter's row),
// status-page-delivered.png (the order after the retry). Exit 0 only when every step
// happened. Run by test_status_page.py, which starts the daemon and the emulator.
// Environment: PAGE_BASE (http://127.0.0.1:PORT), PAGE_TOKEN, PAGE_ORDER, PAGE_ARTIFACTS,
// CHROMIUM (default /usr/bin/chromium).
'use strict';

const path = require('node:path');
const {createRequire} = require('node:module');

// playwright-core is installed once, for the site kit's tests (scripts/install-site-deps.sh)
const siteRequire = createRequire(path.resolve(__dirname, '../site/package.json'));
const {chromium} = siteRequire('playwright-core');

const BASE = process.env.PAGE_BASE;
const TOKEN = process.env.PAGE_TOKEN;
const ORDER = process.env.PAGE_ORDER;
const ARTIFACTS = process.env.PAGE_ARTIFACTS;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const DEADLINE_MS = 20000;

function step(name, extra) {
  console.log(JSON.stringify(Object.assign({step: name}, extra || {})));
}

async function main() {
  if (!BASE || !TOKEN || !ORDER || !ARTIFACTS) {
    throw new Error('PAGE_BASE, PAGE_TOKEN, PAGE_ORDER and PAGE_ARTIFACTS are required');
  }
  const browser = await chromium.launch({executablePath: CHROMIUM, args: ARGS, headless: true});
  try {
    const context = await browser.newContext({
      httpCredentials: {username: 'operator', password: TOKEN},
      viewport: {width: 1280, height: 900},
    });
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

    const first = await page.goto(BASE + '/');
    if (first.status() !== 200) throw new Error(`GET / answered ${first.status()}`);
    await page.screenshot({path: path.join(ARTIFACTS, 'status-page.png'), fullPage: true});

    const row = page.locator(`tr.dead-letter[data-order="${ORDER}"][data-sink="roistat"]`);
    if (await row.count() !== 1) throw new Error(`no dead letter row for ${ORDER}`);
    const words = await row.locator('td.words').innerText();
    await row.screenshot({path: path.join(ARTIFACTS, 'status-page-dead.png')});
    step('dead', {words});

    // the button posts the form; the answer is a 303 to the order's page
    await Promise.all([
      page.waitForURL((url) => url.pathname === '/' && url.searchParams.get('order') === ORDER),
      row.getByRole('button', {name: 'Retry'}).click(),
    ]);
    step('retried');

    const delivery = page.locator('#delivery-roistat');
    const until = Date.now() + DEADLINE_MS;
    let state = await delivery.getAttribute('data-state');
    while (state !== 'done') {
      if (Date.now() > until) throw new Error(`the delivery is still "${state}"`);
      await page.waitForTimeout(200);
      await page.reload();
      state = await delivery.getAttribute('data-state');
    }
    if (await page.locator(`tr.dead-letter[data-order="${ORDER}"]`).count() !== 0) {
      throw new Error('the dead letter is still listed after the delivery');
    }
    await page.screenshot({path: path.join(ARTIFACTS, 'status-page-delivered.png'), fullPage: true});
    if (errors.length) throw new Error('page errors: ' + errors.join('; '));
    step('delivered');
    await context.close();
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
