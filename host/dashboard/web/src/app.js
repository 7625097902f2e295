// Stratbox dashboard: one page, one WebSocket stream (snapshot, then deltas
// with sequence numbers), commands over REST. Plain JS, no build step.
'use strict';

const LC = window.LightweightCharts;
const $ = (id) => document.getElementById(id);
const VIEWS = ['overview', 'chart', 'positions', 'orders', 'trades', 'risk', 'tca', 'plugins', 'controls', 'reports'];
const STALE_MS = 3000;

const S = {
  seq: 0, symbols: [], capital: 0, barSecs: null, marketTime: 0, eventDoneMs: null,
  status: null, plugins: [], positions: [], protections: [], kpis: {}, risk: {}, deleverage: null,
  trades: [], tradesTotal: 0, orders: new Map(), equity: [], benchmark: [], alarms: [],
  lastFrameAt: 0, socket: null, open: false, strategy: '', local: false, view: 'overview',
  latencies: [], drawn: false,
};
window.__stratbox = S; // for the browser tests and the bench
S.chartLines = () => chart.lines.length;

// ---------- formatting ----------
const nf = (d) => new Intl.NumberFormat('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
const F2 = nf(2), F4 = nf(4), F0 = nf(0);
const SIGNED = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2, signDisplay: 'exceptZero' });
function num(v, f = F2) { return v == null || !isFinite(v) ? '—' : f.format(v); }
function pct(v, d = 2) { return v == null || !isFinite(v) ? '—' : nf(d).format(v * 100) + '%'; }
// Signed, with an arrow: never colour alone.
function pnl(v) {
  if (v == null || !isFinite(v)) return '<span>—</span>';
  const cls = v > 0 ? 'up' : v < 0 ? 'down' : '';
  const arrow = v > 0 ? '▲ ' : v < 0 ? '▼ ' : '';
  return `<span class="${cls}">${arrow}${SIGNED.format(v)}</span>`;
}
function esc(s) { return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c])); }
function time(ns) {
  if (ns == null) return '—';
  const d = new Date(Number(ns) / 1e6);
  if (S.local) {
    const p = (n) => String(n).padStart(2, '0');
    const off = -d.getTimezoneOffset();
    const sign = off >= 0 ? '+' : '-';
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${sign}${p(Math.floor(Math.abs(off) / 60))}${p(Math.abs(off) % 60)}`;
  }
  return d.toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
}
// Chart times are UTC seconds; a local view shifts them (the library has no time zone).
function chartTime(ns) {
  const s = Math.floor(Number(ns) / 1e9);
  return S.local ? s - new Date(s * 1000).getTimezoneOffset() * 60 : s;
}
function table(el, head, rows) {
  const th = head.map((h) => { const [t, n] = Array.isArray(h) ? h : [h, false]; return `<th class="${n ? 'n' : ''}">${esc(t)}</th>`; }).join('');
  el.innerHTML = `<thead><tr>${th}</tr></thead><tbody>${rows.length ? rows.join('') : `<tr><td colspan="${head.length}" class="muted">none</td></tr>`}</tbody>`;
}
const td = (v, cls = '') => `<td class="${cls}">${v}</td>`;
const tn = (v) => `<td class="n">${v}</td>`;
const mine = (plugin) => !S.strategy || plugin === S.strategy;

// ---------- REST ----------
async function api(path, opts = {}) {
  const r = await fetch(path, { credentials: 'same-origin', ...opts, headers: { 'content-type': 'application/json', ...(opts.headers || {}) } });
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = { error: text }; }
  if (!r.ok) throw new Error((body && body.error) || `${r.status} ${r.statusText}`);
  return { body, response: r };
}

// ---------- login ----------
async function boot() {
  const m = location.hash.match(/login=([0-9a-f]+)/);
  if (m) {
    history.replaceState(null, '', location.pathname + '#overview');
    try { await api('/api/login', { method: 'POST', body: JSON.stringify({ code: m[1] }) }); } catch (e) { showLogin(e.message); return; }
  }
  try { await api('/api/session'); } catch { showLogin(''); return; }
  start();
}
function showLogin(message) {
  $('login').hidden = false;
  $('nav').hidden = true;
  $('login-error').textContent = message;
}
$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    await api('/api/login', { method: 'POST', body: JSON.stringify({ token: $('login-token').value.trim() }) });
    $('login').hidden = true; $('nav').hidden = false; start();
  } catch (err) { $('login-error').textContent = err.message; }
});
$('logout').addEventListener('click', async () => { await api('/api/logout', { method: 'POST' }).catch(() => {}); location.reload(); });

// ---------- stream ----------
let backoff = 500;
async function connect() {
  try {
    const { body } = await api('/api/ticket', { method: 'POST' });
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/stream?ticket=${body.ticket}`);
    S.socket = ws;
    ws.onopen = () => { S.open = true; backoff = 500; if (S.view === 'chart' && chart.symbol) ws.send(JSON.stringify({ chart: chart.symbol })); };
    ws.onmessage = (m) => onFrame(JSON.parse(m.data));
    ws.onclose = () => { S.open = false; S.socket = null; setTimeout(connect, backoff); backoff = Math.min(backoff * 2, 10000); badges(); };
  } catch (e) {
    if (/not logged in/.test(e.message)) { showLogin(e.message); return; }
    setTimeout(connect, backoff); backoff = Math.min(backoff * 2, 10000);
  }
}

