// The local web server of the browser tests: serves the test pages, the snippet under test
// (site/js/roistat-visit.js, read from disk at each request) and a re-rendered form
// fragment, and receives submitted forms. Each submission is recorded with the page it
// came from, and the tests wait for the next one with nextSubmission().
// Loopback only; one server per test file, started on a free port.
'use strict';

const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const FILES = {
  '/js/roistat-visit.js': path.join(ROOT, 'site/js/roistat-visit.js'),
};
const PAGES = path.join(__dirname, 'pages');

// What the "AJAX" endpoint returns: the checkout form rendered again, its hidden field
// empty, as sale.order.ajax does after each change of delivery or payment.
const FRAGMENT = `
  <input type="hidden" name="roistat_visit" value="">
  <input type="text" name="delivery" value="courier">
  <button type="button" id="place">Place order</button>`;

async function start() {
  const waiting = [];
  const received = [];

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://localhost');
    try {
      if (req.method === 'POST' && url.pathname === '/submit') {
        const chunks = [];
        for await (const c of req) chunks.push(c);
        const form = await new Response(Buffer.concat(chunks), {
          headers: {'content-type': req.headers['content-type'] || ''},
        }).formData();
        const fields = {};
        for (const [k, v] of form) fields[k] = String(v);
        const entry = {fields, referer: req.headers.referer || ''};
        const w = waiting.shift();
        if (w) w(entry); else received.push(entry);
        res.writeHead(200, {'content-type': 'text/html'});
        res.end('<!doctype html><title>thanks</title><p id="done">received</p>');
        return;
      }
      if (url.pathname === '/fragment') {
        // A little latency, like a real AJAX round trip.
        setTimeout(() => {
          res.writeHead(200, {'content-type': 'text/html'});
          res.end(FRAGMENT);
        }, 100);
        return;
      }
      let file = FILES[url.pathname];
      if (!file && /^\/pages\/[\w-]+\.(html|js)$/.test(url.pathname)) {
        file = path.join(PAGES, path.basename(url.pathname));
      }
      if (file && fs.existsSync(file)) {
        const type = file.endsWith('.js') ? 'text/javascript' : 'text/html; charset=utf-8';
        res.writeHead(200, {'content-type': type, 'cache-control': 'no-store'});
        res.end(fs.readFileSync(file));
        return;
      }
      res.writeHead(404, {'content-type': 'text/plain'});
      res.end('not found');
    } catch (e) {
      res.writeHead(500, {'content-type': 'text/plain'});
      res.end(String(e));
    }
  });

  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;

  return {
    base,
    // The next form that arrives; fails after `ms` so that a lost visit cannot hang a test.
    nextSubmission(ms = 8000) {
      if (received.length) return Promise.resolve(received.shift());
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no form submission arrived')), ms);
        waiting.push((entry) => { clearTimeout(t); resolve(entry); });
      });
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

module.exports = {start};
