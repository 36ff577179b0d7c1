// forward.mjs - ship the lab's token events to a tokentrail collector as
// CloudEvents: the AS events file (token issued / revoked) and the Apache
// JSON access log (token used). Tails both files from the start, posts NDJSON
// batches, retries a failed batch, never sends a raw token (the lab logs only
// the `tid` fingerprint).
//
// Usage: node forward.mjs COLLECTOR_EVENTS_URL AS_EVENTS_FILE RS_ACCESS_LOG [TOKEN_FILE]
import fs from 'node:fs';

const [url, asFile, rsFile, tokenFile] = process.argv.slice(2);
if (!url || !asFile || !rsFile) {
  process.stderr.write('usage: node forward.mjs URL AS_EVENTS_FILE RS_ACCESS_LOG [TOKEN_FILE]\n');
  process.exit(2);
}
const token = tokenFile ? fs.readFileSync(tokenFile, 'utf8').trim() : '';
const MAX_BATCH = 500;
const POLL_MS = 100;

const iso = (v) => new Date(v).toISOString();
const tidOk = (t) => typeof t === 'string' && /^sha256:[0-9a-f]{64}$/.test(t);
const scopesOf = (s) => (typeof s === 'string' && s !== '-' ? s : '');

function fromAs(rec, n) {
  if (!tidOk(rec.tid)) return null;
  const base = { specversion: '1.0', source: '//tokentrail/lab/as', time: iso(rec.ts) };
  if (rec.ev === 'client_credentials.saved' || rec.ev === 'access_token.saved') {
    const issued = Date.parse(rec.ts);
    const data = {
      token_id: rec.tid,
      client_id: rec.client_id || 'unknown',
      scopes: scopesOf(rec.scope),
      issued_at: iso(issued),
      expires_at: rec.exp ? iso(Math.max(rec.exp * 1000, issued)) : iso(issued),
      grant_type: rec.gty || (rec.ev.startsWith('client_credentials') ? 'client_credentials' : undefined),
    };
    if (rec.sub) data.subject = rec.sub;
    if (rec.aud) data.audience = rec.aud;
    if (data.grant_type === undefined) delete data.grant_type;
    return { ...base, id: `as-${n}-${rec.tid.slice(7, 23)}-issued`, type: 'token.issued', data };
  }
  if (rec.ev === 'client_credentials.destroyed' || rec.ev === 'access_token.destroyed') {
    return {
      ...base,
      id: `as-${n}-${rec.tid.slice(7, 23)}-revoked`,
      type: 'token.revoked',
      data: { token_id: rec.tid, client_id: rec.client_id || undefined, reason: rec.ev },
    };
  }
  return null;
}

function fromRs(rec, n) {
  if (!tidOk(rec.tid) || rec.status !== 200) return null;
  const data = {
    token_id: rec.tid,
    resource: rec.rs,
    method: rec.method,
    path: rec.path,
    status: rec.status,
  };
  if (rec.client_id && rec.client_id !== '-') data.client_id = rec.client_id;
  if (rec.peer && rec.peer !== '-') data.ip = rec.peer;
  return {
    specversion: '1.0',
    id: `rs-${rec.rs}-${n}`,
    source: `//tokentrail/lab/rs/${rec.rs}`,
    type: 'token.used',
    time: iso(rec.ts_ms),
    data,
  };
}

function tailer(file, convert) {
  let offset = 0;
  let rest = '';
  let lineNo = 0;
  return () => {
    const out = [];
    let fd;
    try { fd = fs.openSync(file, 'r'); } catch { return out; }
    try {
      const size = fs.fstatSync(fd).size;
      if (size > offset) {
        const buf = Buffer.alloc(size - offset);
        fs.readSync(fd, buf, 0, buf.length, offset);
        offset = size;
        const lines = (rest + buf.toString('utf8')).split('\n');
        rest = lines.pop();
        for (const l of lines) {
          lineNo += 1;
          if (!l.trim()) continue;
          let rec;
          try { rec = JSON.parse(l); } catch { continue; }
          const ev = convert(rec, lineNo);
          if (ev) {
            for (const k of Object.keys(ev.data)) if (ev.data[k] === undefined) delete ev.data[k];
            out.push(ev);
          }
        }
      }
    } finally { fs.closeSync(fd); }
    return out;
  };
}

const tails = [tailer(asFile, fromAs), tailer(rsFile, fromRs)];
let queue = [];
let stopping = false;
let sent = 0;

async function flush() {
  while (queue.length > 0) {
    const batch = queue.slice(0, MAX_BATCH);
    const headers = { 'content-type': 'application/x-ndjson' };
    if (token) headers.authorization = `Bearer ${token}`;
    try {
      const r = await fetch(url, {
        method: 'POST', headers, body: batch.map((e) => JSON.stringify(e)).join('\n'),
        signal: AbortSignal.timeout(5000),
      });
      if (r.status >= 500) throw new Error(`HTTP ${r.status}`);
      if (r.status >= 400) {
        process.stderr.write(`forward: collector rejected a batch: HTTP ${r.status} ${await r.text()}\n`);
      }
      sent += batch.length;
      queue = queue.slice(batch.length);
    } catch (err) {
      process.stderr.write(`forward: ${err.message}; retrying\n`);
      await new Promise((res) => setTimeout(res, 500));
      if (stopping) return;
    }
  }
}

async function loop() {
  for (;;) {
    for (const t of tails) queue.push(...t());
    await flush();
    if (stopping) break;
    await new Promise((res) => setTimeout(res, POLL_MS));
  }
  process.stderr.write(`forward: stopped after ${sent} events\n`);
  process.exit(0);
}

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => { stopping = true; });
process.stderr.write(`forward: ${asFile} + ${rsFile} -> ${url}\n`);
loop();