function onFrame(f) {
  S.lastFrameAt = Date.now();
  if (f.type === 'snapshot') {
    S.seq = f.seq;
    S.symbols = f.symbols; S.capital = f.capital; S.barSecs = f.bar_secs;
    S.trades = []; S.orders = new Map(); S.equity = []; S.benchmark = []; S.alarms = [];
  } else if (f.seq !== S.seq + 1) {
    // A gap: start over from a fresh snapshot.
    S.socket && S.socket.close();
    return;
  } else {
    S.seq = f.seq;
  }
  S.marketTime = f.market_time; S.eventDoneMs = f.event_done_ms;
  const t = f.topics;
  for (const k of ['status', 'plugins', 'positions', 'protections', 'kpis', 'risk', 'deleverage']) if (k in t) S[k] = t[k];
  if (t.trades) { S.trades = S.trades.concat(t.trades.rows).slice(-500); S.tradesTotal = t.trades.total; }
  if (t.orders) for (const o of t.orders) S.orders.set(o.client_id, o);
  if (S.orders.size > 2000) for (const [k, o] of S.orders) { if (S.orders.size <= 1500) break; if (!o.working) S.orders.delete(k); }
  if (t.equity) S.equity = S.equity.concat(t.equity);
  if (t.benchmark) S.benchmark = S.benchmark.concat(t.benchmark);
  if (t.alarms) S.alarms = S.alarms.concat(t.alarms).slice(-1000);
  const newEquity = f.type === 'snapshot' ? null : t.equity, newBench = f.type === 'snapshot' ? null : t.benchmark;
  if (t.bars && chart.symbol && t.bars[chart.symbol]) chart.append(t.bars[chart.symbol]);
  const firstUnseen = f.first_unseen_ms;
  schedule(() => {
    equityChart.update(f.type === 'snapshot', newEquity, newBench);
    if (firstUnseen) requestAnimationFrame(() => { S.latencies.push(Date.now() - firstUnseen); if (S.latencies.length > 5000) S.latencies.shift(); });
  });
}

// One render per animation frame, whatever the number of frames received.
let pending = null;
function schedule(extra) {
  const run = pending ? pending.extra : [];
  run.push(extra);
  if (pending) return;
  pending = { extra: run };
  requestAnimationFrame(() => {
    const todo = pending.extra; pending = null;
    todo.forEach((fn) => fn());
    render();
  });
}

function badges() {
  const st = S.status && S.status.risk && S.status.risk.global;
  const b = $('state');
  if (st) { b.className = `badge ${st.state}`; b.textContent = `${st.state.toUpperCase()}${st.state !== 'active' ? ': ' + st.reason : ''}`; b.title = `since ${time(st.since)}: ${st.reason}`; }
  const feed = $('feed');
  const age = Date.now() - S.lastFrameAt;
  const stale = !S.open || age > STALE_MS;
  feed.className = `badge ${stale ? 'stale' : 'live'}`;
  const lat = S.status && S.status.feed_latency;
  const event = S.eventDoneMs ? `, last event ${((Date.now() - S.eventDoneMs) / 1000).toFixed(1)} s ago` : '';
  feed.textContent = stale ? `STALE: no update for ${(age / 1000).toFixed(0)} s` : `LIVE${lat ? ` · feed p99 ${num(lat.p99_us / 1000, F2)} ms` : ''}`;
  feed.title = `stream ${S.open ? 'open' : 'closed'}${event}`;
  feed.dataset.stale = stale ? '1' : '0';
  $('clock').textContent = S.marketTime ? time(S.marketTime) : '';
}
setInterval(badges, 500);

// ---------- charts ----------
const chartOptions = () => ({
  layout: { background: { color: '#171b21' }, textColor: '#d7dde5', panes: { separatorColor: '#262c35' } },
  grid: { vertLines: { color: '#20262e' }, horzLines: { color: '#20262e' } },
  timeScale: { timeVisible: true, secondsVisible: false, borderColor: '#262c35' },
  rightPriceScale: { borderColor: '#262c35' },
  autoSize: true,
});

