// The coordinator's live status page. Plain JavaScript, no library, no build step.
//
// Safety rules this file keeps: every string that came from the coordinator (node ids,
// messages, monitor reasons) reaches the page as a text node or an attribute set with
// setAttribute, never parsed as markup; tokens live in variables of this tab only (no web
// storage, no cookie); the script is served from this origin under a
// Content-Security-Policy that allows nothing inline.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const SVG = 'http://www.w3.org/2000/svg';

  // Builds an element; children that are strings become text nodes (never markup).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v; else e.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === undefined || c === null) continue;
      e.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const ms = (iso) => (iso ? Date.parse(iso) : NaN);
  function clock(iso) {
    const t = ms(iso);
    if (!Number.isFinite(t)) return '';
    return new Date(t).toISOString().slice(11, 19);
  }
  function span(msv) {
    if (!Number.isFinite(msv) || msv < 0) return '';
    const s = Math.round(msv / 1000);
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm' + String(s % 60).padStart(2, '0') + 's';
    return Math.floor(s / 3600) + 'h' + String(Math.floor((s % 3600) / 60)).padStart(2, '0') + 'm';
  }

  // ---------------------------------------------------------------------------------------
  // State. Tokens only ever live here.
  let readToken = '';
  const S = {
    deployment: null,      // GET /v1/deployments/{id}
    holds: [],
    nodes: [],
    events: [],            // newest last
    eventIds: new Set(),
    lastEventId: null,
    lines: new Map(),      // deployment id -> Map node -> timeline line
    holdSpans: [],         // {source, reason, from, to}
    streamAbort: null,
  };

  function notice(text, isError) {
    const n = $('notice');
    n.textContent = text;
    n.style.color = isError ? '#ffb4b4' : '';
  }

  async function api(method, path, token, body) {
    const headers = { Authorization: 'Bearer ' + token };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(path, {
      method, headers, cache: 'no-store', credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await r.json(); } catch (_) { data = null; }
    if (!r.ok) {
      const err = new Error((data && typeof data.error === 'string') ? data.error : 'HTTP ' + r.status);
      err.status = r.status;
      throw err;
    }
    return data;
  }

  // ---------------------------------------------------------------------------------------
  // Throttled refreshes: a burst of notices costs one request per kind.
  const timers = new Map();
  function schedule(name, fn, delay) {
    if (timers.has(name)) return;
    timers.set(name, setTimeout(() => {
      timers.delete(name);
      fn().catch((e) => notice(name + ': ' + e.message, true));
    }, delay));
  }

  async function refreshDeployment() {
    const list = await api('GET', '/v1/deployments?limit=5', readToken);
    const ds = Array.isArray(list.deployments) ? list.deployments : [];
    const id = list.acting || (ds[0] && ds[0].id) || '';
    if (!id) { S.deployment = null; renderDeployment(); renderTimeline(); return; }
    const d = await api('GET', '/v1/deployments/' + encodeURIComponent(id) + '?events=500', readToken);
    S.deployment = d;
    S.deployment.acting = list.acting === id;
    seedTimeline(d);
    renderDeployment();
    renderTimeline();
  }
  async function refreshHolds() {
    const h = await api('GET', '/v1/halt', readToken);
    S.holds = Array.isArray(h.holds) ? h.holds : [];
    for (const hold of S.holds) openHoldSpan(hold.source, hold.reason, ms(hold.since));
    renderHolds();
    renderTimeline();
  }
  async function refreshFleet() {
    const n = await api('GET', '/v1/nodes', readToken);
    S.nodes = Array.isArray(n.nodes) ? n.nodes : [];
    renderFleet();
  }
  async function refreshEvents() {
    const e = await api('GET', '/v1/events?limit=200', readToken);
    for (const ev of (e.events || [])) addEvent(ev, false);
    renderEvents();
  }
  function refreshAll() {
    for (const [name, fn] of [['deployment', refreshDeployment], ['holds', refreshHolds],
      ['fleet', refreshFleet], ['events', refreshEvents]]) schedule(name, fn, 0);
  }

  // ---------------------------------------------------------------------------------------
  // The stream: fetch (so the token goes in a header, not the URL) read as text/event-stream.
  async function follow() {
    let delay = 500;
    while (readToken) {
      const abort = new AbortController();
      S.streamAbort = abort;
      try {
        const headers = { Authorization: 'Bearer ' + readToken, Accept: 'text/event-stream' };
        if (S.lastEventId !== null) headers['Last-Event-ID'] = String(S.lastEventId);
        const r = await fetch('/v1/events/stream', { headers, signal: abort.signal, cache: 'no-store', credentials: 'omit' });
        if (r.status === 401) { signOut('that token is not accepted (401): use the monitor or the admin token'); return; }
        if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
        setConnected(true);
        delay = 500;
        refreshAll();
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let cut;
          while ((cut = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            handle(parseBlock(block));
          }
        }
      } catch (e) {
        if (!readToken) return;
      }
      setConnected(false);
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  }

  function parseBlock(block) {
    const m = { event: 'message', data: [], id: null };
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') m.event = value;
      else if (field === 'data') m.data.push(value);
      else if (field === 'id') m.id = value;
    }
    return m;
  }

  function handle(m) {
    if (m.event === 'message' && m.data.length === 0) return;  // a comment block
    let data;
    try { data = JSON.parse(m.data.join('\n')); } catch (_) { return; }
    if (m.event === 'hello') {
      if (!data.resumed) S.lastEventId = data.last_event_id;
    } else if (m.event === 'audit') {
      S.lastEventId = Number(m.id);
      addEvent(data, true);
      renderEvents();
      if (data.action === 'halt' || data.action === 'halt cleared') renderTimeline();
    } else if (m.event === 'gap') {
      schedule('events', refreshEvents, 0);
    } else if (m.event === 'change') {
      onChange(data);
    }
  }

  function onChange(c) {
    const t = ms(c.time);
    for (const row of (c.nodes || [])) applyNodeRow(row, Number.isFinite(t) ? t : Date.now());
    const current = S.deployment && S.deployment.id;
    const ours = (c.deployments || []).some((d) => d.id === current) ||
      (c.nodes || []).some((n) => n.deployment === current) || c.nodes_omitted > 0;
    const another = (c.deployments || []).some((d) => d.id !== current);
    if (ours || another || !current) schedule('deployment', refreshDeployment, 250);
    if (c.holds) schedule('holds', refreshHolds, 0);
    if (c.fleet) schedule('fleet', refreshFleet, 1000);
    renderTimeline();
  }

  function setConnected(on) {
    const c = $('conn');
    c.className = 'conn ' + (on ? 'on' : 'off');
    c.textContent = on ? 'live' : 'reconnecting…';
  }

  // ---------------------------------------------------------------------------------------
  // Audit events.
  function addEvent(ev, fresh) {
    if (!ev || typeof ev.id !== 'number' || S.eventIds.has(ev.id)) return;
    S.eventIds.add(ev.id);
    ev.fresh = fresh;
    S.events.push(ev);
    S.events.sort((a, b) => a.id - b.id);
    while (S.events.length > 300) S.eventIds.delete(S.events.shift().id);
    if (ev.action === 'halt') {
      const [source, reason] = splitHold(ev.detail);
      openHoldSpan(source, reason, ms(ev.time));
    } else if (ev.action === 'halt cleared') {
      const [source] = splitHold(ev.detail);
      for (const h of S.holdSpans) if (h.source === source && h.to === null) h.to = ms(ev.time);
    }
    if (ev.node && ev.deployment) applyEventToLine(ev);
  }
  function splitHold(detail) {
    const text = String(detail || '');
    const cut = text.indexOf(': ');
    return cut < 0 ? [text, ''] : [text.slice(0, cut), text.slice(cut + 2).replace(/ \[.*\]$/, '')];
  }
  function openHoldSpan(source, reason, from) {
    if (!Number.isFinite(from)) return;
    if (S.holdSpans.some((h) => h.source === source && h.to === null)) return;
    if (S.holdSpans.some((h) => h.source === source && Math.abs(h.from - from) < 1)) return;
    S.holdSpans.push({ source, reason, from, to: null });
  }

  function renderEvents() {
    const list = $('event-list');
    const items = [];
    for (let i = S.events.length - 1; i >= 0; i--) {
      const e = S.events[i];
      const where = [e.deployment, e.node].filter(Boolean).join(' ');
      items.push(el('li', { class: e.fresh ? 'fresh' : '', 'data-id': e.id },
        el('span', { title: e.time }, clock(e.time)),
        el('span', { class: 'actor' }, e.actor),
        el('span', { class: 'action' }, e.action),
        el('span', { class: 'detail' }, where ? where + (e.detail ? ': ' : '') : '', e.detail || '')));
      e.fresh = false;
    }
    list.replaceChildren(...items);
  }

  // ---------------------------------------------------------------------------------------
  // Holds.
  function renderHolds() {
    const table = $('holds-table');
    const body = table.querySelector('tbody');
    $('holds').classList.toggle('halted', S.holds.length > 0);
    $('holds-none').hidden = S.holds.length > 0;
    table.hidden = S.holds.length === 0;
    body.replaceChildren(...S.holds.map((h) => {
      const clear = el('button', { type: 'button', 'data-source': h.source }, 'Clear…');
      clear.addEventListener('click', () => clearHold(h.source));
      const monitor = h.resolved
        ? el('span', { class: 'resolved' }, 'resolved by the monitor at ' + clock(h.resolved))
        : el('span', { class: 'quiet' }, 'firing');
      return el('tr', { 'data-source': h.source },
        el('td', { class: 'source' }, h.source),
        el('td', { class: 'by' }, h.by),
        el('td', { title: h.since }, clock(h.since) + ' (' + span(Date.now() - ms(h.since)) + ' ago)'),
        el('td', { class: 'reason' }, h.reason),
        el('td', {}, monitor),
        el('td', {}, clear));
    }));
  }

  // ---------------------------------------------------------------------------------------
  // The acting deployment.
  const WAVE_NOTE = { master: 'one at a time, first', agent: 'up to max_parallel at once' };
  function renderDeployment() {
    const d = S.deployment;
    $('dep-none').hidden = !!d;
    $('dep-body').hidden = !d;
    if (!d) { $('dep-title').textContent = ''; return; }
    $('dep-title').replaceChildren(
      el('span', {}, d.id + ' → ' + d.version + (d.kind === 'rollback' ? ' (rollback)' : '') + ' '),
      el('span', { class: 'state ' + d.state, id: 'dep-state' }, d.state));
    const facts = [
      ['waiting on', d.waiting_on || '—'], ['started by', d.created_by + ' at ' + clock(d.created)],
      ['nodes', (d.counts ? d.counts.done + ' done, ' + d.counts.in_flight + ' in flight, ' + d.counts.pending +
        ' pending, ' + d.counts.failed + ' failed, ' + d.counts.skipped + ' skipped' : '')],
      ['finished', d.finished ? clock(d.finished) : '—'],
      ['max parallel', d.max_parallel], ['auto revert', d.auto_revert ? 'yes' : 'no'],
    ];
    if (d.message) facts.push(['message', d.message]);
    const dl = $('dep-facts');
    dl.replaceChildren();
    for (const [k, v] of facts) dl.append(el('dt', {}, k), el('dd', { 'data-fact': k }, String(v)));
    const failed = d.counts ? d.counts.failed : 0;
    const allowed = d.max_failures;
    $('budget-text').textContent = 'failure budget: ' + failed + ' failed of ' + allowed + ' allowed' +
      (failed > allowed ? ' (spent)' : '');
    const fill = $('budget-fill');
    fill.style.width = Math.min(100, (allowed + 1 > 0 ? failed / (allowed + 1) : 1) * 100) + '%';
    fill.classList.toggle('spent', failed > allowed);
    renderGates(d.gates);
    for (const b of document.querySelectorAll('.actions button')) b.disabled = !d.acting && b.dataset.verb !== 'rollback';
    const waves = $('waves');
    const byRole = new Map();
    for (const n of (d.nodes || [])) {
      if (!byRole.has(n.role)) byRole.set(n.role, []);
      byRole.get(n.role).push(n);
    }
    const order = [...byRole.keys()].sort((a, b) => rank(a) - rank(b));
    waves.replaceChildren(...order.map((role, i) => {
      const rows = byRole.get(role);
      const c = (d.roles && d.roles[role]) || {};
      return el('div', { class: 'wave', 'data-role': role },
        el('h3', {}, 'wave ' + (i + 1) + ': ' + role,
          el('span', { class: 'quiet' }, (WAVE_NOTE[role] || 'one at a time, after agents') + ' · ' +
            (c.done || 0) + '/' + (c.total || rows.length) + ' done')),
        el('table', {},
          el('thead', {}, el('tr', {}, ...['node', 'state', 'node reports', 'reason', 'started', 'finished', 'took']
            .map((h) => el('th', {}, h)))),
          el('tbody', {}, ...rows.map((n) => el('tr', { 'data-node': n.node },
            el('td', {}, n.node),
            el('td', {}, el('span', { class: 'state ' + n.state }, n.state)),
            el('td', {}, n.node_state),
            el('td', { class: 'reason' }, n.message),
            el('td', { title: n.started }, clock(n.started)),
            el('td', { title: n.finished }, clock(n.finished)),
            el('td', { class: 'num' }, n.started && n.finished ? span(ms(n.finished) - ms(n.started)) : ''))))));
    }));
  }
  function rank(role) { return role === 'master' ? 0 : role === 'agent' ? 1 : 2; }

  // Gates (metric checks a deployment may carry): shown as they come, field by field.
  function renderGates(gates) {
    const box = $('gates');
    box.hidden = !Array.isArray(gates) || gates.length === 0;
    if (box.hidden) return;
    $('gates-body').replaceChildren(...gates.map((g) => el('tr', {},
      ...Object.entries(g).map(([k, v]) => el('td', {}, el('span', { class: 'quiet' }, k + ' '),
        typeof v === 'object' ? JSON.stringify(v) : String(v))))));
  }

  // ---------------------------------------------------------------------------------------
  // Fleet by role and release.
  function renderFleet() {
    const groups = new Map();
    for (const n of S.nodes) {
      if (n.status === 'removed') continue;
      const key = n.role + '\u0000' + n.release;
      if (!groups.has(key)) groups.set(key, { role: n.role, release: n.release, total: 0, up: 0, down: 0, gens: new Set() });
      const g = groups.get(key);
      g.total++;
      if (n.status === 'up') g.up++; else g.down++;
      g.gens.add(n.generation);
    }
    const rows = [...groups.values()].sort((a, b) => rank(a.role) - rank(b.role) || a.role.localeCompare(b.role) ||
      a.release.localeCompare(b.release));
    $('fleet-body').replaceChildren(...rows.map((g) => el('tr', { 'data-role': g.role, 'data-release': g.release },
      el('td', {}, g.role), el('td', {}, g.release), el('td', { class: 'num' }, g.total),
      el('td', { class: 'num' }, g.up), el('td', { class: 'num' }, g.down),
      el('td', {}, [...g.gens].sort((a, b) => a - b).join(', ')))));
  }

  // ---------------------------------------------------------------------------------------
  // The timeline: one line per node, its phases as segments over time, holds across.
  const PHASES = {
    staging: { color: '#a9c4e8', label: 'staging', thin: true },
    staged: { color: '#d5dbe3', label: 'staged (waiting)', thin: true },
    restarting: { color: '#8fb0e8', label: 'restart sent' },
    stopping: { color: '#e0a030', label: 'stopping' },
    swapping: { color: '#6d9be6', label: 'swapping' },
    checking: { color: '#1f4fb8', label: 'checking' },
    healthy: { color: '#5cc486', label: 'healthy (settling)' },
    rolling_back: { color: '#a38ad8', label: 'rolling back' },
  };
  const RESULTS = { done: '#1f9d55', failed: '#d64545', reverted: '#7c5cc4' };

  function phaseOf(row) {
    switch (row.state) {
      case 'staging': return 'staging';
      case 'staged': case 'revert_pending': return 'staged';
      case 'restarting': case 'restarted': {
        const s = String(row.node_state || '');
        if (s === 'rolling_back' || s === 'rolled_back') return 'rolling_back';
        if (s === 'staged' || s === '') return 'restarting';
        return PHASES[s] ? s : 'swapping';
      }
      case 'settling': return 'healthy';
      case 'reverting': case 'revert_sent': return 'rolling_back';
      default: return null;
    }
  }
  function resultOf(state) {
    if (state === 'done') return 'done';
    if (state === 'failed' || state === 'revert_failed') return 'failed';
    if (state === 'reverted') return 'reverted';
    return null;
  }
  function line(dep, node, role) {
    if (!S.lines.has(dep)) S.lines.set(dep, new Map());
    const m = S.lines.get(dep);
    if (!m.has(node)) m.set(node, { node, role: role || '', segs: [], result: null, end: null, latest: -Infinity });
    const l = m.get(node);
    if (role) l.role = role;
    return l;
  }
  // News older than what a line already shows (the audit log read again, a late notice) is
  // ignored: a line only ever grows to the right.
  function enter(l, phase, t) {
    if (t < l.latest) return;
    const last = l.segs[l.segs.length - 1];
    if (last && last.to === null) {
      if (last.phase === phase) return;
      last.to = t;
    }
    l.latest = t;
    if (phase) l.segs.push({ phase, from: t, to: null });
  }
  function finish(l, result, t) {
    if (l.result === result) return;
    t = Math.max(t, l.latest);
    enter(l, null, t);
    l.result = result;
    l.end = t;
  }
  function applyNodeRow(row, t) {
    const l = line(row.deployment, row.node, row.role);
    const result = resultOf(row.state);
    if (result) {
      if (!l.result || l.result !== result) finish(l, result, Number.isFinite(ms(row.finished)) ? ms(row.finished) : t);
      return;
    }
    if (l.result && row.state !== 'revert_pending' && row.state !== 'reverting' && row.state !== 'revert_sent') return;
    if (l.result) { l.result = null; l.end = null; }
    const phase = phaseOf(row);
    if (phase) enter(l, phase, t);
  }
  // History from the audit log, for what happened before the page was open.
  function applyEventToLine(ev) {
    const t = ms(ev.time);
    if (!Number.isFinite(t)) return;
    const l = line(ev.deployment, ev.node);
    const a = ev.action;
    if (a === 'stage') enter(l, 'staging', t);
    else if (a === 'restart') enter(l, 'restarting', t);
    else if (a === 'revert') { l.result = null; enter(l, 'rolling_back', t); }
    else if (a === 'deferred by hold') enter(l, 'staged', t);
    else if (a === 'node done') finish(l, 'done', t);
    else if (a === 'node failed' || a === 'node revert_failed') finish(l, 'failed', t);
    else if (a === 'node reverted') finish(l, 'reverted', t);
  }
  function seedTimeline(d) {
    for (const ev of (d.events || [])) if (ev.node) applyEventToLine(ev);
    const now = Date.now();
    for (const n of (d.nodes || [])) {
      const l = line(d.id, n.node, n.role);
      if (n.state === 'skipped' || n.state === 'pending') continue;
      const result = resultOf(n.state);
      if (result && !l.result) finish(l, result, Number.isFinite(ms(n.finished)) ? ms(n.finished) : now);
      else if (!result && l.segs.length === 0 && phaseOf(n)) enter(l, phaseOf(n), Number.isFinite(ms(n.started)) ? ms(n.started) : now);
    }
  }

  function renderLegend() {
    const items = [];
    for (const p of ['staging', 'staged', 'restarting', 'stopping', 'checking', 'healthy', 'rolling_back']) {
      const i = el('i');
      i.style.background = PHASES[p].color;
      items.push(el('span', {}, i, PHASES[p].label));
    }
    for (const [r, c] of Object.entries(RESULTS)) {
      const i = el('i');
      i.style.background = c;
      items.push(el('span', {}, i, r === 'reverted' ? 'rolled back' : r));
    }
    const h = el('i');
    h.style.background = 'rgba(214,69,69,.25)';
    items.push(el('span', {}, h, 'hold'));
    $('legend').replaceChildren(...items);
  }

  function renderTimeline() {
    const box = $('timeline-box');
    const d = S.deployment;
    const lines = d && S.lines.get(d.id);
    if (!d || !lines || lines.size === 0) {
      box.replaceChildren(el('p', { class: 'quiet' }, 'Nothing to draw yet: bars appear as nodes are staged and restarted.'));
      return;
    }
    const order = new Map((d.nodes || []).map((n, i) => [n.node, i]));
    const rows = [...lines.values()].filter((l) => l.segs.length > 0)
      .sort((a, b) => (order.has(a.node) ? order.get(a.node) : 1e9) - (order.has(b.node) ? order.get(b.node) : 1e9));
    const now = Date.now();
    let t0 = ms(d.created);
    let t1 = Number.isFinite(ms(d.finished)) && !d.acting ? ms(d.finished) : now;
    for (const l of rows) for (const s of l.segs) { if (!Number.isFinite(t0) || s.from < t0) t0 = s.from; t1 = Math.max(t1, s.to || 0); }
    if (!Number.isFinite(t0)) t0 = now - 60000;
    if (t1 - t0 < 10000) t1 = t0 + 10000;
    const width = Math.max(600, box.clientWidth || 1000);
    const left = 130, right = 16, top = 26, rowH = 20;
    const holdsShown = S.holdSpans.filter((h) => (h.to === null ? now : h.to) >= t0).length;
    const height = top + rows.length * rowH + 10 + 12 * holdsShown;
    const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - right);
    const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': 'rollout timeline', id: 'timeline' });
    // Axis with a tick every "nice" step.
    const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600].map((s) => s * 1000);
    const step = steps.find((s) => (t1 - t0) / s <= 10) || 7200000;
    root.append(svg('line', { x1: left, x2: width - right, y1: top - 6, y2: top - 6, class: 'axis' }));
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      root.append(svg('line', { x1: x(t), x2: x(t), y1: top - 10, y2: height - 6, class: 'axis', 'stroke-opacity': 0.35 }));
      root.append(svg('text', { x: x(t) + 2, y: 12 }, new Date(t).toISOString().slice(11, 19)));
    }
    rows.forEach((l, i) => {
      const y = top + i * rowH;
      const g = svg('g', { 'data-node': l.node, class: 'line' + (l.result ? ' ' + l.result : '') });
      const label = svg('text', { x: 4, y: y + 13 }, l.node);
      if (l.result) label.setAttribute('fill', RESULTS[l.result]);
      g.append(label);
      for (const s of l.segs) {
        const p = PHASES[s.phase] || PHASES.swapping;
        const from = x(s.from), to = x(s.to === null ? (l.end || now) : s.to);
        const h = p.thin ? 6 : 14;
        const r = svg('rect', { x: from, y: y + (rowH - h) / 2 - 1, width: Math.max(1.5, to - from), height: h, fill: p.color, 'data-phase': s.phase });
        r.append(svg('title', {}, l.node + ': ' + p.label + ' ' + span((s.to || now) - s.from)));
        g.append(r);
      }
      if (l.result && l.end) {
        const cap = svg('rect', { x: x(l.end) - 3, y: y + 1, width: 6, height: rowH - 4, rx: 2, fill: RESULTS[l.result], 'data-result': l.result });
        cap.append(svg('title', {}, l.node + ': ' + (l.result === 'reverted' ? 'rolled back' : l.result)));
        g.append(cap);
      }
      root.append(g);
    });
    // Holds across every line.
    let drawn = 0;
    for (const h of S.holdSpans) {
      const to = h.to === null ? now : h.to;
      if (to < t0 || h.from > t1) continue;
      const labelY = height - 2 - 12 * drawn++;
      const hx = Math.max(left, x(h.from));
      const band = svg('rect', { x: hx, y: top - 4, width: Math.max(2, x(Math.min(to, t1)) - hx), height: height - top, fill: '#d64545', 'fill-opacity': 0.16, class: 'hold-band', 'data-source': h.source });
      band.append(svg('title', {}, 'hold ' + h.source + ': ' + h.reason));
      root.append(band, svg('text', { x: hx + 3, y: labelY, class: 'hold' }, 'hold: ' + h.source));
    }
    if (now >= t0 && now <= t1) root.append(svg('line', { x1: x(now), x2: x(now), y1: top - 10, y2: height, class: 'now' }));
    box.replaceChildren(root);
  }

  // ---------------------------------------------------------------------------------------
  // Actions. Each asks for its token; an empty field means the token this tab connected with.
  function ask({ title, text, reason, hint }) {
    return new Promise((resolve) => {
      const dialog = $('dialog');
      $('dialog-title').textContent = title;
      $('dialog-text').textContent = text;
      $('dialog-reason-label').hidden = !reason;
      $('dialog-reason').value = '';
      $('dialog-token').value = '';
      $('dialog-hint').textContent = hint;
      $('dialog-error').textContent = '';
      const done = (value) => {
        $('dialog-form').onsubmit = null;
        $('dialog-cancel').onclick = null;
        dialog.onclose = null;
        if (dialog.open) dialog.close();
        $('dialog-token').value = '';
        resolve(value);
      };
      $('dialog-form').onsubmit = (e) => {
        e.preventDefault();
        const r = $('dialog-reason').value.trim();
        if (reason && !r) { $('dialog-error').textContent = 'say why, for whoever clears it'; return; }
        done({ token: $('dialog-token').value.trim() || readToken, reason: r });
      };
      $('dialog-cancel').onclick = () => done(null);
      dialog.onclose = () => done(null);
      dialog.showModal();
      (reason ? $('dialog-reason') : $('dialog-token')).focus();
    });
  }

  async function act(what, call) {
    try {
      await call();
      notice(what + ': done');
    } catch (e) {
      notice(what + ': ' + e.message + (e.status === 401 ? ' (this needs another token)' : ''), true);
    }
  }

  async function halt() {
    const a = await ask({ title: 'Halt every node action', reason: true,
      text: 'No stage or restart starts until an admin clears the hold. Nodes mid-swap finish their swap.',
      hint: 'The halt token (or the admin token). Empty: the token you connected with.' });
    if (!a) return;
    await act('halt', () => api('POST', '/v1/halt', a.token, { reason: a.reason, source: 'ui' }));
    schedule('holds', refreshHolds, 0);
  }

  async function clearHold(source) {
    const a = await ask({ title: 'Clear the hold ' + source, text: 'Node actions resume once no hold stands.',
      hint: 'The admin token. Empty: the token you connected with.' });
    if (!a) return;
    await act('clear ' + source, () => api('DELETE', '/v1/halt/' + encodeURIComponent(source), a.token));
    schedule('holds', refreshHolds, 0);
  }

  async function command(verb) {
    const d = S.deployment;
    if (!d) return;
    const a = await ask({ title: verb + ' ' + d.id, text: 'An admin action on deployment ' + d.id + '.',
      hint: 'The admin token. Empty: the token you connected with.' });
    if (!a) return;
    await act(verb + ' ' + d.id, () => api('POST', '/v1/deployments/' + encodeURIComponent(d.id) + '/' + verb, a.token));
    schedule('deployment', refreshDeployment, 0);
  }

  // ---------------------------------------------------------------------------------------
  // Connecting.
  async function signIn(e) {
    e.preventDefault();
    const token = $('signin-token').value.trim();
    $('signin-token').value = '';
    if (!token) { $('signin-error').textContent = 'a token is needed to read the coordinator'; return; }
    try {
      await api('GET', '/v1/halt', token);
    } catch (err) {
      $('signin-error').textContent = err.status === 401
        ? 'that token is not accepted: use the monitor (halt) token or the admin token'
        : 'cannot reach the coordinator: ' + err.message;
      return;
    }
    readToken = token;
    $('signin-error').textContent = '';
    $('signin').hidden = true;
    $('main').hidden = false;
    $('halt').disabled = false;
    follow();
  }

  function signOut(why) {
    readToken = '';
    if (S.streamAbort) S.streamAbort.abort();
    $('signin').hidden = false;
    $('main').hidden = true;
    $('halt').disabled = true;
    $('signin-error').textContent = why || '';
    setConnected(false);
    $('conn').textContent = 'not connected';
  }

  document.addEventListener('DOMContentLoaded', () => {
    renderLegend();
    $('signin-form').addEventListener('submit', signIn);
    $('halt').addEventListener('click', halt);
    for (const b of document.querySelectorAll('.actions button')) b.addEventListener('click', () => command(b.dataset.verb));
    // The clock moves bars in flight and hold spans even when nothing is pushed.
    setInterval(() => { if (readToken && S.deployment) renderTimeline(); }, 1000);
    $('signin-token').focus();
  });
})();
