// Issue N client_credentials tokens against the lab AS as fast as CONCURRENCY
// allows, and print one JSON summary line (count, failures, wall time, latency
// percentiles). Tokens are discarded; nothing secret is printed.
//
// usage: node burst.mjs TOKEN_URL CLIENT_ID SECRET_FILE N [CONCURRENCY=8] [SCOPE=db:orders:read]
import fs from 'node:fs';
import process from 'node:process';

const [url, clientId, secretFile, nArg, concArg, scopeArg] = process.argv.slice(2);
const n = Number(nArg);
const concurrency = Number(concArg || 8);
if (!url || !clientId || !secretFile || !(n > 0) || !(concurrency > 0)) {
  process.stderr.write('usage: node burst.mjs TOKEN_URL CLIENT_ID SECRET_FILE N [CONCURRENCY] [SCOPE]\n');
  process.exit(2);
}
const secret = fs.readFileSync(secretFile, 'utf8').trim();
const headers = {
  authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`,
  'content-type': 'application/x-www-form-urlencoded',
};
const body = new URLSearchParams({ grant_type: 'client_credentials', scope: scopeArg || 'db:orders:read' }).toString();

let started = 0;
let failed = 0;
const lat = [];
const t0 = performance.now();
async function worker() {
  while (started < n) {
    started += 1;
    const t = performance.now();
    try {
      const r = await fetch(url, { method: 'POST', headers, body });
      await r.arrayBuffer();
      if (r.status !== 200) failed += 1;
    } catch {
      failed += 1;
    }
    lat.push(performance.now() - t);
  }
}
await Promise.all(Array.from({ length: concurrency }, worker));
const wall = performance.now() - t0;
lat.sort((a, b) => a - b);
const pct = (p) => Math.round(lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))] * 1000) / 1000;
process.stdout.write(`${JSON.stringify({
  n, failed, concurrency, wall_ms: Math.round(wall), per_s: Math.round((n * 1000) / wall),
  p50_ms: pct(50), p95_ms: pct(95), p99_ms: pct(99),
})}\n`);
process.exit(failed ? 1 : 0);