const equityChart = {
  chart: null, eq: null, bm: null, dd: null, lastEq: 0, lastBm: 0,
  ensure() {
    if (this.chart) return;
    this.chart = LC.createChart($('equity-chart'), chartOptions());
    this.eq = this.chart.addSeries(LC.LineSeries, { color: '#4c9aff', lineWidth: 2, priceFormat: { type: 'price', precision: 2, minMove: 0.01 } });
    this.bm = this.chart.addSeries(LC.LineSeries, { color: '#b39ddb', lineWidth: 1 });
    this.dd = this.chart.addSeries(LC.AreaSeries, { lineColor: '#ef5350', topColor: 'rgba(239,83,80,0.05)', bottomColor: 'rgba(239,83,80,0.4)', priceFormat: { type: 'percent', precision: 3, minMove: 0.001 } }, 1);
    this.chart.panes()[1] && this.chart.panes()[1].setHeight(130);
  },
  // Points at increasing times only (several in one second keep the last).
  points(list, val) {
    const out = [];
    for (const p of list) {
      const t = chartTime(p.time ?? p[0]);
      const v = val(p);
      if (out.length && out[out.length - 1].time >= t) out[out.length - 1] = { time: out[out.length - 1].time, value: v };
      else out.push({ time: t, value: v });
    }
    return out;
  },
  update(full, eqNew, bmNew) {
    if (!LC) return;
    this.ensure();
    if (full || !eqNew && !bmNew) {
      const eq = this.points(S.equity, (p) => p.equity), dd = this.points(S.equity, (p) => -p.drawdown * 100), bm = this.points(S.benchmark, (p) => p[1]);
      this.eq.setData(eq); this.dd.setData(dd); this.bm.setData(bm);
      this.lastEq = eq.length ? eq[eq.length - 1].time : 0; this.lastBm = bm.length ? bm[bm.length - 1].time : 0;
      if (full) this.chart.timeScale().fitContent();
    } else {
      for (const p of eqNew || []) { const t = chartTime(p.time); if (t >= this.lastEq) { this.eq.update({ time: t, value: p.equity }); this.dd.update({ time: t, value: -p.drawdown * 100 }); this.lastEq = t; } }
      for (const p of bmNew || []) { const t = chartTime(p[0]); if (t >= this.lastBm) { this.bm.update({ time: t, value: p[1] }); this.lastBm = t; } }
    }
    if (!S.drawn && S.equity.length && S.view === 'overview') {
      S.drawn = true;
      requestAnimationFrame(() => performance.mark('overview-drawn'));
    }
  },
};

const chart = {
  chart: null, candles: null, volume: null, markers: null, lines: [], symbol: null, last: 0,
  ensure() {
    if (this.chart) return;
    this.chart = LC.createChart($('price-chart'), chartOptions());
    this.candles = this.chart.addSeries(LC.CandlestickSeries, { upColor: '#26a69a', downColor: '#ef5350', borderVisible: false, wickUpColor: '#26a69a', wickDownColor: '#ef5350' });
    this.volume = this.chart.addSeries(LC.HistogramSeries, { color: '#4c9aff88', priceFormat: { type: 'volume' } }, 1);
    this.chart.panes()[1] && this.chart.panes()[1].setHeight(110);
    this.markers = LC.createSeriesMarkers(this.candles, []);
  },
  async show(symbol) {
    if (!symbol) return;
    this.ensure();
    this.symbol = symbol;
    if (S.socket && S.open) S.socket.send(JSON.stringify({ chart: symbol }));
    const { body } = await api(`/api/bars?symbol=${encodeURIComponent(symbol)}`);
    if (this.symbol !== symbol) return;
    const bars = body.bars.map((b) => ({ time: chartTime(b.start), open: b.open, high: b.high, low: b.low, close: b.close, volume: b.volume }));
    this.candles.setData(bars);
    this.volume.setData(bars.map((b) => ({ time: b.time, value: b.volume, color: b.close >= b.open ? '#26a69a66' : '#ef535066' })));
    this.last = bars.length ? bars[bars.length - 1].time : 0;
    $('chart-note').textContent = `${bars.length} bars of ${body.bar_secs ?? '?'} s; fills as markers, stop levels as lines; new bars appended as they close`;
    await this.refreshFills();
    this.chart.timeScale().fitContent();
  },
  append(bars) {
    if (!this.candles) return;
    for (const b of bars) {
      const t = chartTime(b.start);
      if (t < this.last) continue;
      this.candles.update({ time: t, open: b.open, high: b.high, low: b.low, close: b.close });
      this.volume.update({ time: t, value: b.volume, color: b.close >= b.open ? '#26a69a66' : '#ef535066' });
      this.last = t;
    }
  },
  async refreshFills() {
    if (!this.symbol) return;
    const plugin = S.strategy ? `&plugin=${encodeURIComponent(S.strategy)}` : '';
    const { body } = await api(`/api/trades?symbol=${encodeURIComponent(this.symbol)}&limit=1000${plugin}`);
    const barSecs = S.barSecs || 60;
    const ms = body.rows.slice().reverse().map((t) => {
      // A fill sits on the bar it happened in.
      const at = chartTime(t.time);
      const buy = t.side === 'buy';
      return { time: at - (at % barSecs), position: buy ? 'belowBar' : 'aboveBar', color: buy ? '#26a69a' : '#ef5350', shape: buy ? 'arrowUp' : 'arrowDown', text: `${buy ? 'B' : 'S'} ${t.quantity}` };
    });
    ms.sort((a, b) => a.time - b.time);
    this.markers.setMarkers(ms);
  },
  levels() {
    if (!this.candles) return;
    this.lines.forEach((l) => this.candles.removePriceLine(l));
    this.lines = [];
    const id = S.symbols.indexOf(this.symbol);
    for (const p of S.protections.filter((p) => p.instrument === id && mine(p.plugin))) {
      if (p.stop_loss != null) this.lines.push(this.candles.createPriceLine({ price: p.stop_loss, color: '#ef5350', lineStyle: 2, title: `stop ${p.plugin}` }));
      if (p.take_profit != null) this.lines.push(this.candles.createPriceLine({ price: p.take_profit, color: '#26a69a', lineStyle: 2, title: `target ${p.plugin}` }));
    }
  },
};

