// floodgate status page: polls api/v1/status once a second and renders it.
// Plain DOM, no framework, no build step. Every value from the API is set as
// text (textContent), never parsed as HTML.
'use strict';

const POLL_MS = 1000;
const STALE_MS = 5000; // after this without an answer, the page says so loudly
let lastOK = 0;
let pointerDown = false;

// ---- small DOM helpers ----------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

// ---- formatting -------------------------------------------------------------

const DASH = '–';

function fmtRate(v) {
  if (v === null || v === undefined) return DASH;
  if (v === 0) return '0';
  if (v < 10) return v.toFixed(1);
  return Math.round(v).toLocaleString('en-US');
}

function fmtPct(v) {
  if (v === null || v === undefined) return DASH;
  if (v === 0) return '0%';
  if (v < 0.001) return '<0.1%';
  return (v * 100).toFixed(v < 0.1 ? 1 : 0) + '%';
}

function fmtDur(s) {
  if (s === null || s === undefined) return DASH;
  if (s < 0.001) return (s * 1000).toFixed(2) + ' ms';
  if (s < 0.01) return (s * 1000).toFixed(1) + ' ms';
  if (s < 1) return Math.round(s * 1000) + ' ms';
  return s.toFixed(s < 10 ? 2 : 1) + ' s';
}

function fmtBytes(n) {
  if (n === null || n === undefined) return DASH;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + ' ' + units[i];
}

function fmtAgo(iso, now) {
  if (!iso) return '';
  let s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return d + 'd ' + h + 'h';
  if (h) return h + 'h ' + m + 'm';
  if (m) return m + 'm ' + s + 's';
  return s + 's';
}

function fmtClock(iso) {
  if (!iso) return '';
  const t = new Date(iso);
  const p = (n) => String(n).padStart(2, '0');
  return p(t.getHours()) + ':' + p(t.getMinutes()) + ':' + p(t.getSeconds());
}

// fmtWeight shows the weight in service, and the configured one when they
// differ (draining, slow start).
function fmtWeight(b) {
  if (b.effective_weight !== b.weight) return b.effective_weight + ' of ' + b.weight;
  return String(b.weight);
}

// ---- sparklines -------------------------------------------------------------

