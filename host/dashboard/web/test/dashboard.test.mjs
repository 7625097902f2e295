// The dashboard in a real Chromium (Debian's), driven by playwright-core
// through `node --test`, against a running host. The Rust test
// `host/cli/tests/dashboard.rs` starts the host and sets:
//   STRATBOX_URL, STRATBOX_LOGIN_URL, STRATBOX_TOKEN  the dashboard and its credentials
//   STRATBOX_SWAP_PATH   a component to swap sma-cross to
//   STRATBOX_SHOTS       where screenshots go
//   STRATBOX_MODE        `full` (simulator: every check) or `views` (every view renders; the Capital.com mock)
//   STRATBOX_FIGURES     a file the measured figures are written to (JSON)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { writeFileSync, mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

const URL = process.env.STRATBOX_URL;
const LOGIN = process.env.STRATBOX_LOGIN_URL;
const TOKEN = process.env.STRATBOX_TOKEN;
const SHOTS = process.env.STRATBOX_SHOTS || 'screenshots';
const MODE = process.env.STRATBOX_MODE || 'full';
const BROWSER = process.env.CHROMIUM || '/usr/bin/chromium';
// playwright-core 1.64.1 speaks the protocol of Chromium 156 (Debian's line).
const PINNED_MAJOR = 156;
const VIEWS = ['overview', 'chart', 'positions', 'orders', 'trades', 'risk', 'tca', 'plugins', 'controls', 'reports'];