// ---------- views ----------
function card(label, value, sub = '') { return `<div class="card"><div class="label">${esc(label)}</div><div class="value">${value}</div><div class="sub">${sub}</div></div>`; }

function renderOverview() {
  const k = S.kpis || {}, st = S.status;
  const g = st && st.risk.global;
  const plugin = S.strategy && S.plugins.find((p) => p.name === S.strategy);
  const lat = st && st.feed_latency;
  const wr = S.strategy ? (k.by_plugin && k.by_plugin[S.strategy] || {}).win_rate : k.win_rate;
  const exposure = S.risk && S.risk.gross_share;
  $('kpis').innerHTML = [
    card('Equity', num(k.equity), `capital ${num(S.capital)}`),
    card("Today's P&L", pnl(k.day_pnl), 'UTC day'),
    plugin ? card(`${S.strategy} realised`, pnl(plugin.book.realised_pnl)) : card('Realised P&L', pnl(k.realised)),
    plugin ? card(`${S.strategy} unrealised`, pnl(plugin.book.unrealised_pnl)) : card('Unrealised P&L', pnl(k.unrealised)),
    card('Sharpe', num(k.sharpe), 'annualised, equity points'),
    card('Win rate', pct(wr, 1), `${k.closing_fills ?? 0} closing fills`),
    card('Exposure', pct(exposure, 1), `gross ${num(S.risk.gross, F0)}`),
    card('Drawdown', pct(k.drawdown), ''),
    card('Trading', g ? esc(g.state) : '—', g ? esc(g.reason) : ''),
    card('Feed', lat ? `${num(lat.p99_us / 1000)} ms` : (S.open ? 'live' : 'offline'), lat ? `p99 to dispatch, p50 ${num(lat.p50_us / 1000)} ms` : 'no live-feed latency (simulated or replayed)'),
    card('Trades', num(S.tradesTotal, F0), `${st ? st.stats.events : 0} events`),
  ].join('');
}

function renderPositions() {
  const eq = (S.kpis && S.kpis.equity) || S.capital;
  const rows = S.positions.filter((p) => mine(p.plugin)).map((p) => '<tr>' + td(esc(p.plugin)) + td(esc(S.symbols[p.instrument])) + tn(num(p.quantity, F4)) + tn(num(p.average_price, F4)) + tn(num(p.mark, F4)) + tn(pnl(p.unrealised_pnl)) + tn(pnl(p.realised_pnl)) + tn(pct(Math.abs(p.quantity * p.mark) / eq)) + '</tr>');
  table($('positions-table'), ['Plugin', 'Instrument', ['Size', 1], ['Avg price', 1], ['Mark', 1], ['Unrealised', 1], ['Realised', 1], ['Share of equity', 1]], rows);
}