// spark draws values (null = gap) as an SVG line over a 0-based scale.
function spark(values, label) {
  const w = 150, h = 30;
  const box = svg('svg', { viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': label });
  const nums = values.filter((v) => v !== null && v !== undefined);
  const max = nums.length ? Math.max(...nums) : 0;
  if (values.length < 2 || max <= 0) {
    box.append(svg('path', { d: `M0 ${h - 0.5} H${w}` }));
    return { node: box, max };
  }
  const n = Math.max(values.length, 60);
  const off = n - values.length; // right-align: the newest point at the right edge
  const x = (i) => ((i + off) / (n - 1)) * w;
  const y = (v) => h - 1 - (v / max) * (h - 3);
  let line = '', area = '', open = false, start = 0;
  values.forEach((v, i) => {
    if (v === null || v === undefined) {
      if (open) area += `L${x(i - 1).toFixed(1)} ${h} L${start.toFixed(1)} ${h} Z `;
      open = false;
      return;
    }
    const px = x(i).toFixed(1), py = y(v).toFixed(1);
    if (!open) {
      line += `M${px} ${py} `;
      area += `M${px} ${h} L${px} ${py} `;
      start = x(i);
      open = true;
    } else {
      line += `L${px} ${py} `;
      area += `L${px} ${py} `;
    }
  });
  if (open) area += `L${x(values.length - 1).toFixed(1)} ${h} L${start.toFixed(1)} ${h} Z`;
  box.append(svg('path', { d: area, class: 'area' }), svg('path', { d: line }));
  return { node: box, max };
}

function metric(label, value, sub, series, fmt, cls) {
  const m = el('div', { class: 'metric' },
    el('div', { class: 'label', text: label }),
    el('div', { class: 'value ' + (cls || '') }, value, sub ? el('span', { class: 'sub', text: sub }) : null));
  if (series) {
    const s = spark(series, label + ', last 5 minutes');
    m.append(s.node, el('div', { class: 'scale' }, el('span', { text: '5 min' }), el('span', { text: 'max ' + fmt(s.max) })));
  }
  return m;
}

// ---- rendering ----------------------------------------------------------------

function tile(label, value, cls, sub, subCls) {
  return el('div', { class: 'tile' }, el('div', { class: 'label', text: label }),
    el('div', { class: 'value ' + (cls || '') }, value, sub ? el('span', { class: 'sub ' + (subCls || ''), text: sub }) : null));
}

// errClass colours a 5xx share: red for errors, amber when degraded mode's
// refusals (shed, static: by design) account for them.
function errClass(rate, rps, refused) {
  if (rate === null || rate === undefined || rate < 0.01) return '';
  const real = rps ? Math.max(0, rate * rps - (refused || 0)) / rps : rate;
  return real >= 0.01 ? 'bad' : 'warn';
}

function renderSummary(s) {
  let up = 0, total = 0, draining = 0, degraded = 0, rps = null, errs = 0, reqs = 0, refused = 0;
  for (const p of s.pools) {
    for (const b of p.backends) {
      if (b.state === 'draining') { draining++; continue; }
      total++;
      if (b.state === 'up') up++;
    }
    if (p.mode && p.mode.mode === 'degraded') degraded++;
    if (p.requests_per_second !== null) {
      rps = (rps || 0) + p.requests_per_second;
      if (p.error_rate !== null) { errs += p.error_rate * p.requests_per_second; reqs += p.requests_per_second; }
      refused += p.refused_per_second || 0;
    }
  }
  const tiles = [
    tile('pools', String(s.pools.length), '', degraded ? degraded + ' degraded' : null, 'bad'),
    tile('backends up', up + ' / ' + total, up < total ? 'bad' : '', draining ? draining + ' draining' : null, 'warn'),
    tile('requests/s', fmtRate(rps)),
    tile('5xx', reqs ? fmtPct(errs / reqs) : DASH, reqs ? errClass(errs / reqs, reqs, refused) : '', refused ? 'incl. ' + fmtRate(refused) + '/s shed' : null, 'dim'),
  ];
  if (s.captures) {
    tiles.push(tile('capture backlog', String(s.captures.backlog), ''));
    tiles.push(tile('dead letters', String(s.captures.dead_letters), s.captures.dead_letters ? 'bad' : ''));
  }
  if (s.cache) tiles.push(tile('cache hits', fmtPct(s.cache.hit_ratio)));
  if (s.connections) {
    tiles.push(tile('connections', String(s.connections.open), '', fmtBytes(s.connections.buffer_bytes) + ' in buffers', 'dim'));
  }
  document.getElementById('summary').replaceChildren(...tiles);
}

function modeControls(p) {
  if (!p.mode) return el('span', { class: 'dim', text: 'degraded mode: not configured' });
  const cur = p.mode.override;
  const btn = (mode, text) => el('button', {
    type: 'button', class: cur === mode ? 'current' : '', 'data-mode': mode, 'aria-pressed': cur === mode ? 'true' : 'false',
    onclick: () => confirmMode(p.name, mode),
  }, text);
  return el('div', { class: 'mode-ctl' }, el('span', { class: 'label', text: 'override' }),
    btn('auto', 'auto'), btn('degraded', 'degraded'), btn('normal', 'normal'));
}

function renderPool(p, now) {
  const deg = p.mode && p.mode.mode === 'degraded';
  const head = el('div', { class: 'pool-head' }, el('h2', { text: p.name }));
  if (p.mode) {
    head.append(el('span', { class: 'badge ' + p.mode.mode, 'data-mode': p.mode.mode, text: p.mode.mode.toUpperCase() }));
    if (p.mode.override !== 'auto') head.append(el('span', { class: 'badge override', text: 'OVERRIDE ' + p.mode.override.toUpperCase() }));
    if (deg || p.mode.level !== 'normal') head.append(el('span', { class: deg ? 'bad' : 'warn', text: 'admission ' + p.mode.level }));
  }
  head.append(el('span', { class: 'dim', text: 'health check ' + p.health }), modeControls(p));
  if (p.mode && p.mode.reason) {
    head.append(el('div', { class: 'reason' },
      deg ? el('b', { text: p.mode.reason }) : el('span', { class: 'dim', text: p.mode.reason }),
      el('span', { class: 'when', text: p.mode.since ? ' · since ' + fmtClock(p.mode.since) + ' (' + fmtAgo(p.mode.since, now) + ')' : '' })));
  }

  const h = p.history;
  const cap = p.capacity > 0 ? p.capacity : null;
  const q = p.queue;
  const metrics = el('div', { class: 'metrics' },
    metric('requests/s', fmtRate(p.requests_per_second), null, h.requests_per_second, fmtRate),
    metric('p95 (to first byte)', fmtDur(p.p95_seconds), null, h.p95_seconds, fmtDur),
    metric('in flight', String(p.in_flight), cap ? '/ ' + cap : null, h.in_flight, String, cap && p.in_flight >= 0.9 * cap ? 'bad' : ''),
    metric('5xx', fmtPct(p.error_rate), p.refused_per_second ? 'incl. ' + fmtRate(p.refused_per_second) + '/s shed' : null, null, null,
      errClass(p.error_rate, p.requests_per_second, p.refused_per_second)),
    metric('queue', String(q.depth), q.max ? '/ ' + q.max : 'no queue', null, null, q.depth > 0 ? 'warn' : ''),
    metric('queue wait', fmtDur(q.wait_seconds), (q.timeouts_per_second || q.rejected_per_second)
      ? fmtRate((q.timeouts_per_second || 0) + (q.rejected_per_second || 0)) + ' refused/s' : null, null, null,
    (q.timeouts_per_second || q.rejected_per_second) ? 'bad' : ''));

  const rows = p.backends.map((b) => backendRow(p, b, now));
  const table = el('div', { class: 'scroll' }, el('table', { class: 'backends' },
    el('thead', {}, el('tr', {},
      el('th', { text: 'backend' }), el('th', { text: 'state' }), el('th', { class: 'n', text: 'weight' }),
      el('th', { class: 'n', text: 'in flight' }), el('th', { class: 'n', text: 'req/s' }), el('th', { class: 'n', text: 'errors' }),
      el('th', { text: 'up for' }), el('th', { text: '' }))),
    el('tbody', {}, rows.length ? rows : el('tr', {}, el('td', { colspan: 8, class: 'dim', text: 'no backends' })))));

  return el('article', { class: 'pool' + (deg ? ' degraded' : ''), 'data-pool': p.name }, head, metrics, table);
}

function backendRow(p, b, now) {
  const state = b.warming ? 'warming' : b.state;
  const full = b.limit > 0 && b.in_flight >= 0.9 * b.limit;
  const inflight = el('td', { class: 'n' + (full ? ' bad' : '') }, String(b.in_flight) + (b.limit ? ' / ' + b.limit : ''));
  if (b.limit) {
    const bar = el('span', { class: 'bar' + (full ? ' full' : '') }, el('i', {}));
    bar.firstChild.style.width = Math.min(100, (100 * b.in_flight) / b.limit).toFixed(0) + '%';
    inflight.append(bar);
  }
  const draining = b.state === 'draining';
  const action = el('button', {
    type: 'button', 'data-action': draining ? 'undrain' : 'drain',
    onclick: () => confirmDrain(p.name, b.address, !draining),
  }, draining ? 'Undrain' : 'Drain');
  let upFor = b.up_since && b.state !== 'down' ? fmtAgo(b.up_since, now) : DASH;
  if (b.state === 'ejected' && b.ejected_until) upFor = 'ejected until ' + fmtClock(b.ejected_until);
  return el('tr', { class: b.state, 'data-backend': b.address, 'data-state': b.state },
    el('td', { class: 'addr', text: b.address }),
    el('td', {}, el('span', { class: 'state ' + state, text: b.warming ? 'up, slow start' : b.state }),
      b.check_error ? el('div', { class: 'check', text: b.check_error }) : null),
    el('td', { class: 'n', text: fmtWeight(b) }),
    inflight,
    el('td', { class: 'n', text: fmtRate(b.requests_per_second) }),
    el('td', { class: 'n' + (b.error_rate >= 0.01 ? ' bad' : ''), text: fmtPct(b.error_rate) }),
    el('td', { class: 'dim', text: upFor }),
    el('td', {}, action));
}

function renderRoutes(s) {
  const box = document.getElementById('routes');
  if (!s.routes.length) { box.replaceChildren(el('p', { class: 'notconf', text: 'no route statistics' })); return; }
  box.replaceChildren(el('table', {},
    el('thead', {}, el('tr', {}, el('th', { text: 'route' }), el('th', { text: 'pool' }), el('th', { class: 'n', text: 'req/s' }),
      el('th', { class: 'n', text: '5xx' }), el('th', { class: 'n', text: 'p95' }), el('th', { class: 'n', text: 'degraded/s' }),
      el('th', { class: 'n', text: 'total' }))),
    el('tbody', {}, s.routes.map((r) => el('tr', { 'data-route': r.name },
      el('td', { text: r.name }), el('td', { text: r.pool }), el('td', { class: 'n', text: fmtRate(r.requests_per_second) }),
      el('td', { class: 'n ' + errClass(r.error_rate, r.requests_per_second, r.refused_per_second), text: fmtPct(r.error_rate) }),
      el('td', { class: 'n', text: fmtDur(r.p95_seconds) }),
      el('td', { class: 'n' + (r.degraded_per_second ? ' warn' : ''), text: fmtRate(r.degraded_per_second) }),
      el('td', { class: 'n', text: r.requests.toLocaleString('en-US') }))))));
}

function kv(pairs) {
  return el('div', { class: 'kv' }, pairs.flatMap(([k, v, cls]) => [el('span', { class: 'k', text: k }), el('span', { class: cls || '', text: v })]));
}

function renderCache(s) {
  const box = document.getElementById('cache');
  const c = s.cache;
  if (!c) { box.replaceChildren(el('p', { class: 'notconf', text: 'not configured (no cache.max_bytes)' })); return; }
  const fill = c.max_bytes ? c.bytes / c.max_bytes : null;
  box.replaceChildren(kv([
    ['hit ratio', fmtPct(c.hit_ratio) + ' now · ' + fmtPct(c.hit_ratio_total) + ' since start'],
    ['lookups/s', fmtRate(c.lookups_per_second)],
    ['size', fmtBytes(c.bytes) + (c.max_bytes ? ' of ' + fmtBytes(c.max_bytes) + ' (' + fmtPct(fill) + ')' : ''), fill >= 0.95 ? 'warn' : ''],
    ['objects', c.objects.toLocaleString('en-US')],
    ['evicted', c.evicted.toLocaleString('en-US')],
  ]));
}

function renderCaptures(s) {
  const box = document.getElementById('captures');
  const c = s.captures;
  if (!c) { box.replaceChildren(el('p', { class: 'notconf', text: 'not configured (no capture section)' })); return; }
  const pools = Object.entries(c.backlog_by_pool).map(([p, n]) => p + ' ' + n).join(', ');
  const parts = [kv([
    ['backlog', String(c.backlog) + (pools ? ' (' + pools + ')' : '')],
    ['dead letters', String(c.dead_letters), c.dead_letters ? 'bad' : ''],
    ['captured', c.captured.toLocaleString('en-US') + ' · ' + fmtRate(c.captured_per_second) + '/s'],
    ['delivered', c.delivered.toLocaleString('en-US') + ' · ' + fmtRate(c.delivered_per_second) + '/s'],
    ['replay paused', c.paused_pools.length ? c.paused_pools.join(', ') : 'no', c.paused_pools.length ? 'warn' : ''],
    ['journal', fmtBytes(c.bytes) + ' in ' + c.segments + ' segment' + (c.segments === 1 ? '' : 's')],
  ])];
  if (c.dead.length) {
    parts.push(el('div', { class: 'scroll' }, el('table', {},
      el('thead', {}, el('tr', {}, el('th', { text: 'dead letter' }), el('th', { text: 'route' }), el('th', { text: 'reason' }), el('th', { text: 'at' }))),
      el('tbody', {}, c.dead.map((d) => el('tr', {},
        el('td', { class: 'addr', text: d.id }), el('td', { text: d.route }), el('td', { text: d.reason }), el('td', { text: fmtClock(d.dead_at) })))))));
  }
  box.replaceChildren(...parts);
}

function render(s) {
  // Rebuilding under the pointer would swallow a click; rebuilding under a
  // selection would drop it. Both wait for the next poll.
  if (pointerDown || document.getElementById('confirm').open) return;
  const sel = window.getSelection();
  if (sel && !sel.isCollapsed && sel.toString().trim() !== '') return;
  const now = Date.parse(s.time);
  document.getElementById('meta').textContent = 'generation ' + s.generation + ' · ' + fmtClock(s.time);
  document.getElementById('window').textContent = s.window_seconds ? s.window_seconds + ' s' : DASH;
  renderSummary(s);
  document.getElementById('pools').replaceChildren(...s.pools.map((p) => renderPool(p, now)));
  renderRoutes(s);
  renderCache(s);
  renderCaptures(s);
}

// ---- polling ------------------------------------------------------------------

function setConn(state, text) {
  const c = document.getElementById('conn');
  c.dataset.live = state;
  c.textContent = text;
}

// refresh fetches the status once and renders it.
async function refresh() {
  try {
    const r = await fetch('api/v1/status', { cache: 'no-store', credentials: 'same-origin' });
    if (r.status === 401) { location.reload(); return; }
    if (!r.ok) throw new Error('HTTP ' + r.status);
    render(await r.json());
    lastOK = Date.now();
    setConn('ok', 'live');
  } catch (e) {
    const age = lastOK ? Math.round((Date.now() - lastOK) / 1000) : null;
    if (!lastOK || Date.now() - lastOK > STALE_MS) {
      setConn('bad', 'NO DATA' + (age !== null ? ' for ' + age + ' s' : '') + ': ' + e.message);
    }
  }
}

// poll refreshes once a second, one request at a time.
async function poll() {
  await refresh();
  setTimeout(poll, POLL_MS);
}

// ---- controls -----------------------------------------------------------------

function toast(text, err) {
  const t = document.getElementById('toast');
  t.textContent = text;
  t.className = 'toast' + (err ? ' err' : '');
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, err ? 8000 : 4000);
}

// ask opens the confirmation dialog and resolves true when confirmed.
function ask(title, text, ok) {
  const d = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = ok;
  d.returnValue = '';
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.showModal();
  });
}

