#!/usr/bin/env python3
"""analyze_gen.py - write a store of N generated events (about N/5 tokens) in
the collector's schema, directly with sqlite3 (much faster than HTTP), for
tests/bench/analyze_bench.sh. Bodies are in the canonical compact form the
collector stores. Usage: analyze_gen.py DB EVENTS POLICY_OUT"""
import hashlib, json, random, sqlite3, sys, time

db, n_events, policy_out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rnd = random.Random(42)
T0 = 1795330800000 - 8 * 86400000  # a week before 2026-11-22T07:00Z
SPAN = 7 * 86400000
scopes = ["svc%d:%s" % (i, a) for i in range(10) for a in ("read", "write")]
clients = ["client-%02d" % i for i in range(50)]
with open(policy_out, "w") as f:
    f.write("scopes:\n")
    for s in scopes:
        svc, acc = s.split(":")
        f.write("  - {name: %s, service: %s, access: %s, max_ttl: 1h}\n" % (s, svc, acc))
    f.write("clients:\n")
    for i, c in enumerate(clients):
        allowed = [s for s in scopes if int(s[3]) % 5 == i % 5] + [scopes[0]]
        f.write("  %s: {allowed_scopes: [%s]}\n" % (c, ", ".join(sorted(set(allowed)))))
    f.write("defaults: {max_ttl: 1h, revocation_grace: 5s, incident_grace: 5m, idle_after: 30m, retention: 30d}\n")

def ts(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)

con = sqlite3.connect(db)
con.executescript("""
PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, source TEXT NOT NULL, id TEXT NOT NULL,
 type TEXT NOT NULL, time_ms INTEGER NOT NULL, token_id TEXT, incident_id TEXT,
 received_ms INTEGER NOT NULL, body TEXT NOT NULL, UNIQUE (source, id));
""")
rows = []
n_tokens = n_events // 5
for t in range(n_tokens):
    fp = "sha256:" + hashlib.sha256(b"tok-%d" % t).hexdigest()
    client = clients[t % len(clients)]
    c = t % len(clients)
    base = [s for s in scopes if int(s[3]) % 5 == c % 5]
    granted = sorted(set(rnd.sample(base, 2)))
    if t % 997 == 0:
        granted = sorted(set(granted + ["svc9:write"]))   # some drift
    iss = T0 + t * SPAN // n_tokens
    exp = iss + 15 * 60000
    d = {"token_id": fp, "client_id": client, "subject": "user-%d" % (t % 1000), "scopes": granted,
         "token_type": "access", "issued_at": ts(iss), "expires_at": ts(exp)}
    rows.append((iss, "//as", "i%d" % t, "token.issued", fp, d))
    for u in range(3):
        when = iss + (u + 1) * 60000 + rnd.randrange(0, 30000)
        if t % 1009 == 0 and u == 2:
            when = exp + 120000                            # used after expiry
        d = {"token_id": fp, "scopes": [granted[u % len(granted)]], "resource": "rs", "method": "GET",
             "path": "/x/%d" % u, "status": 200}
        rows.append((when, "//rs", "u%d-%d" % (t, u), "token.used", fp, d))
    rev = iss + 10 * 60000
    rows.append((rev, "//as", "r%d" % t, "token.revoked", fp, {"token_id": fp, "reason": "done"}))
    if len(rows) >= 200000 or t == n_tokens - 1:
        # arrival order: event time plus up to 20 s of jitter (out of order within the lateness)
        rows.sort(key=lambda r: r[0] + rnd.randrange(0, 20000))
        batch = []
        for (when, src, eid, typ, fp_, data) in rows:
            body = json.dumps({"specversion": "1.0", "id": eid, "source": src, "type": typ, "time": ts(when),
                               "datacontenttype": "application/json", "data": data}, separators=(",", ":"))
            batch.append((src, eid, typ, when, fp_, None, when, body))
        con.executemany("INSERT INTO events(source,id,type,time_ms,token_id,incident_id,received_ms,body)"
                        " VALUES (?,?,?,?,?,?,?,?)", batch)
        con.commit()
        rows = []
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
print("events", con.execute("SELECT count(*) FROM events").fetchone()[0], "tokens", n_tokens)