function orderRow(o) {
  const hist = o.history.map(([t, s]) => `${s} ${time(t)}`).join(' → ');
  const type = typeof o.order_type === 'string' ? o.order_type : Object.entries(o.order_type).map(([k, v]) => `${k} ${v}`).join('');
  return '<tr>' + td(time(o.time)) + td(esc(o.plugin)) + td(esc(o.symbol)) + td(esc(o.side)) + tn(num(o.quantity, F4)) + td(esc(type)) + td(`<span title="${esc(hist)}">${esc(o.state)}</span>`) + tn(num(o.filled, F4)) + tn(num(o.average_fill, F4)) + tn(num(o.decision_price, F4)) + tn(num(o.arrival_mid, F4)) + tn(o.slippage_bps == null ? '—' : SIGNED.format(o.slippage_bps)) + td(esc(o.reason || ''), 'reason') + '</tr>';
}
const ORDER_HEAD = ['Time', 'Plugin', 'Instrument', 'Side', ['Qty', 1], 'Type', 'State (history on hover)', ['Filled', 1], ['Avg fill', 1], ['Decision', 1], ['Arrival mid', 1], ['Slippage bps', 1], 'Reason'];
function renderOrders() {
  const all = [...S.orders.values()].filter((o) => mine(o.plugin)).reverse();
  table($('working-table'), ORDER_HEAD, all.filter((o) => o.working).slice(0, 200).map(orderRow));
  table($('orders-table'), ORDER_HEAD, all.slice(0, 200).map(orderRow));
  $('orders-count').textContent = `(newest 200 of those received; ${all.length} held)`;
}

// Trades: the server filters and pages; the table never holds more than a page.
const trades = { offset: 0, limit: 100, total: 0, loading: false, params: '' };
function tradeParams() {
  const f = new FormData($('trade-filter'));
  const q = new URLSearchParams();
  for (const [k, v] of f) if (v) q.set(k, v);
  if (S.strategy && !q.get('plugin')) q.set('plugin', S.strategy);
  return q;
}
async function loadTrades() {
  const q = tradeParams();
  $('trades-csv').href = '/api/trades.csv?' + q.toString();
  q.set('offset', trades.offset); q.set('limit', trades.limit);
  const t0 = performance.now();
  const { body, response } = await api('/api/trades?' + q.toString());
  const server = (response.headers.get('server-timing') || '').match(/dur=([\d.]+)/);
  trades.total = body.total;
  $('trades-timing').textContent = `server ${server ? server[1] : '?'} ms, page ${(performance.now() - t0).toFixed(0)} ms`;
  $('trades-page').textContent = body.total ? `${body.offset + 1}–${body.offset + body.rows.length} of ${F0.format(body.total)}` : '0 trades';
  const rows = body.rows.map((t) => '<tr>' + td(time(t.time)) + td(esc(t.plugin)) + td(esc(t.symbol)) + td(esc(t.side)) + tn(num(t.quantity, F4)) + tn(num(t.price, F4)) + tn(num(t.fee, F4)) + tn(t.slippage_bps == null ? '—' : SIGNED.format(t.slippage_bps)) + tn(t.arrival_slippage_bps == null ? '—' : SIGNED.format(t.arrival_slippage_bps)) + td(esc(t.client_id)) + '</tr>');
  table($('trades-table'), ['Time', 'Plugin', 'Instrument', 'Side', ['Qty', 1], ['Price', 1], ['Fee', 1], ['Slip vs decision bps', 1], ['Slip vs arrival bps', 1], 'Order'], rows);
  $('trades-table').dataset.total = body.total;
}
$('trade-filter').addEventListener('submit', (e) => { e.preventDefault(); trades.offset = 0; loadTrades().catch(showError); });
$('trades-prev').addEventListener('click', () => { trades.offset = Math.max(0, trades.offset - trades.limit); loadTrades().catch(showError); });
$('trades-next').addEventListener('click', () => { if (trades.offset + trades.limit < trades.total) { trades.offset += trades.limit; loadTrades().catch(showError); } });

