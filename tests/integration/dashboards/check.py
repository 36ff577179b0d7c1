#!/usr/bin/env python3
"""check.py - static checks of dashboards/ for the t_dashboards_*.sh tests.

  check.py names RULES DASHBOARD            metric names used by the alert
                                             rules and the dashboard, one per
                                             line: "NAME<TAB>WHERE"
  check.py exposed FILE...                   metric names exported by
                                             Prometheus text expositions
  check.py missing RULES DASHBOARD FILE...   names used but not exported
                                             (exit 1 if any)
  check.py coverage RULES TEST.yml...        every alert fires and does not
                                             fire in some promtool test
  check.py runbooks RULES ROOT               one runbook per alert, no orphan
  check.py dashboard DASHBOARD OUT.yml       panel structure; writes every
                                             query as a recording rule so
                                             promtool can parse it

Each check prints one "problem: ..." line per problem and exits 1 if there
was any. Metric names are taken from PromQL by removing strings, label
matchers, ranges, grouping clauses and function calls: what is left are
selectors. Needs PyYAML (Debian: python3-yaml).
"""
import json
import os
import re
import sys

import yaml

# Names Prometheus makes itself, not exported by any target.
SYNTHETIC = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds",
             "scrape_samples_scraped"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset",
            "bool", "and", "or", "unless", "inf", "nan", "atan2"}
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def promql_names(expr):
    for k, v in GRAFANA_VARS.items():
        expr = expr.replace(k, v)
    expr = re.sub(r"\$\{?\w+\}?", "x", expr)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"'(?:[^'\\]|\\.)*'", "''", expr)
    expr = re.sub(r"`[^`]*`", "``", expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\boffset\s+-?[0-9a-zA-Z]+", " ", expr)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        tok = m.group(0)
        before = expr[m.start() - 1] if m.start() > 0 else " "
        if before.isdigit() or before == ".":
            continue  # the exponent of 1e9
        if expr[m.end():].lstrip().startswith("("):
            continue  # a function
        if tok.lower() in KEYWORDS:
            continue
        names.add(tok)
    return names


def rules(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    out = []
    for g in doc["groups"]:
        for r in g["rules"]:
            out.append((g["name"], r))
    return out


def dashboard_queries(path):
    """(where, expr) for every panel target and annotation query."""
    with open(path) as f:
        d = json.load(f)
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append(("panel %d %r target %s" % (p["id"], p["title"], t["refId"]), t["expr"]))
            walk(p.get("panels", []))

    walk(d.get("panels", []))
    for a in d.get("annotations", {}).get("list", []):
        if a.get("expr"):
            out.append(("annotation %r" % a["name"], a["expr"]))
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        if v.get("type") == "query" and isinstance(q, dict):
            q = q.get("query")
        if v.get("type") == "query" and q:
            m = re.match(r"label_values\((.*),\s*\w+\)$", q)
            if m:
                out.append(("variable %s" % v["name"], m.group(1)))
    return out


def used_names(rules_path, dash_path):
    used = {}
    for _, r in rules(rules_path):
        for n in promql_names(r["expr"]):
            used.setdefault(n, []).append("alert " + r.get("alert", r.get("record", "?")))
    for where, expr in dashboard_queries(dash_path):
        for n in promql_names(expr):
            used.setdefault(n, []).append("dashboard " + where)
    return {n: w for n, w in used.items() if n not in SYNTHETIC}


def exposed_names(files):
    names = set()
    for path in files:
        with open(path) as f:
            for line in f:
                line = line.strip()
                m = re.match(r"# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)", line)
                if m:
                    n, t = m.groups()
                    names.add(n)
                    if t == "histogram":
                        names.update({n + "_bucket", n + "_sum", n + "_count"})
                    elif t == "summary":
                        names.update({n + "_sum", n + "_count"})
                    continue
                m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", line)
                if m and not line.startswith("#"):
                    names.add(m.group(1))
    return names


def cmd_missing(argv):
    used = used_names(argv[0], argv[1])
    have = exposed_names(argv[2:])
    bad = 0
    for n in sorted(used):
        if n not in have:
            print("problem: %s is not exported by any scraped binary (used by %s)"
                  % (n, "; ".join(sorted(set(used[n])))))
            bad += 1
    print("checked %d metric names against %d exported" % (len(used), len(have)))
    return 1 if bad else 0


def cmd_coverage(argv):
    alerts = [r["alert"] for _, r in rules(argv[0]) if "alert" in r]
    fires, quiet = set(), set()
    for path in argv[1:]:
        with open(path) as f:
            doc = yaml.safe_load(f)
        for t in doc.get("tests", []):
            for c in t.get("alert_rule_test", []):
                (fires if c.get("exp_alerts") else quiet).add(c["alertname"])
    bad = 0
    for a in alerts:
        if a not in fires:
            print("problem: no promtool test shows %s firing" % a)
            bad += 1
        if a not in quiet:
            print("problem: no promtool test shows %s not firing" % a)
            bad += 1
    for a in sorted((fires | quiet) - set(alerts)):
        print("problem: tests name an alert that does not exist: %s" % a)
        bad += 1
    print("%d alerts, %d firing and %d not-firing cases covered" % (len(alerts), len(fires), len(quiet)))
    return 1 if bad else 0


def cmd_runbooks(argv):
    rules_path, root = argv
    rb_dir = os.path.join(root, "docs", "runbooks")
    pages = {p for p in os.listdir(rb_dir) if p.endswith(".md") and p != "README.md"}
    seen = {}
    bad = 0
    index = open(os.path.join(rb_dir, "README.md")).read()
    for _, r in rules(rules_path):
        if "alert" not in r:
            continue
        a = r["alert"]
        url = r.get("annotations", {}).get("runbook_url", "")
        for key in ("summary", "description", "runbook_url"):
            if not r.get("annotations", {}).get(key):
                print("problem: %s has no %s annotation" % (a, key))
                bad += 1
        if not r.get("labels", {}).get("severity") in ("critical", "warning", "info"):
            print("problem: %s has no severity label critical|warning|info" % a)
            bad += 1
        if not url.startswith("docs/runbooks/"):
            print("problem: %s: runbook_url %r does not point into docs/runbooks/" % (a, url))
            bad += 1
            continue
        page = url[len("docs/runbooks/"):]
        if page in seen:
            print("problem: %s and %s share the runbook %s" % (seen[page], a, page))
            bad += 1
        seen[page] = a
        path = os.path.join(root, url)
        if not os.path.isfile(path):
            print("problem: %s: runbook %s does not exist" % (a, url))
            bad += 1
            continue
        text = open(path).read()
        if not text.startswith("# %s\n" % a):
            print("problem: %s does not start with '# %s'" % (url, a))
            bad += 1
        for section in ("## What it means", "## Triage", "## Fix"):
            if section not in text:
                print("problem: %s has no '%s' section" % (url, section))
                bad += 1
        if "(%s)" % page not in index or "`%s`" % a not in index:
            print("problem: docs/runbooks/README.md does not list %s -> %s" % (a, page))
            bad += 1
    for p in sorted(pages - set(seen)):
        print("problem: docs/runbooks/%s belongs to no alert" % p)
        bad += 1
    print("%d runbooks for %d alerts" % (len(pages), len(seen)))
    return 1 if bad else 0


def cmd_dashboard(argv):
    path, out = argv
    with open(path) as f:
        d = json.load(f)
    bad = []
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 36:
        bad.append("schemaVersion %r is not a recent Grafana schema" % d.get("schemaVersion"))
    if not any(i.get("name") == "DS_PROMETHEUS" and i.get("pluginId") == "prometheus"
               for i in d.get("__inputs", [])):
        bad.append("no DS_PROMETHEUS datasource input")
    if not any(v.get("name") == "DS_PROMETHEUS" and v.get("type") == "datasource"
               for v in d.get("templating", {}).get("list", [])):
        bad.append("no DS_PROMETHEUS datasource variable (needed when provisioned from a file)")
    ids, want_ds = set(), {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    n_queries = 0
    for p in d.get("panels", []):
        if p["id"] in ids:
            bad.append("duplicate panel id %d" % p["id"])
        ids.add(p["id"])
        g = p.get("gridPos", {})
        if not all(k in g for k in ("h", "w", "x", "y")) or g["x"] + g["w"] > 24:
            bad.append("panel %d: bad gridPos %r" % (p["id"], g))
        if p["type"] == "row":
            continue
        if not p.get("title") or not p.get("description"):
            bad.append("panel %d has no title or description" % p["id"])
        if p.get("datasource") != want_ds:
            bad.append("panel %d %r: datasource is %r, not ${DS_PROMETHEUS}"
                       % (p["id"], p.get("title"), p.get("datasource")))
        if not p.get("targets"):
            bad.append("panel %d %r has no query" % (p["id"], p.get("title")))
        for t in p.get("targets", []):
            n_queries += 1
            if t.get("datasource") != want_ds:
                bad.append("panel %d target %s: datasource is not ${DS_PROMETHEUS}" % (p["id"], t.get("refId")))
    # Every query as a recording rule, Grafana variables substituted, so that
    # promtool's PromQL parser checks it.
    recs = []
    for i, (where, expr) in enumerate(dashboard_queries(path)):
        e = expr
        for k, v in GRAFANA_VARS.items():
            e = e.replace(k, v)
        e = re.sub(r"\$\{?\w+\}?", ".*", e)
        recs.append({"record": "dashboard_query_%d" % i, "expr": e})
    with open(out, "w") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": recs}]}, f)
    for b in bad:
        print("problem: " + b)
    print("%d panels, %d queries" % (len(ids), n_queries))
    return 1 if bad else 0


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, argv = sys.argv[1], sys.argv[2:]
    if cmd == "names":
        for n, w in sorted(used_names(argv[0], argv[1]).items()):
            print("%s\t%s" % (n, "; ".join(sorted(set(w)))))
        return 0
    if cmd == "exposed":
        for n in sorted(exposed_names(argv)):
            print(n)
        return 0
    return {"missing": cmd_missing, "coverage": cmd_coverage, "runbooks": cmd_runbooks,
            "dashboard": cmd_dashboard}[cmd](argv)


if __name__ == "__main__":
    sys.exit(main())
