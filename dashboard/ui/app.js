// optoloop dashboard page: renders the server's snapshots (GET /ui/events, server-sent
// "snapshot" events; GET /ui/api/snapshot) into the DOM, updating in place: an element is
// touched only when what it shows changed, a thumbnail is fetched only when its tile's seq
// changed. No framework, no build step.
//
// Selectors (stable; browser tests rely on them):
//   body[data-role][data-operator][data-seq][data-apply-ms]   the session's role, the last
//                         snapshot applied and how long applying it took (ms)
//   #cluster[data-reachable="true|false"][data-stale]           coordinator state
//   #connection[data-state="live|reconnecting|connecting"]      the event stream
//   #leader[data-leader], #nodes .node[data-node][data-state][data-reachable]
//   #arenas [data-arena="ID"]    one tile per arena, attributes data-worker, data-state
//                         (idle|leased|running|failed|draining|lost|unregistered),
//                         data-stale, data-lost, data-draining, data-seq (the thumbnail's)
//     .arena-id           the arena id as text
//     img.thumb           the thumbnail (a blob: URL; shown only once one decoded)
//     .placeholder        shown instead while there is none
//     .badge.state        the state; .flag the stale / lost heartbeat label
//     .line, .worker      line and worker id; a.episode-link the episode (its page)
//     .progress[data-step][data-steps]   episode progress in control steps
//     [data-distance]     distance to the target in cm ("" when not tracked)
//     [data-confidence], [data-latency-ms], [data-light="on|off"]
//     button.drain[data-worker]  drain / resume (operators only)
//   #experiments [data-experiment="ID"]   attributes data-status, data-phase
//     [data-phase="collect|train|evaluate|cross_evaluate|transfer"] .bar.items[data-done][data-total]
//                         episodes (train: tasks) done of total; .bar.updates[data-done]
//                         [data-total] the training updates (train only)
//     ul.failures li[data-item]          failed attempts
//     table.lines tbody tr[data-line][data-kind]   the per-line table (evaluation phases)
//     a.report-link       the report, once the experiment is done
//     a.partial-report    a report of what exists, while running or after a failure
//     button.cancel       opens .cancel-form: input.cancel-reason, button.cancel-confirm
//                         (operators only, running experiments only)
//     .action-error       why the last action was refused
//   #learners li[data-learner="ID"][data-lost]
//   #tasks [data-task="ID"][data-experiment][data-line][data-state]
//     .bar.updates[data-done][data-total], .versions[data-versions="1 2 3"]
//     svg.chart[data-series="critic_loss|entropy|alpha"][data-points]
//   #message              the last action's outcome
// window.optoloop.update(snapshot) applies a snapshot and returns the time it took (ms);
// window.optoloop.stop() closes the event stream; window.optoloop.stats counts the snapshots
// applied and their times (snapshots, lastMS, maxMS, totalMS).
'use strict';