function limitBar(share) {
  if (share == null) return '<span class="muted">no limit</span>';
  const w = Math.min(100, Math.max(0, share * 100));
  // The width is set through the CSSOM below (the page's CSP allows no inline style attributes).
  return `<div class="bar" title="${pct(share, 1)}"><div class="${share >= 1 ? 'over' : share >= 0.8 ? 'warn' : ''}" data-w="${w}"></div></div>`;
}
function renderRisk() {
  const r = S.risk || {}, st = S.status;
  if (!st) return;
  const v = st.risk.var;
  $('risk-cards').innerHTML = [
    card('Gross exposure', num(r.gross, F0), pct(r.gross_share, 1) + ' of equity'),
    card('Net exposure', num(r.net, F0), ''),
    card('Concentration', pct(r.concentration, 1), r.largest ? `largest: ${esc(r.largest)}` : ''),
    card('Drawdown', pct(st.risk.drawdown), `peak ${num(st.risk.peak_equity)}`),
    card('VaR (1 day)', v ? num(v.var) : '—', v ? `${pct(v.fraction)} of equity at ${pct(v.confidence, 0)}, ${v.days} days; limit ${pct(v.limit_fraction)}` : 'no [risk.var_limit] configured'),
    card('Orders checked', num(st.risk.stats.checked, F0), `${num(st.risk.stats.accepted, F0)} accepted`),
  ].join('');
  // Limits are shares of their setting; the bar is drawn in CSS, the figure is text.
  table($('limits-table'), ['Limit', ['Used', 1], ['Setting', 1], ['Share', 1], ''], (r.limits || []).map((l) => '<tr>' + td(esc(l.limit)) + tn(num(l.used, F4)) + tn(num(l.of, F4)) + tn(pct(l.share, 1)) + td(limitBar(l.share)) + '</tr>'));
  document.querySelectorAll('#limits-table [data-w]').forEach((el) => { el.style.width = el.dataset.w + '%'; });
  table($('causes-table'), ['Scope', 'State', 'Reason', 'Since', 'Until'], st.risk.causes.map(([scope, c]) => '<tr>' + td(esc(scope)) + td(esc(c.state)) + td(esc(c.reason), 'reason') + td(time(c.since)) + td(c.until ? time(c.until) : '—') + '</tr>'));
  table($('refusals-table'), ['Rule', ['Refused', 1]], Object.entries(st.risk.stats.rejected).map(([rule, n]) => '<tr>' + td(esc(rule)) + tn(F0.format(n)) + '</tr>'));
  table($('detectors-table'), ['Detector', ['Alarms', 1]], Object.entries(r.alarms_by_detector || {}).map(([d, n]) => '<tr>' + td(esc(d)) + tn(F0.format(n)) + '</tr>'));
  const alarmRow = (a) => '<tr>' + td(time(a.time)) + td(esc(a.source)) + td(esc(a.level)) + td(esc(a.symbol)) + td(esc(a.reason), 'reason') + '</tr>';
  table($('states-table'), ['Time', 'Scope', 'State', '', 'Reason'], S.alarms.filter((a) => a.kind === 'state').slice(-100).reverse().map(alarmRow));
  table($('alarms-table'), ['Time', 'Detector', 'Level', 'Instrument', 'Reason'], S.alarms.filter((a) => a.kind === 'alarm').slice(-100).reverse().map(alarmRow));
}

let tcaLoaded = 0;
async function loadTca() {
  tcaLoaded = Date.now();
  const q = S.strategy ? `?plugin=${encodeURIComponent(S.strategy)}` : '';
  const { body } = await api('/api/tca' + q);
  const b = (x) => SIGNED.format(x);
  table($('tca-table'), ['Plugin', 'Instrument', ['Fills', 1], ['Notional', 1], ['Fees', 1], ['Slippage', 1], ['Delay', 1], ['Execution', 1], ['Financing', 1], ['Total', 1], ['Fees bps', 1], ['Slip bps', 1], ['Delay bps', 1], ['Exec bps', 1], ['Total bps', 1]],
    body.rows.map((r) => '<tr>' + td(esc(r.plugin)) + td(esc(r.symbol)) + tn(F0.format(r.fills)) + tn(num(r.notional, F0)) + tn(b(r.fees)) + tn(b(r.slippage)) + tn(b(r.delay)) + tn(b(r.execution)) + tn(b(r.financing)) + tn(b(r.total)) + tn(b(r.fees_bps)) + tn(b(r.slippage_bps)) + tn(b(r.delay_bps)) + tn(b(r.execution_bps)) + tn(b(r.total_bps)) + '</tr>'));
}

