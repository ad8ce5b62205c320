// FACTSTR console. A client of the node's HTTP/JSON API (/v1/...) and of
// nothing else; plain JavaScript, no build step, no external resources.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = 'factstr.console.token';
  const STATUS_EVERY_MS = 1500;
  const DURABLE_EVERY_MS = 3000;
  const REQUEST_TIMEOUT_MS = 8000;
  const LAG_WARN = 1000; // applied entries behind the leader worth a warning
  const TAIL_MAX_ROWS = 500;

  // ---- JSON without a float64 round trip ---------------------------------
  // Payloads, predicates and sequence numbers are shown as the server sent
  // them: JSON.parse would turn 12345678901234567890 into
  // 12345678901234567000 and reorder integer-like keys. parseJSON builds
  // ordinary values for the page's logic and keeps, on every object and
  // array, the source text of each member (rawOf) for display.
  const RAW = Symbol('raw');
  const SRC = Symbol('src');

  function parseJSON(text) {
    let i = 0;
    const n = text.length;
    const fail = (what) => { throw new SyntaxError(`invalid JSON: ${what} at offset ${i}`); };
    const ws = () => {
      while (i < n) {
        const c = text.charCodeAt(i);
        if (c === 32 || c === 9 || c === 10 || c === 13) i++; else break;
      }
    };
    const numRe = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
    function str() {
      const start = i++;
      while (i < n) {
        const c = text[i];
        if (c === '\\') i += 2;
        else if (c === '"') { i++; return JSON.parse(text.slice(start, i)); }
        else i++;
      }
      return fail('unterminated string');
    }
    function value() {
      ws();
      if (i >= n) fail('unexpected end');
      const c = text[i];
      if (c === '{' || c === '[') {
        const isObj = c === '{';
        const close = isObj ? '}' : ']';
        const out = isObj ? Object.create(null) : [];
        const raws = isObj ? Object.create(null) : [];
        Object.defineProperty(out, RAW, { value: raws });
        i++; ws();
        if (text[i] === close) { i++; return out; }
        for (;;) {
          ws();
          let key = out.length;
          if (isObj) {
            if (text[i] !== '"') fail('expected a member name');
            key = str(); ws();
            if (text[i] !== ':') fail("expected ':'");
            i++; ws();
          }
          const start = i;
          out[key] = value();
          raws[key] = text.slice(start, i);
          ws();
          if (text[i] === ',') { i++; continue; }
          if (text[i] === close) { i++; return out; }
          fail(`expected ',' or '${close}'`);
        }
      }
      if (c === '"') return str();
      for (const [word, v] of [['true', true], ['false', false], ['null', null]]) {
        if (text.startsWith(word, i)) { i += word.length; return v; }
      }
      numRe.lastIndex = i;
      const m = numRe.exec(text);
      if (!m) fail(`unexpected '${c}'`);
      i += m[0].length;
      return Number(m[0]);
    }
    const v = value();
    ws();
    if (i !== n) fail('trailing data');
    return v;
  }

  const rawOf = (parent, key) => (parent && parent[RAW] ? parent[RAW][key] : undefined);
  const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

  // numText shows a uint64 field exactly: proto JSON sends 64-bit integers as
  // strings and leaves zero values out.
  function numText(obj, key) {
    const v = obj ? obj[key] : undefined;
    if (v === undefined || v === null) return '0';
    if (typeof v === 'string') return v;
    const r = rawOf(obj, key);
    return r !== undefined ? r : String(v);
  }
  const big = (s) => { try { return BigInt(s); } catch { return 0n; } };
  const maxPos = (a, b) => (a == null ? b : b == null ? a : big(a) >= big(b) ? a : b);

  // pretty re-indents JSON source text without parsing its numbers.
  function pretty(raw) {
    if (raw === undefined) return '';
    let out = '';
    let depth = 0;
    const nl = () => '\n' + '  '.repeat(depth);
    for (let i = 0; i < raw.length; i++) {
      const c = raw[i];
      switch (c) {
        case '"': {
          let j = i + 1;
          while (j < raw.length && raw[j] !== '"') j += raw[j] === '\\' ? 2 : 1;
          out += raw.slice(i, j + 1);
          i = j;
          break;
        }
        case ' ': case '\t': case '\n': case '\r': break;
        case '{': case '[': {
          let j = i + 1;
          while (j < raw.length && ' \t\n\r'.includes(raw[j])) j++;
          if (raw[j] === (c === '{' ? '}' : ']')) { out += c + raw[j]; i = j; } else { depth++; out += c + nl(); }
          break;
        }
        case '}': case ']': depth--; out += nl() + c; break;
        case ',': out += ',' + nl(); break;
        case ':': out += ': '; break;
        default: out += c;
      }
    }
    return out;
  }

  // ---- API access ---------------------------------------------------------
  class APIError extends Error {
    constructor(status, code, message, body) {
      super(message);
      this.status = status;
      this.code = code;
      this.body = body;
    }
    describe() { return this.status ? `HTTP ${this.status} ${this.code}: ${this.message}` : this.message; }
  }
  class InputError extends Error {}

  const token = () => sessionStorage.getItem(TOKEN_KEY) || '';
  function headers(extra) {
    const h = Object.assign({ Accept: 'application/json' }, extra || {});
    const t = token();
    if (t) h.Authorization = 'Bearer ' + t;
    return h;
  }

  // Auth failures are kept per route: a reader token may query but not read
  // /v1/members, and one route's success must not hide another's refusal.
  const authFailures = new Map();
  function renderAuth() {
    const el = $('auth-message');
    el.textContent = [...authFailures.values()].join('\n');
    el.hidden = authFailures.size === 0;
  }
  function authFailed(route, status, detail) {
    const msg = status === 401
      ? `401 Unauthorized (${route}): this node needs a valid token. Enter it in the Token field above. Server said: ${detail}`
      : `403 Forbidden (${route}): the token is valid but its role may not do this (reader: status, query, streams; writer: also append; admin: also members and admin routes). Server said: ${detail}`;
    authFailures.set(route, msg);
    renderAuth();
  }
  function authOK(route) {
    if (authFailures.delete(route)) renderAuth();
  }

  function errorFrom(status, text, statusText) {
    let body = null;
    try { body = parseJSON(text); } catch { /* not JSON: show the text */ }
    const err = (isObject(body) && isObject(body.error)) ? body.error : {};
    return new APIError(status, err.code || String(status), err.message || (text || '').trim() || statusText, body);
  }

  async function api(method, path, bodyText) {
    const route = `${method} ${path.split('?')[0]}`;
    const init = { method, headers: headers(bodyText === undefined ? {} : { 'Content-Type': 'application/json' }), cache: 'no-store' };
    if (bodyText !== undefined) init.body = bodyText;
    if (AbortSignal.timeout) init.signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    let res;
    let text;
    try {
      res = await fetch(path, init);
      text = await res.text();
    } catch (e) {
      throw new APIError(0, 'UNREACHABLE', `the node serving this page does not answer (${e.name === 'TimeoutError' ? 'no answer within ' + REQUEST_TIMEOUT_MS / 1000 + ' s' : e.message})`);
    }
    if (!res.ok) {
      const e = errorFrom(res.status, text, res.statusText);
      if (res.status === 401 || res.status === 403) authFailed(route, res.status, e.message);
      throw e;
    }
    authOK(route);
    if (!text) return null;
    const body = parseJSON(text);
    if (body !== null && typeof body === 'object') Object.defineProperty(body, SRC, { value: text });
    return body;
  }

  function show(id, text) {
    const el = $(id);
    el.textContent = text;
    el.hidden = !text;
  }
  const describe = (e) => (e instanceof APIError ? e.describe() : e.message);

  // ---- input to request JSON ----------------------------------------------
  // Request bodies are assembled from the text the user typed, so a
  // predicate or payload reaches the server byte for byte.
  function parseUint(text, what) {
    const s = text.trim();
    if (s === '') return undefined;
    if (!/^\d+$/.test(s)) throw new InputError(`${what}: a whole number ≥ 0, not "${s}"`);
    return BigInt(s).toString();
  }
  function filterJSON(typesText, whereText, what) {
    const parts = [];
    const types = typesText.split(',').map((s) => s.trim()).filter(Boolean);
    if (types.length) parts.push('"event_types":' + JSON.stringify(types));
    const w = whereText.trim();
    if (w) {
      let v;
      try { v = parseJSON(w); } catch (e) { throw new InputError(`${what} where: ${e.message}`); }
      const hint = 'a predicate is a JSON object such as {"account":"a-1"}; a list of objects matches when any of them does';
      if (isObject(v)) parts.push('"payload_predicates":[' + w + ']');
      else if (Array.isArray(v) && v.length && v.every(isObject)) parts.push('"payload_predicates":' + w);
      else throw new InputError(`${what} where: ${hint}`);
    }
    return '{' + parts.join(',') + '}';
  }
  function queryJSON(typesText, whereText, after, what) {
    let q = '{"filters":[' + filterJSON(typesText, whereText, what) + ']';
    if (after !== undefined && after !== '0') q += ',"min_sequence_number":' + after;
    return q + '}';
  }

  function eventRow(ev) {
    const tr = document.createElement('tr');
    const seq = numText(ev, 'sequence_number');
    tr.className = 'event';
    tr.dataset.seq = seq;
    tr.dataset.type = ev.type || '';
    const pre = document.createElement('pre');
    pre.textContent = pretty(rawOf(ev, 'payload'));
    for (const v of [seq, ev.occurred_at || '', ev.type || '']) {
      const td = document.createElement('td');
      td.textContent = v;
      tr.appendChild(td);
    }
    const td = document.createElement('td');
    td.appendChild(pre);
    tr.appendChild(td);
    return tr;
  }

  // ---- cluster overview ---------------------------------------------------
  let lastStatusAt = null;

  function cell(tr, text, cls) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }

  function renderStatus(st, members) {
    const leader = st.leader_id || '';
    const self = st.node_id || '';
    $('ov-node-id').textContent = self || '–';
    $('ov-leader-id').textContent = leader || 'none';
    $('ov-term').textContent = numText(st, 'term');
    $('ov-commit-index').textContent = numText(st, 'commit_index');
    $('ov-applied-index').textContent = numText(st, 'applied_index');
    $('ov-head').textContent = numText(st, 'head_sequence_number');
    $('ov-cluster-id').textContent = st.cluster_id || '–';

    const warnings = Array.isArray(st.warnings) ? [...st.warnings] : [];
    const add = (w) => { if (!warnings.includes(w)) warnings.push(w); };
    if (!leader) add('no leader known to this node');
    else if (!members.some((m) => m.id === leader)) add(`the leader ${leader} is not in this node's view of the membership`);

    const tbody = $('ov-members').querySelector('tbody');
    tbody.textContent = '';
    let reachable = 0;
    for (const m of members) {
      const state = m.state || 'unknown';
      const down = state === 'unreachable' || state === 'unknown';
      if (!down) reachable++;
      const lag = numText(m, 'lag');
      if (down) add(`${m.id} is unreachable from ${self}: down, partitioned or not serving`);
      else if (!m.healthy) add(`${m.id} knows no leader`);
      if (!down && big(lag) >= BigInt(LAG_WARN)) add(`${m.id} is ${lag} entries behind the leader`);

      const tr = document.createElement('tr');
      tr.dataset.memberId = m.id;
      tr.setAttribute('data-testid', 'member-' + m.id);
      tr.dataset.state = state;
      if (m.id === leader) tr.classList.add('leader');
      if (down) tr.classList.add('unreachable');
      cell(tr, m.id + (m.id === self ? ' (this node)' : ''), 'm-id');
      cell(tr, m.id === leader ? 'leader' : '', 'm-role');
      cell(tr, m.suffrage || '', 'm-suffrage');
      cell(tr, state, 'm-state');
      cell(tr, down ? '–' : (m.healthy ? 'yes' : 'no'), 'm-healthy');
      cell(tr, down ? '–' : numText(m, 'term'), 'm-term');
      cell(tr, down ? '–' : numText(m, 'commit_index'), 'm-commit');
      cell(tr, down ? '–' : numText(m, 'applied_index'), 'm-applied');
      cell(tr, down ? '–' : lag, 'm-lag');
      cell(tr, m.grpc_addr || '', 'm-grpc');
      cell(tr, m.raft_addr || '', 'm-raft');
      cell(tr, m.gossip_state || '', 'm-gossip');
      tbody.appendChild(tr);
    }
    $('ov-member-count').textContent = `(${members.length} members, ${reachable} reachable)`;

    const ul = $('ov-warnings');
    ul.textContent = '';
    for (const w of warnings) {
      const li = document.createElement('li');
      li.textContent = w;
      ul.appendChild(li);
    }
    if (!warnings.length) {
      const li = document.createElement('li');
      li.className = 'muted';
      li.textContent = 'none';
      ul.appendChild(li);
    }
    const me = members.find((m) => m.id === self);
    $('node-badge').textContent = `node ${self}${me && me.state ? ' · ' + me.state : ''}${leader ? '' : ' · no leader'}`;
  }

  async function pollStatus() {
    try {
      const st = await api('GET', '/v1/status');
      let members = Array.isArray(st.members) ? st.members : [];
      if (!members.length) {
        // Status lists members for every reader; Members (admin) is a
        // fallback for a node that leaves them out.
        try {
          const r = await api('GET', '/v1/members');
          if (r && Array.isArray(r.members)) members = r.members;
        } catch { /* not allowed or not served: the status is shown as is */ }
      }
      renderStatus(st, members);
      lastStatusAt = new Date();
      show('ov-error', '');
      $('ov-members').classList.remove('stale');
      $('ov-updated').textContent = 'Updated ' + lastStatusAt.toLocaleTimeString();
    } catch (e) {
      show('ov-error', `GET /v1/status failed: ${describe(e)}`);
      $('ov-members').classList.add('stale');
      $('ov-updated').textContent = lastStatusAt ? `Last good update ${lastStatusAt.toLocaleTimeString()} (stale)` : 'No status yet';
      $('node-badge').textContent = e.status ? `status: HTTP ${e.status}` : 'node not answering';
    }
  }
  // A loop restarted (new token) while its request is in flight must not
  // go on as a second loop: only the latest generation reschedules.
  let statusTimer = null;
  let statusGen = 0;
  async function statusLoop() {
    clearTimeout(statusTimer);
    const gen = ++statusGen;
    await pollStatus();
    if (gen === statusGen) statusTimer = setTimeout(statusLoop, STATUS_EVERY_MS);
  }

  // ---- query ----------------------------------------------------------------
  let lastQuery = null;
  async function runQuery(nextPage) {
    show('q-error', '');
    let body;
    try {
      if (!nextPage) {
        lastQuery = {
          types: $('q-types').value,
          where: $('q-where').value,
          after: parseUint($('q-min').value, 'after sequence'),
          consistency: $('q-consistency').value,
        };
      }
      const after = nextPage ? lastQuery.nextAfter : lastQuery.after;
      body = '{"query":' + queryJSON(lastQuery.types, lastQuery.where, after, 'query') +
        ',"consistency":' + JSON.stringify(lastQuery.consistency) + '}';
    } catch (e) {
      show('q-error', describe(e));
      return;
    }
    $('q-run').disabled = true;
    try {
      const r = await api('POST', '/v1/query', body);
      const tbody = $('q-events').querySelector('tbody');
      if (!nextPage) tbody.textContent = '';
      const events = Array.isArray(r.events) ? r.events : [];
      for (const ev of events) tbody.appendChild(eventRow(ev));
      $('q-count').textContent = String(tbody.children.length);
      $('q-context-version').textContent = numText(r, 'current_context_version');
      $('q-last-returned').textContent = numText(r, 'last_returned_sequence_number');
      const more = r.complete === false;
      $('q-complete').textContent = more ? 'no: more pages' : (r.complete === true ? 'yes' : '–');
      lastQuery.nextAfter = numText(r, 'last_returned_sequence_number');
      $('q-more').hidden = !more;
    } catch (e) {
      show('q-error', `POST /v1/query failed: ${describe(e)}`);
    } finally {
      $('q-run').disabled = false;
    }
  }

  // ---- live tail ------------------------------------------------------------
  // EventSource cannot send an Authorization header, so the stream is read
  // with fetch() and parsed here. pos is where a reconnect resumes: the
  // highest batch id seen, or the head at subscription time.
  const tail = { ctrl: null, timer: null, query: null, after: undefined, pos: null, retries: 0, count: 0 };
  const setTailState = (s) => { $('t-state').textContent = s; };

  function stopTail(state) {
    if (tail.ctrl) tail.ctrl.abort();
    tail.ctrl = null;
    clearTimeout(tail.timer);
    $('t-start').disabled = false;
    $('t-stop').disabled = true;
    setTailState(state || 'stopped');
  }

  function startTail() {
    let q;
    let after;
    try {
      q = queryJSON($('t-types').value, $('t-where').value, undefined, 'tail');
      after = parseUint($('t-after').value, 'catch up after');
    } catch (e) {
      setTailState('not started: ' + describe(e));
      return;
    }
    stopTail('starting');
    Object.assign(tail, { query: q, after, pos: null, retries: 0 });
    $('t-start').disabled = true;
    $('t-stop').disabled = false;
    connectTail();
  }

  function retryTail(why) {
    const delay = Math.min(1000 * 2 ** tail.retries, 5000);
    tail.retries++;
    const from = tail.pos ?? tail.after;
    setTailState(`disconnected (${why}); reconnecting in ${delay / 1000} s${from != null ? ' after sequence ' + from : ''}`);
    tail.timer = setTimeout(connectTail, delay);
  }

  async function connectTail() {
    const ctrl = new AbortController();
    tail.ctrl = ctrl;
    const params = new URLSearchParams({ query: tail.query });
    const h = headers({ Accept: 'text/event-stream' });
    if (tail.pos != null) {
      params.set('catch_up', 'true');
      h['Last-Event-ID'] = tail.pos;
    } else if (tail.after !== undefined) {
      params.set('after', tail.after);
      params.set('catch_up', 'true');
    }
    setTailState(tail.retries ? 'reconnecting…' : 'connecting…');
    const route = 'GET /v1/stream';
    let res;
    try {
      res = await fetch('/v1/stream?' + params, { headers: h, signal: ctrl.signal, cache: 'no-store' });
    } catch (e) {
      if (!ctrl.signal.aborted) retryTail('the node does not answer: ' + e.message);
      return;
    }
    if (!res.ok) {
      const e = errorFrom(res.status, await res.text().catch(() => ''), res.statusText);
      if (res.status === 401 || res.status === 403) {
        authFailed(route, res.status, e.message);
        stopTail(`stopped: ${e.describe()}`);
      } else if (res.status === 400) {
        stopTail(`stopped: ${e.describe()}`);
      } else {
        retryTail(e.describe());
      }
      return;
    }
    authOK(route);
    try {
      await readSSE(res.body, onTailEvent);
      if (!ctrl.signal.aborted) retryTail('the server ended the stream');
    } catch (e) {
      if (!ctrl.signal.aborted) retryTail('stream broken: ' + e.message);
    }
  }

  async function readSSE(body, onEvent) {
    const reader = body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    let ev = { id: null, event: '', data: [] };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        let line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          if (ev.data.length) onEvent(ev.event || 'message', ev.data.join('\n'), ev.id);
          ev = { id: null, event: '', data: [] };
          continue;
        }
        if (line.startsWith(':')) continue; // keepalive comment
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? '' : line.slice(colon + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'data') ev.data.push(val);
        else if (field === 'event') ev.event = val;
        else if (field === 'id') ev.id = val;
      }
    }
  }

  function onTailEvent(type, data, id) {
    let d;
    try { d = parseJSON(data); } catch (e) { setTailState('bad event from the server: ' + e.message); return; }
    if (type === 'subscribed') {
      tail.retries = 0;
      const head = numText(d, 'head');
      tail.pos = maxPos(tail.pos, head);
      setTailState(`live (subscription ${d.subscription_id ?? ''}, head ${head})`);
    } else if (type === 'batch') {
      tail.retries = 0;
      const events = Array.isArray(d.events) ? d.events : [];
      const tbody = $('t-events').querySelector('tbody');
      for (const ev of events) tbody.insertBefore(eventRow(ev), tbody.firstChild);
      while (tbody.children.length > TAIL_MAX_ROWS) tbody.removeChild(tbody.lastChild);
      tail.count += events.length;
      $('t-count').textContent = String(tail.count);
      if (id) {
        tail.pos = maxPos(tail.pos, id);
        $('t-last-id').textContent = id;
      }
    } else if (type === 'error') {
      const err = isObject(d.error) ? d.error : {};
      setTailState(`server error: ${err.code || ''} ${err.message || data}`);
    }
  }

  // ---- append ---------------------------------------------------------------
  async function doAppend() {
    show('a-result', '');
    show('a-conflict', '');
    show('a-error', '');
    let path = '/v1/append';
    let body;
    try {
      const type = $('a-type').value.trim();
      if (!type) throw new InputError('event type: required');
      const payload = $('a-payload').value.trim() || 'null';
      try { parseJSON(payload); } catch (e) { throw new InputError('payload: ' + e.message); }
      body = '{"events":[{"type":' + JSON.stringify(type) + ',"payload":' + payload + '}]';
      const idem = $('a-idem').value.trim();
      if (idem) body += ',"idempotency_key":' + JSON.stringify(idem);
      if ($('a-if').checked) {
        path = '/v1/append-if';
        body += ',"context":' + queryJSON($('a-ctx-types').value, $('a-ctx-where').value, undefined, 'context') +
          ',"expected_context_version":' + (parseUint($('a-expected').value, 'expected context version') || '0');
      }
      body += '}';
    } catch (e) {
      show('a-error', describe(e));
      return;
    }
    $('a-submit').disabled = true;
    try {
      const r = await api('POST', path, body);
      const first = numText(r, 'first_sequence_number');
      const last = numText(r, 'last_sequence_number');
      let msg = `Committed ${numText(r, 'committed_count')} event(s): sequence ${first}${last !== first ? '–' + last : ''}`;
      if (r.duplicate) msg += ' (duplicate: this idempotency key was used before; nothing new was written)';
      show('a-result', msg);
    } catch (e) {
      const b = e.body;
      if (e.status === 409 && isObject(b) && ('actual_context_version' in b || 'expected_context_version' in b)) {
        show('a-conflict', `Conflict: the context changed. Expected context version ${numText(b, 'expected_context_version')}, ` +
          `actual context version ${numText(b, 'actual_context_version')}. Query the context again before retrying.`);
      } else {
        show('a-error', `POST ${path} failed: ${describe(e)}`);
      }
    } finally {
      $('a-submit').disabled = false;
    }
  }

  // ---- durable consumers ----------------------------------------------------
  function durableItems(r) {
    let list = Array.isArray(r) ? r : null;
    if (!list && isObject(r)) list = Object.values(r).find(Array.isArray) || [];
    return (list || []).map((it) => (isObject(it) ? it : { name: String(it) }));
  }
  function durableCell(item, key) {
    const v = item[key];
    if (v === undefined || v === null) return '';
    if (typeof v === 'object') return rawOf(item, key) || '';
    if (typeof v === 'number') return rawOf(item, key) || String(v);
    return String(v);
  }
  async function loadDurable() {
    const thead = $('d-list').querySelector('thead');
    const tbody = $('d-list').querySelector('tbody');
    let r;
    try {
      r = await api('GET', '/v1/durable');
    } catch (e) {
      thead.textContent = '';
      tbody.textContent = '';
      if (e.status === 404 || e.status === 501) {
        $('d-message').textContent = 'Durable consumers: not available on this node (its API has no /v1/durable).';
      } else {
        $('d-message').textContent = `GET /v1/durable failed: ${describe(e)}`;
      }
      return;
    }
    const items = durableItems(r);
    const keys = ['name'];
    for (const it of items) for (const k of Object.keys(it)) if (!keys.includes(k)) keys.push(k);
    thead.textContent = '';
    tbody.textContent = '';
    $('d-message').textContent = items.length ? `${items.length} durable consumer(s)` : 'No durable consumers.';
    if (!items.length) return;
    const hr = document.createElement('tr');
    for (const k of keys) {
      const th = document.createElement('th');
      th.textContent = k;
      hr.appendChild(th);
    }
    thead.appendChild(hr);
    for (const it of items) {
      const tr = document.createElement('tr');
      tr.setAttribute('data-testid', 'durable-' + (it.name || ''));
      for (const k of keys) {
        const td = document.createElement('td');
        if (k === 'name' && it.name) {
          const b = document.createElement('button');
          b.type = 'button';
          b.textContent = it.name;
          b.addEventListener('click', () => showDurable(it.name));
          td.appendChild(b);
        } else {
          td.textContent = durableCell(it, k);
        }
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    }
  }
  async function showDurable(name) {
    const pre = $('d-detail');
    pre.hidden = false;
    try {
      const r = await api('GET', '/v1/durable/' + encodeURIComponent(name));
      pre.textContent = r && r[SRC] ? pretty(r[SRC]) : String(r);
    } catch (e) {
      pre.textContent = `GET /v1/durable/${name} failed: ${describe(e)}`;
    }
  }
  let durableTimer = null;
  let durableGen = 0;
  async function durableLoop() {
    clearTimeout(durableTimer);
    const gen = ++durableGen;
    if (currentTab() !== 'durable') return;
    await loadDurable();
    if (gen === durableGen) durableTimer = setTimeout(durableLoop, DURABLE_EVERY_MS);
  }

  // ---- tabs, token, wiring ----------------------------------------------------
  const TABS = ['overview', 'query', 'tail', 'append', 'durable'];
  function currentTab() {
    const t = location.hash.slice(1);
    return TABS.includes(t) ? t : 'overview';
  }
  function showTab() {
    const t = currentTab();
    for (const s of document.querySelectorAll('section[data-view]')) s.hidden = s.dataset.view !== t;
    for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('active', a.dataset.tab === t);
    if (t === 'durable') durableLoop();
  }

  function onSubmit(id, fn) {
    $(id).addEventListener('submit', (ev) => { ev.preventDefault(); fn(); });
  }

  function init() {
    $('token').value = token();
    onSubmit('auth-form', () => {
      const t = $('token').value.trim();
      if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
      authFailures.clear();
      renderAuth();
      statusLoop();
      if (currentTab() === 'durable') durableLoop();
    });
    $('token-clear').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      $('token').value = '';
      authFailures.clear();
      renderAuth();
      statusLoop();
    });
    onSubmit('q-form', () => runQuery(false));
    $('q-more').addEventListener('click', () => runQuery(true));
    onSubmit('t-form', startTail);
    $('t-stop').addEventListener('click', () => stopTail('stopped'));
    $('t-clear').addEventListener('click', () => {
      $('t-events').querySelector('tbody').textContent = '';
      tail.count = 0;
      $('t-count').textContent = '0';
    });
    onSubmit('a-form', doAppend);
    $('d-refresh').addEventListener('click', loadDurable);
    window.addEventListener('hashchange', showTab);
    showTab();
    statusLoop();
    document.body.dataset.ready = 'true';
  }

  // Exposed for the page's tests only; the console itself does not use it.
  window.factstrConsole = { parseJSON, pretty, rawOf };
  init();
})();