async function call(method, path, body) {
  const r = await fetch(path, {
    method, credentials: 'same-origin', cache: 'no-store',
    headers: { 'Content-Type': 'application/json', 'X-Floodgate-Page': '1' },
    body: JSON.stringify(body),
  });
  let j = null;
  try { j = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) throw new Error((j && j.error) || 'HTTP ' + r.status);
  return j;
}

const modeText = {
  auto: 'Hand pool %s back to its signals: it takes at once the mode they indicate.',
  degraded: 'Put pool %s in degraded mode now, whatever its signals say. Its routes apply their on_degraded action and low-priority requests are refused until you set it back.',
  normal: 'Force pool %s to normal mode: nothing is refused, whatever its signals say, until you set it back to auto.',
};

async function confirmMode(pool, mode) {
  if (!await ask('Set mode of ' + pool + ' to ' + mode + '?', modeText[mode].replace('%s', pool), 'Set ' + mode)) return;
  try {
    const m = await call('PUT', 'api/v1/pools/' + encodeURIComponent(pool) + '/mode', { mode });
    toast(pool + ': ' + m.mode + ' (override ' + m.override + ')');
  } catch (e) { toast(pool + ': ' + e.message, true); }
  refresh();
}

async function confirmDrain(pool, address, drain) {
  const text = drain
    ? 'Backend ' + address + ' of pool ' + pool + ' gets no new requests; requests in flight finish. Its weight is kept for when you undrain it.'
    : 'Backend ' + address + ' of pool ' + pool + ' gets requests again at its weight.';
  if (!await ask((drain ? 'Drain ' : 'Undrain ') + address + '?', text, drain ? 'Drain' : 'Undrain')) return;
  try {
    await call('PATCH', 'api/v1/pools/' + encodeURIComponent(pool) + '/backends/' + encodeURIComponent(address), { drain });
    toast(address + (drain ? ' draining' : ' back in service'));
  } catch (e) { toast(address + ': ' + e.message, true); }
  refresh();
}

document.addEventListener('pointerdown', () => { pointerDown = true; });
document.addEventListener('pointerup', () => { pointerDown = false; });
document.addEventListener('pointercancel', () => { pointerDown = false; });
document.addEventListener('DOMContentLoaded', poll);