function renderPlugins() {
  const rows = S.plugins.map((p) => '<tr>' + td(`<strong>${esc(p.name)}</strong>`) + td(esc(p.version)) + td(esc(p.roles.join(', '))) + td(`<span class="badge ${p.health === 'running' ? 'active' : 'halted'}">${esc(p.health)}</span>`) + td(esc(p.reason || ''), 'reason')
    + tn(F0.format(p.stats.calls)) + tn(F0.format(p.stats.fuel_used)) + tn(F0.format(p.stats.intents)) + tn(F0.format(p.faults)) + tn(F0.format(p.restarts)) + tn(F0.format(p.swaps)) + tn(pnl(p.book.realised_pnl + p.book.unrealised_pnl))
    + td(`<button data-act="view" data-name="${esc(p.name)}">${S.strategy === p.name ? 'All' : 'View'}</button> <button data-act="swap" data-name="${esc(p.name)}">Swap…</button> <button data-act="unload" data-name="${esc(p.name)}" class="danger">Unload…</button>`) + '</tr>');
  table($('plugins-table'), ['Plugin', 'Version', 'Roles', 'Health', 'Quarantine reason', ['Calls', 1], ['Fuel used', 1], ['Intents', 1], ['Faults', 1], ['Restarts', 1], ['Swaps', 1], ['P&L', 1], ''], rows);
}
$('plugins-table').addEventListener('click', async (e) => {
  const b = e.target.closest('button');
  if (!b) return;
  const name = b.dataset.name;
  if (b.dataset.act === 'view') { setStrategy(S.strategy === name ? '' : name); return; }
  if (b.dataset.act === 'swap') {
    const v = await confirmDialog(`Swap ${name}`, `The new build is compiled and initialised beside the running one, then takes over its state between two events. If it fails, ${name} keeps running.`, [['path', 'Component path on the host', ''], ['params', 'Parameters (JSON, optional)', '']]);
    if (!v) return;
    await command(`/api/control/v1/plugins/${encodeURIComponent(name)}/swap`, { path: v.path, params: v.params ? JSON.parse(v.params) : {} }, (r) => `swapped ${name}: ${r.from_version} → ${r.to_version}, events held ${r.held} ms, ${r.state_bytes} state bytes`);
  }
  if (b.dataset.act === 'unload') {
    if (!await confirmDialog(`Unload ${name}`, `${name} stops now; its working orders are cancelled unless it was loaded with on_fault = "keep". Its positions stay.`)) return;
    await command(`/api/control/v1/plugins/${encodeURIComponent(name)}`, null, () => `unloaded ${name}`, 'DELETE');
  }
});
$('plugin-load').addEventListener('click', async () => {
  const v = await confirmDialog('Load a plugin', 'The component is checked, compiled and initialised off the event loop, then installed between two events.', [['path', 'Component path on the host', ''], ['name', 'Name (optional)', ''], ['params', 'Parameters (JSON, optional)', '']]);
  if (!v) return;
  const req = { path: v.path, params: v.params ? JSON.parse(v.params) : {} };
  if (v.name) req.name = v.name;
  await command('/api/control/v1/plugins', req, (r) => `loaded ${r.name} ${r.version}`);
});

function renderControls() {
  const d = S.deleverage;
  $('dl-plan').textContent = d ? `in progress: step ${d.steps_done} of ${d.steps}, next at ${time(d.next_at)}` : 'none in progress';
  const rows = S.alarms.filter((a) => a.kind === 'state').slice(-50).reverse().map((a) => '<tr>' + td(time(a.time)) + td(esc(a.source)) + td(esc(a.level)) + td(esc(a.reason), 'reason') + '</tr>');
  table($('control-journal'), ['Time', 'Scope', 'State', 'Reason'], rows);
}
$('do-flatten').addEventListener('click', async () => {
  if (!await confirmDialog('Flatten all?', 'Every working order is cancelled and every position of every plugin closed at market. Trading then halts until you resume.')) return;
  await command('/api/control/v1/flatten', null, (r) => `flatten: ${r.cancelled_orders} orders cancelled, ${r.closing_orders.length} closing orders sent; trading is ${r.risk.global.state}`);
});
$('do-resume').addEventListener('click', async () => {
  if (!await confirmDialog('Resume trading?', 'Trading goes back to active for every plugin.')) return;
  await command('/api/control/v1/resume', null, (r) => `trading is ${r.global.state}`);
});
$('do-deleverage').addEventListener('click', async () => {
  const req = { fraction: Number($('dl-fraction').value), steps: Number($('dl-steps').value), every_secs: Number($('dl-every').value) };
  if (!await confirmDialog('De-leverage?', `Every position is reduced by ${pct(req.fraction, 0)} in ${req.steps} step(s), ${req.every_secs} s of market time apart; reduce-only meanwhile.`)) return;
  await command('/api/control/v1/deleverage', req, (r) => `de-leveraging: ${r.steps} steps of ${pct(r.fraction / r.steps, 1)}`);
});

async function command(path, body, say, method = 'POST') {
  try {
    const { body: r } = await api(path, { method, body: body ? JSON.stringify(body) : undefined });
    $('control-result').textContent = say(r || {});
    showNote(say(r || {}));
  } catch (e) { showError(e); }
}
function showNote(text) { const el = $('control-result'); el.className = 'result'; el.textContent = text; }
function showError(e) { const el = $('control-result'); el.className = 'result error'; el.textContent = `refused: ${e.message || e}`; if (S.view !== 'controls') alert(`refused: ${e.message || e}`); }

