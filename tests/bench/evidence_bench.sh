#!/usr/bin/env bash
# evidence_bench.sh - throughput and memory of `tokentrail evidence export`
# and `verify` on a large store, side by side with `tar czf` over the same
# NDJSON in the same run.
#
# Usage: tests/bench/evidence_bench.sh
# Env:   EVIDENCE_BENCH_EVENTS (default 5000000, ~2 GB of NDJSON),
#        EVIDENCE_BENCH_DIR (scratch, default a new dir under /tmp; removed
#        at the end unless EVIDENCE_BENCH_KEEP=1), TT_BIN (bin/tokentrail).
set -eu
cd "$(dirname "$0")/../.."
BIN=${TT_BIN:-bin/tokentrail}
N=${EVIDENCE_BENCH_EVENTS:-5000000}
D=${EVIDENCE_BENCH_DIR:-$(mktemp -d /tmp/tt-evidence-bench.XXXXXX)}
mkdir -p "$D"
[ -x "$BIN" ] || { echo "build first: make" >&2; exit 2; }
if [ ! -x /usr/bin/time ]; then
    echo "installing GNU time (apt-get install time)" >&2
    apt-get install -y time >/dev/null
fi
command -v sqlite3 >/dev/null || { echo "needs the sqlite3 CLI (apt-get install sqlite3)" >&2; exit 2; }
cleanup() { [ "${EVIDENCE_BENCH_KEEP:-0}" = 1 ] || rm -rf "$D"; }
trap cleanup EXIT

DB=$D/tt.db
# The collector's own schema: let a collector create the database.
"$BIN" collect --listen 127.0.0.1:0 --db "$DB" --port-file "$D/port" >"$D/collect.log" 2>&1 &
cpid=$!
for _ in $(seq 100); do [ -s "$D/port" ] && break; sleep 0.05; done
kill -TERM "$cpid"; wait "$cpid" || true

echo "# generating $N events into $DB"
t0=$(date +%s.%N)
# Rows are written straight into the events table (the collector's columns),
# each body a ~400-byte normalised token.used event; one token per 50 uses.
sqlite3 "$DB" <<SQL
PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA cache_size=-262144;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $N),
r AS (SELECT i, 1795000000000 + i * 7 AS t,
             'sha256:' || lower(hex(zeroblob(0))) || printf('%064x', (i / 50) * 2654435761 % 1000000007) AS tok
      FROM n)
INSERT INTO events(source, id, type, time_ms, token_id, incident_id, received_ms, body)
SELECT '//rs/orders', 'use-' || i, 'token.used', t, tok, NULL, t + 5,
  printf('{"specversion":"1.0","id":"use-%d-%s","source":"//rs/orders","type":"token.used","time":"%s","datacontenttype":"application/json","data":{"token_id":"%s","client_id":"oncall-cli","subject":"engineer-%d","scopes":["db:orders:read","db:orders:write"],"resource":"orders-db.internal.example.com","method":"%s","path":"/orders/%d/items","status":%d,"ip":"10.%d.%d.%d"}}',
         i, lower(hex(randomblob(4))), strftime('%Y-%m-%dT%H:%M:%fZ', t / 1000.0, 'unixepoch'),
         tok, i % 97,
         CASE i % 5 WHEN 0 THEN 'PUT' ELSE 'GET' END, i % 100000, CASE i % 50 WHEN 0 THEN 403 ELSE 200 END,
         i % 256, (i / 256) % 256, i % 7)
FROM r;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
t1=$(date +%s.%N)
echo "# generated in $(echo "$t1 - $t0" | bc) s; db $(du -m "$DB" | cut -f1) MB"

"$BIN" evidence keygen -o "$D/k" >/dev/null
FROM=2026-01-01T00:00:00Z
TO=2027-01-01T00:00:00Z

# The same NDJSON, as a file, for tar czf.
"$BIN" events --db "$DB" --format json --since $FROM --until $TO >"$D/events.ndjson"
BYTES=$(stat -c %s "$D/events.ndjson")
MB=$(echo "scale=1; $BYTES / 1000000" | bc)
echo "# events.ndjson: $MB MB, $(wc -l <"$D/events.ndjson") lines, $(nproc) CPUs"

measure() { # NAME CMD... -> prints seconds and max RSS
    local tag=${1// /_}
    local log=$D/$tag.time
    sync
    /usr/bin/time -v "${@:2}" >"$D/$tag.out" 2>"$log"
    local el rss
    el=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$log")
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$log")
    printf '%-22s %8.2f s %9.1f MB/s   peak RSS %7.1f MiB\n' "$1" "$el" \
        "$(echo "scale=3; $BYTES / 1000000 / $el" | bc)" "$(echo "scale=1; $rss / 1024" | bc)"
}

echo
measure "tar czf" tar -czf "$D/plain.tar.gz" -C "$D" events.ndjson
measure "evidence export" "$BIN" evidence export --db "$DB" --from $FROM --to $TO \
    --key "$D/k.key" -o "$D/bundle.tar.gz" --no-progress
measure "evidence verify" "$BIN" evidence verify "$D/bundle.tar.gz" --pubkey "$D/k.pub" --no-progress
measure "tar xzOf (to null)" tar -xzOf "$D/plain.tar.gz"
echo
echo "tar czf output:   $(stat -c %s "$D/plain.tar.gz") bytes"
echo "bundle:           $(stat -c %s "$D/bundle.tar.gz") bytes"
grep -q ': OK: ' "$D/evidence_verify.out" || { echo "verify did not say OK:"; cat "$D/evidence_verify.out"; exit 1; }
echo "verify:           $(cat "$D/evidence_verify.out")"
