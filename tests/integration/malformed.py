#!/usr/bin/env python3
"""malformed.py - send many malformed ingest requests, check every answer.

Used by t_malformed_10k.sh. Each request body is invalid in one of several
ways (random bytes, truncated JSON, deep nesting, huge strings, invalid UTF-8,
wrong types, out-of-range numbers, NUL bytes, bad gzip, bad media type); no
request contains a valid event. Every answer must be 400, 413 or 415 with a
JSON object body. Requests go over a few keep-alive connections (http.client),
one thread each. Prints a summary line and exits 1 if any answer was wrong.

Usage: malformed.py PORT [--count N] [--conns C] [--seed S] [--max-body BYTES]
"""
import argparse
import gzip
import http.client
import json
import random
import sys
import threading
import time

EVENT = {
    "specversion": "1.0", "id": "m1", "source": "as", "type": "token.issued",
    "time": "2026-11-22T07:00:00Z",
    "data": {"token": "malformed-raw-token", "client_id": "c", "subject": "s",
             "scopes": "a b", "issued_at": "2026-11-22T07:00:00Z",
             "expires_at": "2026-11-22T08:00:00Z"},
}
NDJSON = "application/x-ndjson"
JSON = "application/json"


def ev_with(path, value, drop=None):
    """EVENT with one field replaced (path like 'data.scopes') or dropped."""
    e = json.loads(json.dumps(EVENT))
    if drop:
        obj = e
        parts = drop.split(".")
        for p in parts[:-1]:
            obj = obj[p]
        obj.pop(parts[-1], None)
        return e
    obj = e
    parts = path.split(".")
    for p in parts[:-1]:
        obj = obj[p]
    obj[parts[-1]] = value
    return e


def dumps(e):
    return json.dumps(e, separators=(",", ":")).encode()


def gen_random_bytes(r, _):
    return NDJSON, {}, bytes(r.getrandbits(8) for _ in range(r.randint(0, 2048)))


def gen_truncated(r, _):
    b = dumps(EVENT)
    return r.choice([NDJSON, JSON]), {}, b[: r.randint(1, len(b) - 1)]


def gen_deep(r, _):
    depth = r.choice([5000, 5000, 20000, 100000])
    opener = r.choice(["[", '{"a":'])
    body = (opener * depth).encode()
    if r.random() < 0.5:
        body += b"]" * depth if opener == "[" else b"1" + b"}" * depth
    # Nesting inside an event's data too.
    if r.random() < 0.3:
        body = b'{"specversion":"1.0","id":"deep","data":' + b"[" * depth + b"]" * depth + b"}"
    return r.choice([NDJSON, JSON]), {}, body