let browser, context, page;
const figures = {};
const bearer = { authorization: `Bearer ${TOKEN}` };
const median = (v) => { const s = [...v].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const quantile = (v, q) => { const s = [...v].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };
const consoleErrors = [];
// Whether the operator's emergency flatten is among the trading states in force
// (the simulator's market can trip the circuit breaker by itself, so `halted` alone says little).
const status = async () => (await fetch(URL + 'api/control/v1/status', { headers: bearer })).json();
const flattened = (s) => s.risk.causes.some(([, c]) => c.cause === 'flatten');

before(async () => {
  const version = execFileSync(BROWSER, ['--version']).toString();
  const major = Number((version.match(/(\d+)\./) || [])[1]);
  if (major !== PINNED_MAJOR) console.warn(`warning: ${version.trim()} is not the Chromium ${PINNED_MAJOR} playwright-core 1.64.1 targets`);
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: BROWSER,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
});

after(async () => {
  if (process.env.STRATBOX_FIGURES) writeFileSync(process.env.STRATBOX_FIGURES, JSON.stringify(figures, null, 2));
  await browser?.close();
});

test('a request without the token or session is refused', async () => {
  for (const [path, method] of [['/api/trades', 'GET'], ['/api/control/v1/flatten', 'POST'], ['/api/ticket', 'POST'], ['/api/control/v1/status', 'GET']]) {
    const r = await fetch(URL + path.slice(1), { method });
    assert.equal(r.status, 401, `${method} ${path} without credentials`);
  }
  const wrong = await fetch(URL + 'api/trades', { headers: { authorization: 'Bearer ' + '0'.repeat(64) } });
  assert.equal(wrong.status, 401);
  const right = await fetch(URL + 'api/trades', { headers: bearer });
  assert.equal(right.status, 200);
});

test('the one-time login link logs in once; the page then draws the overview', async () => {
  await page.goto(LOGIN);
  await page.waitForFunction(() => window.__stratbox && window.__stratbox.drawn, null, { timeout: 20000 });
  assert.ok(!page.url().includes('login='), 'the code leaves the address bar');
  const other = await browser.newContext();
  const p2 = await other.newPage();
  await p2.goto(LOGIN);
  await p2.waitForSelector('#login:not([hidden])');
  assert.match(await p2.textContent('#login-error'), /not valid/);
  await other.close();
});

test('every view renders with data', async () => {
  const ready = {
    overview: async () => { await page.waitForFunction(() => document.querySelectorAll('#kpis .card').length >= 10); await page.waitForSelector('#equity-chart canvas'); },
    chart: async () => { await page.waitForSelector('#price-chart canvas'); await page.waitForFunction(() => /\d+ bars/.test(document.getElementById('chart-note').textContent) && !/^0 bars/.test(document.getElementById('chart-note').textContent)); },
    positions: () => page.waitForFunction(() => document.querySelectorAll('#positions-table tbody tr td.n').length > 0, null, { timeout: 20000 }),
    orders: () => page.waitForFunction(() => document.querySelectorAll('#orders-table tbody tr td.n').length > 0, null, { timeout: 20000 }),
    trades: () => page.waitForFunction(() => Number(document.getElementById('trades-table').dataset.total) > 0, null, { timeout: 20000 }),
    risk: () => page.waitForFunction(() => document.querySelectorAll('#limits-table tbody tr').length >= 5 && document.querySelectorAll('#risk-cards .card').length >= 6),
    tca: () => page.waitForFunction(() => document.querySelectorAll('#tca-table tbody tr td.n').length > 0, null, { timeout: 20000 }),
    plugins: () => page.waitForFunction(() => document.querySelectorAll('#plugins-table tbody tr').length >= 1 && /running/.test(document.getElementById('plugins-table').textContent)),
    controls: () => page.waitForFunction(() => document.getElementById('dl-plan').textContent.length > 0),
    reports: () => page.waitForFunction(() => document.querySelectorAll('#reports-table tbody tr a').length > 0),
  };
  for (const v of VIEWS) {
    await page.goto(URL + '#' + v);
    await ready[v]();
    await page.screenshot({ path: `${SHOTS}/${MODE}-${v}.png` });
  }
  // A report opens (sandboxed: its own scripts run, without this origin's session).
  await page.goto(URL + '#reports');
  await ready.reports();
  const href = await page.getAttribute('#reports-table a[href$="report.html"]', 'href');
  const r = await page.request.get(URL + href.slice(1));
  assert.equal(r.status(), 200);
  assert.match(r.headers()['content-security-policy'], /sandbox/);
  assert.deepEqual(consoleErrors, [], 'no script errors');
});

test('filters change the trades table', { skip: MODE !== 'full' }, async () => {
  await page.goto(URL + '#trades');
  await page.waitForFunction(() => Number(document.getElementById('trades-table').dataset.total) > 0);
  const all = Number(await page.getAttribute('#trades-table', 'data-total'));
  await page.selectOption('#trade-filter select[name=side]', 'buy');
  await page.click('#trade-filter button');
  await page.waitForFunction((n) => Number(document.getElementById('trades-table').dataset.total) < n, all);
  const sides = await page.$$eval('#trades-table tbody tr', (rows) => rows.map((r) => r.children[3].textContent));
  assert.ok(sides.length > 0 && sides.every((s) => s === 'buy'), `only buys: ${sides}`);
  const symbol = await page.$eval('#trades-table tbody tr', (r) => r.children[2].textContent);
  await page.fill('#trade-filter input[name=symbol]', symbol);
  await page.click('#trade-filter button');
  await page.waitForFunction((s) => { const rows = [...document.querySelectorAll('#trades-table tbody tr')]; return rows.length > 0 && rows.every((r) => r.children[2].textContent === s); }, symbol);
  // The server's own time for the query, from its Server-Timing header.
  assert.match(await page.textContent('#trades-timing'), /server [\d.]+ ms/);
  const csv = await page.request.get(URL + (await page.getAttribute('#trades-csv', 'href')).slice(1));
  const lines = (await csv.text()).trim().split('\n');
  assert.ok(lines.length > 1 && lines.slice(1).every((l) => l.includes(`,${symbol},buy,`)), 'the CSV holds the filtered trades');
  await page.screenshot({ path: `${SHOTS}/${MODE}-trades-filtered.png` });
});

test('the chart draws the stop policy\'s levels; times switch between UTC and local', { skip: MODE !== 'full' }, async () => {
  await page.goto(URL + '#chart');
  // The stops plugin protects sma-cross's positions: wait for a level, then chart its instrument.
  const symbol = await page.waitForFunction(() => {
    const s = window.__stratbox;
    const p = s.protections.find((p) => p.stop_loss != null || p.take_profit != null);
    return p ? s.symbols[p.instrument] : null;
  }, null, { timeout: 30000 }).then((h) => h.jsonValue());
  await page.selectOption('#chart-symbol', symbol);
  await page.waitForFunction(() => window.__stratbox.chartLines() > 0, null, { timeout: 10000 });
  await page.screenshot({ path: `${SHOTS}/${MODE}-chart-stops.png` });
  assert.match(await page.textContent('#clock'), / UTC$/);
  await page.click('#tz');
  await page.waitForFunction(() => /[+-]\d{4}$/.test(document.getElementById('clock').textContent));
  assert.equal(await page.textContent('#tz'), 'Local');
  await page.click('#tz');
  await page.waitForFunction(() => / UTC$/.test(document.getElementById('clock').textContent));
});

test('a stream from a foreign Origin is refused', async () => {
  const { ticket } = await (await fetch(URL + 'api/ticket', { method: 'POST', headers: bearer })).json();
  const wsUrl = URL.replace(/^http/, 'ws') + 'api/stream?ticket=' + ticket;
  // Another site, on another port: its page tries to read the stream.
  const server = createServer((_, res) => { res.setHeader('content-type', 'text/html'); res.end('<html><body>elsewhere</body></html>'); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const foreign = await context.newPage();
  await foreign.goto(`http://127.0.0.1:${server.address().port}/`);
  const outcome = await foreign.evaluate((u) => new Promise((resolve) => {
    const ws = new WebSocket(u);
    ws.onmessage = () => resolve('read the stream');
    ws.onclose = (e) => resolve(`closed ${e.code}`);
  }), wsUrl);
  assert.equal(outcome, 'closed 1006', 'the handshake is refused');
  // Its commands are refused too (the session cookie is SameSite=Strict and the Origin is checked).
  const sent = await foreign.evaluate(async (u) => (await fetch(u + 'api/control/v1/flatten', { method: 'POST', credentials: 'include', mode: 'no-cors' }).catch(() => null), 'sent'), URL);
  assert.equal(sent, 'sent');
  // Even with the token, a foreign Origin cannot command.
  const forged = await fetch(URL + 'api/control/v1/flatten', { method: 'POST', headers: { ...bearer, origin: 'http://evil.example' } });
  assert.equal(forged.status, 403);
  await foreign.close();
  server.close();
  assert.ok(!flattened(await status()), 'the foreign page could not flatten');
});

test('a swap from the Plugins view takes effect', { skip: MODE !== 'full' }, async () => {
  await page.goto(URL + '#plugins');
  await page.waitForSelector('#plugins-table button[data-act=swap][data-name=sma-cross]');
  await page.click('#plugins-table button[data-act=swap][data-name=sma-cross]');
  await page.waitForSelector('#confirm[open]');
  await page.fill('#confirm input[name=path]', process.env.STRATBOX_SWAP_PATH);
  await page.fill('#confirm input[name=params]', '{"fast": 3, "slow": 8}');
  await page.click('#confirm-ok');
  await page.waitForFunction(() => /swapped sma-cross/.test(document.getElementById('control-result').textContent), null, { timeout: 60000 });
  const plugins = await (await fetch(URL + 'api/control/v1/plugins', { headers: bearer })).json();
  const sma = plugins.find((p) => p.name === 'sma-cross');
  assert.equal(sma.swaps, 1);
  assert.equal(sma.health, 'running');
  // The table shows it too, from the stream.
  await page.waitForFunction(() => [...document.querySelectorAll('#plugins-table tbody tr')].some((r) => r.textContent.includes('sma-cross') && r.children[10].textContent === '1'));
});

test('flatten asks for confirmation, then halts', { skip: MODE !== 'full' }, async () => {
  await page.goto(URL + '#controls');
  await page.click('#do-flatten');
  await page.waitForSelector('#confirm[open]');
  await page.screenshot({ path: `${SHOTS}/${MODE}-flatten-confirm.png` });
  await page.click('#confirm-cancel');
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(!flattened(await status()), 'cancelled: nothing happened');
  await page.click('#do-flatten');
  await page.click('#confirm-ok');
  await page.waitForFunction(() => /HALTED/.test(document.getElementById('state').textContent), null, { timeout: 10000 });
  const state = await status();
  assert.ok(flattened(state) && state.risk.global.state === 'halted', JSON.stringify(state.risk.causes));
  // And the journal shows it, in the Controls view.
  await page.waitForFunction(() => /emergency flatten/.test(document.getElementById('control-journal').textContent), null, { timeout: 10000 });
  await page.screenshot({ path: `${SHOTS}/${MODE}-controls-halted.png` });
});

test('figures: first load and event to screen', { skip: MODE !== 'full' }, async () => {
  // First load to the overview fully drawn, with the session cookie set (a returning operator).
  const loads = [];
  for (let i = 0; i < 9; i++) {
    await page.goto('about:blank');
    await page.goto(URL + '#overview', { waitUntil: 'load' });
    await page.waitForFunction(() => performance.getEntriesByName('overview-drawn').length > 0, null, { timeout: 20000 });
    loads.push(await page.evaluate(() => performance.getEntriesByName('overview-drawn')[0].startTime));
  }
  figures.first_load_ms = { median: median(loads), all: loads };
  // Event to screen: each frame's oldest event, from the host's wall clock to the frame painted.
  await page.evaluate(() => { window.__stratbox.latencies.length = 0; });
  await new Promise((r) => setTimeout(r, 15000));
  const lat = await page.evaluate(() => window.__stratbox.latencies.slice());
  assert.ok(lat.length > 20, `frames with events: ${lat.length}`);
  figures.event_to_screen_ms = { frames: lat.length, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), max: Math.max(...lat) };
  // A trades page, as the server timed it.
  const server = [];
  for (let i = 0; i < 15; i++) {
    const r = await fetch(URL + `api/trades?offset=${i * 10}&limit=100`, { headers: bearer });
    server.push(Number(r.headers.get('server-timing').match(/dur=([\d.]+)/)[1]));
  }
  figures.trades_page_server_ms = { median: median(server) };
  console.log('FIGURES ' + JSON.stringify(figures));
});

test('the stale badge appears when the host stops', async () => {
  await page.goto(URL + '#overview');
  await page.waitForFunction(() => document.getElementById('feed').dataset.stale === '0', null, { timeout: 15000 });
  const r = await fetch(URL + 'api/control/v1/shutdown', { method: 'POST', headers: bearer });
  assert.equal(r.status, 202);
  await page.waitForFunction(() => document.getElementById('feed').dataset.stale === '1', null, { timeout: 15000 });
  assert.match(await page.textContent('#feed'), /STALE/);
  await page.screenshot({ path: `${SHOTS}/${MODE}-stale.png` });
});
