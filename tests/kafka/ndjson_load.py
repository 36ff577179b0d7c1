#!/usr/bin/env python3
"""ndjson_load.py - send N unique token.used events to a collector as fast as
it takes them, in NDJSON batches, and record exactly what was acknowledged.

  ndjson_load.py --port P --events 200000 [--workers 4] [--batch 500]
                 [--keys 64] [--prefix p] --acked FILE [--give-up S]

Each worker owns its keys ("<prefix>-w<W>-k<K>", used as data.token_id, so
they are the Kafka keys) and sends its batches one after another, so the
order of one key's events is defined: the id "<prefix>-w<W>-<I>" grows with
I. A batch is retried (same bytes) after a connection error or a 503 until it
gets a 2xx covering the whole batch; the store recognises re-sent events as
duplicates. Acknowledged ids are appended to --acked as soon as the 2xx
arrives. Gives up after --give-up seconds without any 2xx. Prints one JSON
summary line.
"""
import argparse
import http.client
import json
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--events", type=int, default=200000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--keys", type=int, default=64)
    ap.add_argument("--prefix", default="f")
    ap.add_argument("--acked", required=True)
    ap.add_argument("--give-up", type=float, default=60)
    a = ap.parse_args()

    lock = threading.Lock()
    acked = open(a.acked, "a")
    stats = {"requests": 0, "acked": 0, "retries": 0, "statuses": {}, "gave_up": 0}
    last_ok = [time.monotonic()]
    per_worker = a.events // a.workers

    def worker(w):
        conn = None
        i = 0
        while i < per_worker:
            n = min(a.batch, per_worker - i)
            ids = [f"{a.prefix}-w{w}-{i + j:07d}" for j in range(n)]
            lines = []
            for j, eid in enumerate(ids):
                key = f"{a.prefix}-w{w}-k{(i + j) % a.keys}"
                lines.append(
                    '{"specversion":"1.0","id":"%s","source":"//load","type":"token.used",'
                    '"time":"2026-11-22T08:00:00Z","data":{"token_id":"%s","resource":"db:orders",'
                    '"method":"GET","path":"/orders/%d","status":200}}' % (eid, key, i + j))
            body = ("\n".join(lines) + "\n").encode()
            while True:
                if time.monotonic() - last_ok[0] > a.give_up:
                    with lock:
                        stats["gave_up"] += 1
                    return
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=120)
                    conn.request("POST", "/v1/events", body,
                                 {"Content-Type": "application/x-ndjson"})
                    r = conn.getresponse()
                    data = r.read()
                    status = r.status
                except (OSError, http.client.HTTPException):
                    status = 0
                    try:
                        conn.close()
                    except Exception:
                        pass
                    conn = None
                with lock:
                    stats["requests"] += 1
                    stats["statuses"][str(status)] = stats["statuses"].get(str(status), 0) + 1
                if 200 <= status < 300:
                    res = json.loads(data)
                    if res["accepted"] + res["duplicates"] == n:
                        with lock:
                            acked.write("".join(x + "\n" for x in ids))
                            acked.flush()
                            stats["acked"] += n
                            last_ok[0] = time.monotonic()
                        break
                with lock:
                    stats["retries"] += 1
                time.sleep(0.1)
            i += n

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, args=(w,)) for w in range(a.workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    stats["seconds"] = round(time.monotonic() - t0, 2)
    print(json.dumps(stats, sort_keys=True))
    return 0 if stats["gave_up"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