def gen_huge_string(r, max_body):
    field = r.choice(["id", "source", "data.token", "data.subject", "data.scopes", "type", "time"])
    n = r.choice([300, 5000, 20000, 200000, max_body // 2, max_body + 1000])
    e = ev_with(field, "x" * n)
    if field == "data.token":
        e = ev_with("time", "not-a-time") if r.random() < 0.3 else e
    if field == "id" or n > 16384 or field in ("type", "time"):
        pass  # too long / unknown / bad: rejected on its own
    else:
        # a long but legal value: break the event elsewhere too
        e.pop("specversion")
    return r.choice([NDJSON, JSON]), {}, dumps(e)


def gen_bad_utf8(r, _):
    seqs = [b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf"]
    b = dumps(EVENT)
    pos = b.index(r.choice([b'"s"', b'"m1"', b'"as"', b'"c"'])) + 1
    return r.choice([NDJSON, JSON]), {}, b[:pos] + r.choice(seqs) + b[pos:]


def gen_wrong_types(r, _):
    cases = [("id", 5), ("source", None), ("type", ["token.issued"]), ("time", True),
             ("data", []), ("data", "x"), ("data.scopes", {"a": 1}), ("data.issued_at", [1]),
             ("data.client_id", 7), ("specversion", 1.0), ("data.token", 123),
             ("data.expires_at", None), ("data.token_type", 1)]
    f, v = r.choice(cases)
    body = dumps(ev_with(f, v))
    if r.random() < 0.2:
        body = r.choice([b"[]", b"[1,2,3]", b'"str"', b"null", b"true", b"1e5"])
    return r.choice([NDJSON, JSON]), {}, body


def gen_numbers(r, _):
    vals = ["1e400", "-1e400", "99999999999999999999999999", "-1", "-9223372036854775809",
            "9223372036854775808", "1e308", "253402300800000", "-0.5", "NaN", "Infinity"]
    f = r.choice(["time", "data.issued_at", "data.expires_at"])
    e = ev_with(f, "@@NUM@@")
    body = dumps(e).replace(b'"@@NUM@@"', r.choice(vals).encode())
    return r.choice([NDJSON, JSON]), {}, body


def gen_nul(r, _):
    b = dumps(EVENT)
    choice = r.random()
    if choice < 0.4:
        pos = r.randint(0, len(b))
        b = b[:pos] + b"\x00" + b[pos:]
    elif choice < 0.8:
        b = dumps(ev_with(r.choice(["id", "source", "data.subject", "type"]), "a\u0000b"))
    else:
        b = b"\x00" * r.randint(1, 100)
    return r.choice([NDJSON, JSON]), {}, b


def gen_bad_gzip(r, _):
    kind = r.random()
    if kind < 0.4:
        body = bytes(r.getrandbits(8) for _ in range(r.randint(0, 512)))
    elif kind < 0.7:
        g = gzip.compress(dumps(EVENT))
        body = g[: r.randint(0, len(g) - 1)]
    elif kind < 0.85:
        g = bytearray(gzip.compress(dumps(EVENT)))
        i = r.randint(10, len(g) - 9)
        g[i] ^= 0xFF
        body = bytes(g)
    else:
        # Valid gzip of an invalid body, plus trailing garbage sometimes.
        body = gzip.compress(b"{not json" * 10) + (b"junk" if r.random() < 0.5 else b"")
    return NDJSON, {"Content-Encoding": r.choice(["gzip", "deflate", "x-gzip"])}, body


def gen_bad_media(r, _):
    ct = r.choice(["text/plain", "application/xml", "", " ", "application/json-seq",
                   "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"])
    hdr = {"Content-Encoding": "br"} if r.random() < 0.3 else {}
    if hdr:
        ct = JSON
    return ct, hdr, dumps(EVENT)


def gen_semantic(r, _):
    cases = [ev_with(None, None, drop="data.client_id"), ev_with(None, None, drop="data"),
             ev_with("type", "token.minted"), ev_with("data.access_token", "leak"),
             ev_with("data.token_id", "eyJhbGciOi.eyJzdWIi.c2ln"),
             ev_with("data.expires_at", "2026-11-22T06:00:00Z"),
             ev_with("data.scopes", "bad\"scope"), ev_with("time", "2026-02-30T00:00:00Z"),
             ev_with("specversion", "2.0"), ev_with("data.token_id", "sha256:xyz")]
    return r.choice([NDJSON, JSON]), {}, dumps(r.choice(cases))


GENERATORS = [gen_random_bytes, gen_truncated, gen_deep, gen_huge_string, gen_bad_utf8,
              gen_wrong_types, gen_numbers, gen_nul, gen_bad_gzip, gen_bad_media, gen_semantic]
WEIGHTS = [12, 12, 3, 3, 10, 12, 10, 10, 10, 6, 12]


class Worker(threading.Thread):
    def __init__(self, port, n, seed, max_body):
        super().__init__(daemon=True)
        self.port, self.n, self.r, self.max_body = port, n, random.Random(seed), max_body
        self.statuses = {}
        self.kinds = {}
        self.bad = []
        self.reconnects = 0
        self.reconnect_kinds = {}
        self.lost_over_limit = 0

    def connect(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def run(self):
        conn = self.connect()
        for _ in range(self.n):
            gen = self.r.choices(GENERATORS, WEIGHTS)[0]
            ct, extra, body = gen(self.r, self.max_body)
            headers = dict(extra)
            headers["Content-Type"] = ct  # may be "": an empty header, not a missing one
            headers["Content-Length"] = str(len(body))
            resp = None
            for attempt in range(2):
                try:
                    conn.request("POST", "/v1/events", body=body, headers=headers)
                    r = conn.getresponse()
                    resp = (r.status, r.read(), r.getheader("Connection", ""))
                    break
                except (http.client.HTTPException, OSError) as e:
                    conn.close()
                    conn = self.connect()
                    self.reconnects += 1
                    k = gen.__name__[4:]
                    self.reconnect_kinds[k] = self.reconnect_kinds.get(k, 0) + 1
                    if attempt == 1:
                        resp = (None, repr(e).encode(), "")
            status, data, connhdr = resp
            name = gen.__name__[4:]
            if status is None and len(body) > self.max_body:
                # The collector answers 413 and closes before reading an
                # over-limit body; a client still writing it may get EPIPE and
                # never see the answer. t_413_unread_body.sh pins that down;
                # here it is counted apart so this test stays about parsing.
                self.lost_over_limit += 1
                status = "lost-over-limit"
                self.statuses[status] = self.statuses.get(status, 0) + 1
                continue
            self.statuses[status] = self.statuses.get(status, 0) + 1
            self.kinds.setdefault(name, {}).setdefault(status, 0)
            self.kinds[name][status] += 1
            ok = status in (400, 413, 415)
            if ok:
                try:
                    ok = isinstance(json.loads(data), dict)
                except ValueError:
                    ok = False
            if not ok and len(self.bad) < 20:
                self.bad.append({"kind": name, "status": status, "answer": data[:200].decode("utf-8", "replace"),
                                 "body_head": body[:120].decode("latin-1")})
            if not ok:
                self.bad_total = getattr(self, "bad_total", 0) + 1
            if connhdr.lower() == "close":
                conn.close()
                conn = self.connect()
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--max-body", type=int, default=8 << 20)
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    per = [a.count // a.conns + (1 if i < a.count % a.conns else 0) for i in range(a.conns)]
    workers = [Worker(a.port, per[i], seed + i, a.max_body) for i in range(a.conns)]
    t0 = time.time()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    dt = time.time() - t0
    statuses, kinds, bad, nbad = {}, {}, [], 0
    for w in workers:
        for k, v in w.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
        for k, d in w.kinds.items():
            for s, v in d.items():
                kinds.setdefault(k, {}).setdefault(s, 0)
                kinds[k][s] += v
        bad += w.bad
        nbad += getattr(w, "bad_total", 0)
    total = sum(statuses.values())
    rk = {}
    for w in workers:
        for k, v in w.reconnect_kinds.items():
            rk[k] = rk.get(k, 0) + v
    print(f"seed {seed}: {total} requests in {dt:.1f}s ({total / dt:.0f}/s), "
          f"reconnects {sum(w.reconnects for w in workers)} {rk}")
    print("statuses: " + ", ".join(f"{k}={v}" for k, v in sorted(statuses.items(), key=str)))
    for k in sorted(kinds):
        print(f"  {k:13s} " + " ".join(f"{s}={v}" for s, v in sorted(kinds[k].items(), key=str)))
    for b in bad:
        print("BAD " + json.dumps(b))
    print(f"over-limit bodies left unanswered: {sum(w.lost_over_limit for w in workers)}")
    print(f"wrong answers: {nbad}")
    return 1 if nbad or total != a.count else 0


if __name__ == "__main__":
    sys.exit(main())
