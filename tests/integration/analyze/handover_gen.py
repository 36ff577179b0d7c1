#!/usr/bin/env python3
"""handover_gen.py 1 T0 | 2 T0 NOW - events for the analyzer hand-over test
(t_analyze_kafka.sh, handover-policy.yaml): 24 tokens of one incident, in
milliseconds after T0 (epoch ms). Phase 1, within 2.5 s of T0: the incident,
the tokens (some refresh, some over-long, some with an unknown or an admin
scope), a use each, half of them revoked, the incident resolved (the
unrevoked ones outlive it 3 s later). Phase 2, at NOW: a use of every token
(the revoked ones: used_after_revoke, which needs the token's state) and the
revocation of the others (unused_scopes)."""
import json
import sys
from datetime import datetime, timezone

phase, t0 = sys.argv[1], int(sys.argv[2])


def ts(ms):
    return datetime.fromtimestamp(ms // 1000, timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def ev(i, src, typ, when, data):
    print(json.dumps({"specversion": "1.0", "id": i, "source": src, "type": typ,
                      "time": ts(when), "data": data}, separators=(",", ":")))


N = 24
if phase == "1":
    ev("ho-inc-open", "//pager", "incident.opened", t0,
       {"incident_id": "INC-HO", "severity": "sev2", "services": ["orders-db"],
        "opened_at": ts(t0)})
    for i in range(N):
        scopes = ["db:orders:read", "db:orders:write"]
        if i % 8 == 5:
            scopes.append("db:unknown:read")
        if i % 8 == 7:
            scopes.append("db:billing:admin")
        issued = t0 + 100 + 10 * i
        ttl = 7200000 if i % 4 == 3 else 1800000
        data = {"token": "ho-raw-%d" % i, "client_id": "oncall-cli", "subject": "eng-%d" % i,
                "scopes": " ".join(scopes), "issued_at": ts(issued),
                "expires_at": ts(issued + ttl), "incident_id": "INC-HO"}
        if i % 6 == 1:
            data["token_type"] = "refresh"
        ev("ho-iss-%d" % i, "//as", "token.issued", issued, data)
        ev("ho-use1-%d" % i, "//rs/orders", "token.used", t0 + 600 + 10 * i,
           {"token": "ho-raw-%d" % i, "resource": "orders-db", "scopes": ["db:orders:read"]})
        if i % 2 == 0:
            ev("ho-rev1-%d" % i, "//as", "token.revoked", t0 + 1000 + 10 * i,
               {"token": "ho-raw-%d" % i, "reason": "done", "actor": "eng-%d" % i})
    ev("ho-inc-res", "//pager", "incident.resolved", t0 + 2500,
       {"incident_id": "INC-HO", "resolved_at": ts(t0 + 2500)})
else:
    now = int(sys.argv[3])
    for i in range(N):
        ev("ho-use2-%d" % i, "//rs/orders", "token.used", now,
           {"token": "ho-raw-%d" % i, "resource": "orders-db", "scopes": ["db:orders:read"]})
        if i % 2 == 1:
            ev("ho-rev2-%d" % i, "//as", "token.revoked", now,
               {"token": "ho-raw-%d" % i, "reason": "done", "actor": "eng-%d" % i})