(function () {
  const SVGNS = 'http://www.w3.org/2000/svg';
  const ui = {
    csrf: '',
    operator: false,
    source: null,
    arenas: new Map(),
    experiments: new Map(),
    tasks: new Map(),
    learners: new Map(),
    stats: { snapshots: 0, lastMS: 0, maxMS: 0, totalMS: 0 },
    lastAt: 0,
    // Thumbnail fetches run under this signal; signing out aborts them and starts no more, so
    // no request of the ended session is answered 401 (a console error) while the page leaves.
    fetches: new AbortController(),
    signedOut: false,
  };

  // --- small DOM helpers -------------------------------------------------------------
  function el(tag, cls, text) {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    return n;
  }
  function svg(tag, attrs) {
    const n = document.createElementNS(SVGNS, tag);
    for (const k in attrs) n.setAttribute(k, attrs[k]);
    return n;
  }
  function setText(n, t) {
    t = String(t);
    if (n.textContent !== t) n.textContent = t;
  }
  function setAttr(n, k, v) {
    v = String(v);
    if (n.getAttribute(k) !== v) n.setAttribute(k, v);
  }
  function show(n, on) {
    if (n.hidden === on) n.hidden = !on;
  }
  function num(v, digits) {
    return typeof v === 'number' && isFinite(v) ? v.toFixed(digits) : '–';
  }
  function pct(done, total) {
    return total > 0 ? Math.max(0, Math.min(100, (100 * done) / total)) : 0;
  }
  function setWidth(n, p) {
    const w = p.toFixed(1) + '%';
    if (n.style.width !== w) n.style.width = w;
  }
  function ago(at, now) {
    const t = Date.parse(at);
    if (!isFinite(t)) return '';
    const s = Math.max(0, Math.round((now - t) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    return Math.round(s / 3600) + ' h ago';
  }
  // order keeps parent's children in the order of nodes, moving only those out of place.
  function order(parent, nodes) {
    let cur = parent.firstElementChild;
    for (const n of nodes) {
      if (n !== cur) parent.insertBefore(n, cur);
      else cur = cur.nextElementSibling;
    }
  }
  function message(text, bad) {
    const m = document.getElementById('message');
    m.textContent = text;
    m.className = bad ? 'bad' : 'ok';
    m.hidden = !text;
  }

  // --- actions -------------------------------------------------------------------------
  async function post(url, body) {
    let r;
    try {
      r = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': ui.csrf },
        body: JSON.stringify(body),
        cache: 'no-store',
      });
    } catch (e) {
      return { ok: false, error: 'the dashboard could not be reached' };
    }
    let v = {};
    try {
      v = await r.json();
    } catch (e) {
      v = {};
    }
    if (r.status === 401) {
      location.href = '/ui/login';
    }
    return r.ok ? { ok: true } : { ok: false, status: r.status, error: v.error || r.statusText };
  }

  // --- cluster header ------------------------------------------------------------------
  function applyCluster(snap) {
    const c = snap.cluster || {};
    const head = document.getElementById('cluster');
    setAttr(head, 'data-reachable', c.reachable ? 'true' : 'false');
    setAttr(head, 'data-stale', c.stale ? 'true' : 'false');
    const coord = document.getElementById('coordinator');
    let t = 'coordinator ok';
    if (!c.reachable) t = 'coordinator unreachable' + (c.last_ok ? ': data of ' + new Date(c.last_ok).toLocaleTimeString() + ' (stale)' : '');
    else if (c.stale) t = 'coordinator partly unreachable (some data stale)';
    setText(coord, t);
    setAttr(coord, 'class', 'badge ' + (!c.reachable ? 'bad' : c.stale ? 'warn' : 'good'));
    setAttr(coord, 'title', c.error || '');
    const leader = document.getElementById('leader');
    setAttr(leader, 'data-leader', c.leader || '');
    setText(leader, c.leader ? 'leader ' + c.leader : 'no leader known');
    const nodes = document.getElementById('nodes');
    const key = JSON.stringify(c.nodes || []);
    if (nodes.dataset.key !== key) {
      nodes.dataset.key = key;
      nodes.replaceChildren();
      for (const n of c.nodes || []) {
        const s = el('span', 'node', n.id);
        s.dataset.node = n.id;
        s.dataset.state = n.state || 'unknown';
        s.dataset.reachable = String(!!n.reachable);
        s.title = (n.state || 'unreachable') + (n.error ? ': ' + n.error : '') + ', applied index ' + n.applied_index;
        nodes.append(s);
      }
    }
    const up = document.getElementById('updated');
    setAttr(up, 'data-seq', snap.seq);
    setText(up, 'updated ' + new Date(snap.at).toLocaleTimeString());
  }

  // --- arenas --------------------------------------------------------------------------
  function makeTile(a) {
    const r = { id: a.id, seq: -1, want: -1, busy: false, url: '' };
    const n = el('article', 'tile');
    n.dataset.arena = a.id;
    r.node = n;
    const head = el('div', 'tile-head');
    r.name = el('span', 'arena-id', a.id);
    r.badge = el('span', 'badge state');
    r.flag = el('span', 'flag');
    head.append(r.name, r.badge, r.flag);
    const frame = el('div', 'frame');
    r.img = el('img', 'thumb');
    r.img.alt = 'arena ' + a.id;
    r.img.hidden = true;
    r.ph = el('div', 'placeholder', 'no frame yet');
    frame.append(r.img, r.ph);
    const meta = el('div', 'meta');
    r.line = el('span', 'line');
    r.worker = el('span', 'worker');
    r.ep = el('a', 'episode-link');
    r.noEp = el('span', 'no-episode', 'no episode');
    meta.append(r.line, r.worker, r.ep, r.noEp);
    r.prog = el('div', 'progress');
    r.fill = el('div', 'fill');
    r.ptext = el('span', 'ptext');
    r.prog.append(r.fill, r.ptext);
    const nums = el('div', 'nums');
    r.dist = el('span', 'distance');
    r.conf = el('span', 'confidence');
    r.lat = el('span', 'latency');
    r.light = el('span', 'light');
    r.ver = el('span', 'policy-version');
    nums.append(r.dist, r.conf, r.lat, r.light, r.ver);
    r.err = el('p', 'tile-error');
    r.err.hidden = true;
    r.btn = el('button', 'drain operator-only');
    r.btn.type = 'button';
    r.btn.addEventListener('click', () => drain(r));
    n.append(head, frame, meta, r.prog, nums, r.err, r.btn);
    return r;
  }

  async function drain(r) {
    const resume = r.node.dataset.draining === 'true';
    r.btn.disabled = true;
    const res = await post('/ui/api/workers/' + encodeURIComponent(r.workerID) + '/drain', { drain: !resume });
    r.btn.disabled = false;
    message(res.ok ? (resume ? 'resumed ' : 'drained ') + r.workerID : 'refused: ' + res.error, !res.ok);
  }

  function updateTile(r, a) {
    const n = r.node;
    r.workerID = a.worker || '';
    setAttr(n, 'data-worker', a.worker || '');
    setAttr(n, 'data-state', a.state);
    setAttr(n, 'data-stale', a.stale ? 'true' : 'false');
    setAttr(n, 'data-lost', a.lost ? 'true' : 'false');
    setAttr(n, 'data-draining', a.draining ? 'true' : 'false');
    setText(r.badge, a.state === 'lost' ? 'lost heartbeat' : a.state);
    setAttr(r.badge, 'class', 'badge state state-' + a.state);
    const flags = [];
    if (a.lost) flags.push('lost heartbeat');
    if (a.stale) flags.push('stale');
    if (a.draining && a.state !== 'draining') flags.push('draining');
    if (!a.registered) flags.push('not registered');
    setText(r.flag, flags.join(' · '));
    setText(r.line, 'line ' + (a.line || '?'));
    setText(r.worker, a.worker ? 'worker ' + a.worker : '');
    const ep = a.episode || a.holding || '';
    if (ep) {
      setAttr(r.ep, 'href', '/ui/episodes/' + encodeURIComponent(ep));
      setText(r.ep, ep);
    }
    show(r.ep, !!ep);
    show(r.noEp, !ep);
    setAttr(r.prog, 'data-step', a.step || 0);
    setAttr(r.prog, 'data-steps', a.steps || 0);
    setWidth(r.fill, pct(a.step || 0, a.steps || 0));
    setText(r.ptext, a.steps > 0 ? a.step + ' / ' + a.steps : '');
    const tracked = !a.stale && typeof a.distance_cm === 'number' && a.distance_cm >= 0;
    setAttr(r.dist, 'data-distance', tracked ? a.distance_cm.toFixed(3) : '');
    setText(r.dist, a.stale ? '' : tracked ? a.distance_cm.toFixed(2) + ' cm' : a.tracked ? 'no target' : 'not tracked');
    setAttr(r.conf, 'data-confidence', a.stale ? '' : num(a.confidence, 2));
    setText(r.conf, a.stale ? '' : 'conf ' + num(a.confidence, 2));
    setAttr(r.lat, 'data-latency-ms', a.stale ? '' : num(a.latency_ms, 1));
    setText(r.lat, a.stale ? '' : num(a.latency_ms, 1) + ' ms');
    setAttr(r.light, 'data-light', a.light ? 'on' : 'off');
    setText(r.light, a.stale ? '' : a.light ? 'light on' : 'light off');
    setText(r.ver, !a.stale && a.policy_version ? 'policy v' + a.policy_version : '');
    setText(r.err, a.error || '');
    show(r.err, !!a.error);
    show(r.btn, a.registered);
    setText(r.btn, a.draining ? 'resume' : 'drain');
    setAttr(r.btn, 'data-worker', a.worker || '');
    if (!a.stale && a.seq !== r.seq) thumb(r, a.seq);
    if (a.stale && r.seq < 0) setText(r.ph, 'no live frame');
  }

  // thumb fetches a tile's thumbnail for seq (one fetch per tile at a time; the newest seq
  // wins). A missing thumbnail is 204 with ?soft=1, so the console stays clean.
  function thumb(r, seq) {
    r.want = seq;
    if (r.busy || ui.signedOut) return;
    r.busy = true;
    fetch('/ui/thumb/' + encodeURIComponent(r.id) + '?soft=1&seq=' + seq, { cache: 'no-store', signal: ui.fetches.signal })
      .then((res) => {
        if (res.status === 401) {
          // The session ended elsewhere (expired, or signed out in another tab): the form.
          signedOut();
          location.href = '/ui/login';
          return null;
        }
        return res.status === 200 ? res.blob() : null;
      })
      .then((blob) => {
        if (ui.signedOut) return;
        r.seq = seq;
        if (!blob || blob.size === 0) {
          if (!r.url) {
            setText(r.ph, 'no frame');
            show(r.ph, true);
          }
          return;
        }
        const old = r.url;
        r.url = URL.createObjectURL(blob);
        r.img.src = r.url;
        if (old) URL.revokeObjectURL(old);
      })
      .catch(() => {})
      .finally(() => {
        r.busy = false;
        if (r.want !== r.seq && r.node.isConnected && !ui.signedOut) thumb(r, r.want);
      });
  }

  function onThumbLoad(ev) {
    const img = ev.target;
    if (!img.classList || !img.classList.contains('thumb')) return;
    img.hidden = false;
    const ph = img.parentNode.querySelector('.placeholder');
    if (ph) ph.hidden = true;
  }

  function applyArenas(arenas) {
    const grid = document.getElementById('arenas');
    const seen = new Set();
    const nodes = [];
    for (const a of arenas) {
      let r = ui.arenas.get(a.id);
      if (!r) {
        r = makeTile(a);
        ui.arenas.set(a.id, r);
      }
      seen.add(a.id);
      updateTile(r, a);
      nodes.push(r.node);
    }
    for (const [id, r] of ui.arenas) {
      if (!seen.has(id)) {
        r.node.remove();
        if (r.url) URL.revokeObjectURL(r.url);
        ui.arenas.delete(id);
      }
    }
    order(grid, nodes);
    setText(document.getElementById('arena-count'), arenas.length ? '(' + arenas.length + ')' : '');
    show(document.getElementById('no-arenas'), arenas.length === 0);
  }

  // --- experiments ---------------------------------------------------------------------
  function makeExperiment(e) {
    const r = { keys: {} };
    const n = el('article', 'experiment');
    n.dataset.experiment = e.id;
    r.node = n;
    const head = el('header', 'exp-head');
    r.title = el('h3', 'exp-title');
    r.name = el('span', 'name');
    r.idText = el('span', 'exp-id', e.id);
    r.status = el('span', 'badge status');
    r.phase = el('span', 'phase-now');
    r.title.append(r.name, r.idText, r.status, r.phase);
    r.reason = el('p', 'reason');
    r.links = el('div', 'exp-links');
    r.report = el('a', 'report-link', 'report');
    r.partial = el('a', 'partial-report', 'partial report');
    r.cancel = el('button', 'cancel operator-only', 'cancel experiment');
    r.cancel.type = 'button';
    r.form = el('div', 'cancel-form');
    r.form.hidden = true;
    r.reasonIn = el('input', 'cancel-reason');
    r.reasonIn.type = 'text';
    r.reasonIn.maxLength = 1000;
    r.reasonIn.placeholder = 'reason';
    r.reasonIn.setAttribute('aria-label', 'reason for cancelling');
    r.confirm = el('button', 'cancel-confirm', 'cancel it');
    r.confirm.type = 'button';
    r.abort = el('button', 'cancel-abort', 'keep it running');
    r.abort.type = 'button';
    r.form.append(r.reasonIn, r.confirm, r.abort);
    r.actErr = el('p', 'action-error');
    r.actErr.hidden = true;
    r.links.append(r.report, r.partial, r.cancel, r.form);
    head.append(r.title, r.reason, r.links, r.actErr);
    r.phases = el('div', 'phases');
    r.failBox = el('details', 'failures-box');
    r.failSum = el('summary');
    r.fails = el('ul', 'failures');
    r.failBox.append(r.failSum, r.fails);
    r.table = el('table', 'lines');
    const thead = el('thead');
    const hr = el('tr');
    for (const h of ['line', 'condition', 'agent line', 'done / planned', 'mean closest (cm)', 'reached 0.5 cm']) hr.append(el('th', '', h));
    thead.append(hr);
    r.tbody = el('tbody');
    r.table.append(thead, r.tbody);
    r.progErr = el('p', 'progress-error');
    n.append(head, r.phases, r.failBox, r.table, r.progErr);
    r.cancel.addEventListener('click', () => {
      r.form.hidden = false;
      r.reasonIn.focus();
    });
    r.abort.addEventListener('click', () => {
      r.form.hidden = true;
    });
    r.confirm.addEventListener('click', async () => {
      r.confirm.disabled = true;
      const res = await post('/ui/api/experiments/' + encodeURIComponent(r.id) + '/cancel', { reason: r.reasonIn.value });
      r.confirm.disabled = false;
      if (res.ok) r.form.hidden = true;
      setText(r.actErr, res.ok ? '' : 'refused: ' + res.error);
      show(r.actErr, !res.ok);
      message(res.ok ? 'cancelled ' + r.id : 'cancel refused: ' + res.error, !res.ok);
    });
    return r;
  }

  // changed reports whether part's data differ from what r shows, remembering them.
  function changed(r, part, data) {
    const k = JSON.stringify(data);
    if (r.keys[part] === k) return false;
    r.keys[part] = k;
    return true;
  }

  function bar(kind, done, total, failed) {
    const b = el('div', 'bar ' + kind);
    b.dataset.done = String(done);
    b.dataset.total = String(total);
    b.dataset.failed = String(failed || 0);
    const f = el('div', 'fill');
    setWidth(f, pct(done, total));
    b.append(f);
    if (failed) {
      const x = el('div', 'fill failed');
      setWidth(x, pct(failed, total));
      b.append(x);
    }
    return b;
  }

  function updateExperiment(r, e) {
    r.id = e.id;
    const n = r.node;
    setAttr(n, 'data-status', e.status);
    setAttr(n, 'data-phase', e.phase);
    setText(r.name, e.name || e.id);
    setText(r.status, e.status);
    setAttr(r.status, 'class', 'badge status status-' + e.status);
    setText(r.phase, e.status === 'running' ? 'phase ' + e.phase : '');
    setText(r.reason, e.reason || '');
    show(r.reason, !!e.reason);
    if (e.report) setAttr(r.report, 'href', e.report);
    show(r.report, !!e.report);
    if (e.partial_report) setAttr(r.partial, 'href', e.partial_report);
    setText(r.partial, e.status === 'failed' ? 'report of what ran' : 'partial report');
    show(r.partial, !!e.partial_report);
    show(r.cancel, e.status === 'running');
    if (e.status !== 'running') r.form.hidden = true;
    if (changed(r, 'phases', e.phases)) {
      const rows = [];
      for (const p of e.phases || []) {
        const row = el('div', 'phase');
        row.dataset.phase = p.phase;
        row.append(el('span', 'phase-name', p.phase.replace('_', ' ')));
        const train = p.tasks > 0 && p.episodes === 0;
        const done = train ? p.tasks_done : p.episodes_done;
        const total = train ? p.tasks : p.episodes;
        const failed = train ? p.tasks_failed : p.episodes_failed;
        row.append(bar('items', done, total, failed));
        let txt = done + ' / ' + total + (train ? ' tasks' : ' episodes');
        if (failed) txt += ', ' + failed + ' failed';
        if (!train && p.episodes_leased) txt += ', ' + p.episodes_leased + ' running';
        row.append(el('span', 'count', txt));
        if (p.updates > 0) {
          row.append(bar('updates', p.updates_done, p.updates));
          row.append(el('span', 'count', p.updates_done + ' / ' + p.updates + ' updates'));
        }
        rows.push(row);
      }
      r.phases.replaceChildren(...rows);
    }
    if (changed(r, 'failures', e.failures)) {
      const fs = e.failures || [];
      setText(r.failSum, fs.length ? 'failed attempts (' + fs.length + ')' : 'no failed attempt');
      const items = [];
      for (const f of fs) {
        const li = el('li', f.final ? 'final' : '');
        li.dataset.item = f.item;
        const a = el('a', 'item-link', f.item);
        a.href = '/ui/episodes/' + encodeURIComponent(f.item);
        li.append(a, document.createTextNode(' ' + [f.kind, f.line].filter(Boolean).join(' line ') + ': ' + f.reason + (f.final ? ' (final)' : '')));
        items.push(li);
      }
      r.fails.replaceChildren(...items);
      r.failBox.hidden = fs.length === 0;
    }
    if (changed(r, 'lines', e.lines)) {
      const rows = [];
      for (const l of e.lines || []) {
        const tr = el('tr');
        tr.dataset.line = l.line;
        tr.dataset.kind = l.kind;
        tr.append(
          el('td', '', l.line),
          el('td', '', l.kind),
          el('td', '', l.agent_line || ''),
          el('td', 'done', l.episodes + ' / ' + l.planned),
          el('td', 'closest', l.episodes ? num(l.mean_closest_cm, 3) : '–'),
          el('td', 'reached', String(l.reached)),
        );
        rows.push(tr);
      }
      r.tbody.replaceChildren(...rows);
      r.table.hidden = rows.length === 0;
    }
    setText(r.progErr, e.progress_error ? 'progress could not be read: ' + e.progress_error : '');
    show(r.progErr, !!e.progress_error);
  }

  function applyExperiments(exps) {
    const box = document.getElementById('experiments');
    const seen = new Set();
    const nodes = [];
    for (const e of exps) {
      let r = ui.experiments.get(e.id);
      if (!r) {
        r = makeExperiment(e);
        ui.experiments.set(e.id, r);
      }
      seen.add(e.id);
      updateExperiment(r, e);
      nodes.push(r.node);
    }
    for (const [id, r] of ui.experiments) {
      if (!seen.has(id)) {
        r.node.remove();
        ui.experiments.delete(id);
      }
    }
    order(box, nodes);
    show(document.getElementById('no-experiments'), exps.length === 0);
  }

  // --- learners and their curves -------------------------------------------------------
  const SERIES = [
    ['critic_loss', 'critic loss'],
    ['entropy', 'entropy'],
    ['alpha', 'temperature (alpha)'],
  ];
  const W = 260;
  const H = 110;
  const PAD = { l: 4, r: 4, t: 16, b: 16 };

  // chart draws one series of a curve against the updates as an SVG line chart.
  function chart(series, title, curve) {
    const xs = curve.update || [];
    const ys = curve[series] || [];
    const s = svg('svg', { class: 'chart', viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img' });
    s.setAttribute('data-series', series);
    s.setAttribute('aria-label', title);
    let lo = Infinity;
    let hi = -Infinity;
    let n = 0;
    for (const y of ys) {
      if (typeof y === 'number' && isFinite(y)) {
        lo = Math.min(lo, y);
        hi = Math.max(hi, y);
        n++;
      }
    }
    s.setAttribute('data-points', String(n));
    const label = (x, y, t, anchor) => {
      const e = svg('text', { x: x, y: y, 'text-anchor': anchor || 'start' });
      e.textContent = t;
      return e;
    };
    s.append(label(PAD.l, 11, title));
    s.append(svg('rect', { class: 'frame', x: PAD.l, y: PAD.t, width: W - PAD.l - PAD.r, height: H - PAD.t - PAD.b }));
    if (n === 0) {
      s.append(label(W / 2, H / 2 + 4, 'no points yet', 'middle'));
      return s;
    }
    if (hi === lo) {
      hi += Math.abs(hi) * 0.05 + 1e-9;
      lo -= Math.abs(lo) * 0.05 + 1e-9;
    }
    const x0 = xs[0];
    const x1 = xs[xs.length - 1] === x0 ? x0 + 1 : xs[xs.length - 1];
    const pw = W - PAD.l - PAD.r;
    const ph = H - PAD.t - PAD.b;
    const segs = [];
    let cur = [];
    for (let i = 0; i < xs.length; i++) {
      const y = ys[i];
      if (typeof y !== 'number' || !isFinite(y)) {
        if (cur.length) segs.push(cur);
        cur = [];
        continue;
      }
      const px = PAD.l + ((xs[i] - x0) / (x1 - x0)) * pw;
      const py = PAD.t + (1 - (y - lo) / (hi - lo)) * ph;
      cur.push(px.toFixed(1) + ',' + py.toFixed(1));
    }
    if (cur.length) segs.push(cur);
    for (const seg of segs) {
      if (seg.length === 1) seg.push(seg[0]);
      s.append(svg('polyline', { class: 'series', points: seg.join(' ') }));
    }
    const fmt = (v) => (Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : v.toPrecision(3));
    s.append(label(W - PAD.r, 11, 'max ' + fmt(hi), 'end'));
    s.append(label(W - PAD.r, H - 4, 'updates ' + x0 + '–' + xs[xs.length - 1], 'end'));
    s.append(label(PAD.l, H - 4, 'min ' + fmt(lo)));
    return s;
  }

  function makeTask(t) {
    const r = { keys: {} };
    const n = el('article', 'task');
    n.dataset.task = t.id;
    r.node = n;
    const head = el('header', 'task-head');
    r.title = el('h3', '', '');
    r.state = el('span', 'badge state');
    r.holder = el('span', 'holder');
    head.append(r.title, r.state, r.holder);
    r.upd = el('div', 'task-updates');
    r.versions = el('p', 'versions');
    r.charts = el('div', 'charts');
    n.append(head, r.upd, r.versions, r.charts);
    return r;
  }

  function updateTask(r, t) {
    const n = r.node;
    setAttr(n, 'data-experiment', t.experiment);
    setAttr(n, 'data-line', t.line || '');
    setAttr(n, 'data-state', t.state || '');
    setText(r.title, 'line ' + (t.line || '?') + ' · ' + t.id);
    setText(r.state, t.state || 'curve only');
    setAttr(r.state, 'class', 'badge state state-' + (t.state || 'unknown'));
    setText(r.holder, t.holder ? (t.state === 'done' ? 'trained by ' : 'held by ') + t.holder : '');
    if (changed(r, 'updates', t.updates || null)) {
      r.upd.replaceChildren();
      if (t.updates && t.updates.total > 0) {
        r.upd.append(bar('updates', t.updates.done, t.updates.total), el('span', 'count', t.updates.done + ' / ' + t.updates.total + ' updates'));
      }
    }
    const vs = t.versions || [];
    setAttr(r.versions, 'data-versions', vs.join(' '));
    setAttr(r.versions, 'data-final', t.final_version || '');
    let vt = vs.length ? 'parameter versions ' + (vs.length > 8 ? vs.slice(0, 3).join(', ') + ', …, ' + vs.slice(-3).join(', ') : vs.join(', ')) + ' (' + vs.length + ')' : 'no parameter version yet';
    if (t.final_version) vt += ' · final ' + t.final_version;
    setText(r.versions, vt);
    const c = t.curve || {};
    const u = c.update || [];
    if (changed(r, 'curve', [t.points, u.length, u.length ? u[u.length - 1] : -1])) {
      r.charts.replaceChildren(...SERIES.map(([k, title]) => chart(k, title, c)));
    }
  }

  function applyLearners(learners, tasks, now) {
    const list = document.getElementById('learners');
    const key = JSON.stringify(learners.map((l) => [l.id, l.lost]));
    if (list.dataset.key !== key) {
      list.dataset.key = key;
      ui.learners.clear();
      list.replaceChildren();
      for (const l of learners) {
        const li = el('li', 'learner');
        li.dataset.learner = l.id;
        li.dataset.lost = String(!!l.lost);
        const seen = el('span', 'seen');
        li.append(el('span', 'learner-id', l.id), seen);
        if (l.lost) li.append(el('span', 'flag', 'lost heartbeat'));
        ui.learners.set(l.id, seen);
        list.append(li);
      }
    }
    for (const l of learners) {
      const s = ui.learners.get(l.id);
      if (s) setText(s, 'seen ' + ago(l.last_seen, now));
    }
    const box = document.getElementById('tasks');
    const seen = new Set();
    const nodes = [];
    for (const t of tasks) {
      const id = t.experiment + '\u0000' + t.id;
      let r = ui.tasks.get(id);
      if (!r) {
        r = makeTask(t);
        ui.tasks.set(id, r);
      }
      seen.add(id);
      updateTask(r, t);
      nodes.push(r.node);
    }
    for (const [id, r] of ui.tasks) {
      if (!seen.has(id)) {
        r.node.remove();
        ui.tasks.delete(id);
      }
    }
    order(box, nodes);
    show(document.getElementById('no-tasks'), tasks.length === 0);
  }

  // --- snapshots -----------------------------------------------------------------------
  function update(snap) {
    const t0 = performance.now();
    const now = Date.parse(snap.at) || Date.now();
    applyCluster(snap);
    applyArenas(snap.arenas || []);
    applyExperiments(snap.experiments || []);
    applyLearners(snap.learners || [], snap.tasks || [], now);
    const dt = performance.now() - t0;
    const st = ui.stats;
    st.snapshots++;
    st.lastMS = dt;
    st.maxMS = Math.max(st.maxMS, dt);
    st.totalMS += dt;
    document.body.dataset.seq = String(snap.seq);
    document.body.dataset.applyMs = dt.toFixed(3);
    return dt;
  }

  function setConnection(state, text) {
    const c = document.getElementById('connection');
    setAttr(c, 'data-state', state);
    setText(c, text);
  }

  function connect() {
    const es = new EventSource('/ui/events');
    ui.source = es;
    es.addEventListener('snapshot', (ev) => {
      let snap;
      try {
        snap = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      setConnection('live', 'live');
      update(snap);
    });
    es.addEventListener('open', () => setConnection('live', 'live'));
    es.addEventListener('error', () => {
      if (es.readyState === EventSource.CLOSED) {
        // Refused (the session ended, or too many streams): ask again in a while.
        setConnection('reconnecting', 'reconnecting…');
        es.close();
        if (!ui.stopped) setTimeout(start, 3000);
      } else {
        setConnection('reconnecting', 'reconnecting…');
      }
    });
  }

  async function start() {
    let r;
    try {
      r = await fetch('/ui/api/session', { cache: 'no-store' });
    } catch (e) {
      setConnection('reconnecting', 'dashboard unreachable, retrying…');
      if (!ui.stopped) setTimeout(start, 3000);
      return;
    }
    if (r.status === 401) {
      location.href = '/ui/login';
      return;
    }
    if (!r.ok) {
      if (!ui.stopped) setTimeout(start, 3000);
      return;
    }
    const s = await r.json();
    ui.csrf = s.csrf;
    ui.operator = !!s.operator;
    document.body.dataset.role = s.role;
    document.body.dataset.operator = String(ui.operator);
    setText(document.getElementById('role'), 'signed in as ' + s.role);
    connect();
  }

  // signedOut ends the page's use of its session: the event stream closes, the thumbnail
  // fetches in flight are aborted and none starts after, and no reconnection is tried.
  function signedOut() {
    if (ui.signedOut) return;
    ui.signedOut = true;
    stop();
    ui.fetches.abort();
  }

  // logout stops everything that uses the session before ending it, so that nothing the page
  // sends is refused after the session ends (each refusal would be a console error).
  async function logout() {
    signedOut();
    try {
      await fetch('/ui/logout', { method: 'POST', headers: { 'X-CSRF-Token': ui.csrf }, cache: 'no-store' });
    } catch (e) {
      // The login form says whether the dashboard is reachable.
    }
    location.href = '/ui/login';
  }

  // stop closes the event stream: a test or a benchmark then drives the page with update.
  function stop() {
    if (ui.source) ui.source.close();
    ui.source = null;
    ui.stopped = true;
  }

  window.optoloop = { update: update, stop: stop, stats: ui.stats };
  document.addEventListener('load', onThumbLoad, true);
  document.addEventListener('DOMContentLoaded', () => {
    document.getElementById('logout').addEventListener('click', logout);
    start();
  });
})();
