#!/usr/bin/env python3
"""verify_topic.py - check a topic dump against the acknowledged ids.

  kcat -C -b BS -t T -e -o beginning -f '%p\\t%o\\t%k\\t%h\\t%s\\n' > DUMP
  verify_topic.py DUMP ACKED_FILE

Prints one JSON line: messages, unique, duplicates (messages beyond the first
of an id), missing (acked ids not in the topic), unacked_present (in the topic
but never acked: in flight when something failed), key_mismatch (key is not
the event's token_id / incident_id), header_bad (content-type or ce_* headers
do not match the event), order_violations (per key, first occurrences not in
send order), partitions_per_key_max.
"""
import json
import sys


def main():
    dump, acked_path = sys.argv[1], sys.argv[2]
    acked = set(l.strip() for l in open(acked_path) if l.strip())
    first = {}
    seen = set()
    dups = key_bad = hdr_bad = n = 0
    per_key_last = {}
    order_bad = 0
    key_parts = {}
    samples = []
    for line in open(dump, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line:
            continue
        p, o, k, h, s = line.split("\t", 4)
        n += 1
        ev = json.loads(s)
        eid = ev["id"]
        d = ev.get("data", {})
        want_key = d.get("token_id") or d.get("incident_id") or ""
        if k != want_key:
            key_bad += 1
            if len(samples) < 3:
                samples.append(f"key {k!r} != {want_key!r}")
        hd = dict(x.split("=", 1) for x in h.split(",") if "=" in x)
        if (hd.get("content-type") != "application/cloudevents+json" or
                hd.get("ce_type") != ev["type"] or hd.get("ce_id") != eid or
                hd.get("ce_source") != ev["source"]):
            hdr_bad += 1
        key_parts.setdefault(k, set()).add(p)
        if eid in seen:
            dups += 1
            continue
        seen.add(eid)
        # ids of one key grow with send order: "<prefix>-w<W>-<I>"
        seq = int(eid.rsplit("-", 1)[1]) if eid.rsplit("-", 1)[1].isdigit() else None
        if seq is not None:
            last = per_key_last.get(k)
            if last is not None and seq <= last:
                order_bad += 1
                if len(samples) < 3:
                    samples.append(f"key {k}: {eid} after seq {last}")
            per_key_last[k] = seq
    missing = acked - seen
    out = {
        "messages": n, "unique": len(seen), "duplicates": dups,
        "acked": len(acked), "missing": len(missing),
        "unacked_present": len(seen - acked), "key_mismatch": key_bad,
        "header_bad": hdr_bad, "order_violations": order_bad,
        "partitions_per_key_max": max((len(v) for v in key_parts.values()), default=0),
        "samples": samples + sorted(missing)[:3],
    }
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