// A confirmation with optional fields; resolves to the fields (or true) or null.
function confirmDialog(title, text, fields = []) {
  const d = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-fields').innerHTML = fields.map(([k, label, v]) => `<label>${esc(label)}<input name="${k}" value="${esc(v)}"></label>`).join('');
  d.returnValue = '';
  d.showModal();
  return new Promise((resolve) => {
    d.addEventListener('close', () => {
      if (d.returnValue !== 'ok') return resolve(null);
      if (!fields.length) return resolve(true);
      const out = {};
      for (const [k] of fields) out[k] = d.querySelector(`input[name="${k}"]`).value.trim();
      resolve(out);
    }, { once: true });
  });
}

async function loadReports() {
  const { body } = await api('/api/reports');
  $('reports-dir').textContent = `Research reports in ${body.dir} (write them with stratbox backtest/optimize/walk-forward/stress --out ${body.dir}/NAME).`;
  table($('reports-table'), ['Report', 'Written', 'Pages'], body.reports.map((r) => '<tr>' + td(esc(r.name)) + td(time(r.modified * 1e9)) + td(r.pages.map((p) => `<a href="/reports/${encodeURIComponent(r.name)}/${encodeURIComponent(p)}" target="_blank" rel="noopener">${esc(p)}</a>`).join(' · ')) + '</tr>'));
}

// ---------- navigation, strategy switch, time zone ----------
function setStrategy(name) {
  S.strategy = name;
  $('strategy').value = name;
  trades.offset = 0;
  onView(true);
}
$('strategy').addEventListener('change', (e) => setStrategy(e.target.value));
$('tz').addEventListener('click', () => {
  S.local = !S.local;
  $('tz').textContent = S.local ? 'Local' : 'UTC';
  equityChart.chart && equityChart.update(true);
  if (chart.symbol) chart.show(chart.symbol);
  onView(true);
});
function onView(reload) {
  const v = (location.hash.slice(1) || 'overview').split('?')[0];
  S.view = VIEWS.includes(v) ? v : 'overview';
  for (const name of VIEWS) $('view-' + name).hidden = name !== S.view;
  document.querySelectorAll('nav a').forEach((a) => a.classList.toggle('active', a.getAttribute('href') === '#' + S.view));
  if (S.view === 'overview' && equityChart.chart) requestAnimationFrame(() => equityChart.chart.timeScale().fitContent());
  if (S.view === 'chart') {
    const sel = $('chart-symbol');
    if (!chart.symbol || reload) chart.show(sel.value || S.symbols[0]).catch(showError);
  }
  if (S.view === 'trades') loadTrades().catch(showError);
  if (S.view === 'tca') loadTca().catch(showError);
  if (S.view === 'reports') loadReports().catch(showError);
  render();
}
window.addEventListener('hashchange', () => onView(false));
$('chart-symbol').addEventListener('change', (e) => chart.show(e.target.value).catch(showError));

let symbolsShown = 0, pluginsShown = '';
function render() {
  badges();
  if (S.symbols.length !== symbolsShown) {
    symbolsShown = S.symbols.length;
    const opts = S.symbols.map((s) => `<option>${esc(s)}</option>`).join('');
    $('chart-symbol').innerHTML = opts;
    $('symbols').innerHTML = opts;
    if (S.view === 'chart' && !chart.symbol) chart.show(S.symbols[0]).catch(showError);
  }
  const names = S.plugins.map((p) => p.name).join(',');
  if (names !== pluginsShown) {
    pluginsShown = names;
    const opts = S.plugins.map((p) => `<option value="${esc(p.name)}">${esc(p.name)}</option>`).join('');
    $('strategy').innerHTML = '<option value="">All</option>' + opts;
    $('strategy').value = S.strategy;
    $('trade-filter').plugin.innerHTML = '<option value="">all</option>' + opts;
  }
  switch (S.view) {
    case 'overview': renderOverview(); break;
    case 'positions': renderPositions(); break;
    case 'orders': renderOrders(); break;
    case 'risk': renderRisk(); break;
    case 'plugins': renderPlugins(); break;
    case 'controls': renderControls(); break;
    case 'chart': chart.levels(); break;
    case 'tca': if (Date.now() - tcaLoaded > 2000) loadTca().catch(() => {}); break;
    default: break;
  }
}

function start() {
  $('login').hidden = true;
  onView(false);
  connect();
}
boot();
