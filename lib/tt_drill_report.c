/* tt_drill_report.c - drill results: series, threshold verdicts, and the
 * JSON, JUnit and HTML reports. */
#include "tt_drill_report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tt_time.h"

/* Iterations drawn in the HTML timeline; the rest are summarised. */
#define REPORT_MAX_TIMELINE 40
/* Samples drawn as dots per resource server in the distribution chart. */
#define REPORT_MAX_DOTS 2000

tt_drill_result *tt_drill_result_new(const tt_scenario *sc, size_t n_it)
{
    tt_drill_result *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    r->sc = sc;
    r->n_it = r->n_alloc = n_it;
    r->it = calloc(n_it ? n_it : 1, sizeof(*r->it));
    if (r->it == NULL) {
        free(r);
        return NULL;
    }
    for (size_t i = 0; i < n_it; i++) {
        tt_drill_iter *it = &r->it[i];
        it->opened_ns = it->token_req_ns = it->token_ns = it->end_ns = it->done_ns = -1;
        it->active_after_end = -1;
        it->rs = calloc(sc->n_rs ? sc->n_rs : 1, sizeof(*it->rs));
        if (it->rs == NULL) {
            tt_drill_result_free(r);
            return NULL;
        }
        for (size_t j = 0; j < sc->n_rs; j++) {
            tt_drill_rs_obs *o = &it->rs[j];
            o->first_use_ns = o->last_accept_ns = o->refused_ns = o->probe_late_ns = -1;
            o->refusal_late_ns = -1;
        }
    }
    return r;
}

void tt_drill_result_free(tt_drill_result *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->n_alloc; i++) {
        free(r->it[i].rs);
    }
    free(r->it);
    tt_series_set_free(&r->series);
    free(r->token_endpoint);
    free(r->introspection_endpoint);
    free(r->revocation_endpoint);
    free(r->device_endpoint);
    free(r);
}

static double ms_between(int64_t a_ns, int64_t b_ns)
{
    return (double)(b_ns - a_ns) / 1e6;
}

/* The propagation sample of one server in one iteration: the first refusal,
 * or for a lingering server the lower bound (it was still open then). */
static int propagation_ms(const tt_drill_iter *it, const tt_drill_rs_obs *o, double *out)
{
    if (it->end_ns < 0) {
        return -1;
    }
    if (o->refused_ns >= 0) {
        *out = fmax(0, ms_between(it->end_ns, o->refused_ns));
        return 0;
    }
    if (o->lingering) {
        *out = o->last_accept_ns >= 0 ? fmax(0, ms_between(it->end_ns, o->last_accept_ns)) : 0;
        return 0;
    }
    return -1;
}

/* How precisely the refusal was located: the server began refusing after the
 * last probe it accepted (or the end of access, if none came after it) and
 * before the first probe it refused. One probe interval wide when the harness
 * keeps its grid and the server answers within the interval; wider when either
 * falls behind. Only for servers that refused. */
static int window_ms(const tt_drill_iter *it, const tt_drill_rs_obs *o, double *out)
{
    if (it->end_ns < 0 || o->refused_ns < 0) {
        return -1;
    }
    int64_t from = o->last_accept_ns > it->end_ns ? o->last_accept_ns : it->end_ns;
    *out = fmax(0, ms_between(from, o->refused_ns));
    return 0;
}

int tt_drill_evaluate(tt_drill_result *r)
{
    const tt_scenario *sc = r->sc;
    tt_series_set *s = &r->series;
    tt_series_set_free(s);
    int rc = 0;
    rc |= tt_series_declare(s, "time_to_token_ms", NULL);
    rc |= tt_series_declare(s, "scope_widening", NULL);
    rc |= tt_series_declare(s, "active_after_end", NULL);
    rc |= tt_series_declare(s, "errors", NULL);
    for (size_t j = 0; j < sc->n_rs; j++) {
        const char *tag = sc->rs[j].name;
        rc |= tt_series_declare(s, "time_to_first_use_ms", tag);
        rc |= tt_series_declare(s, "revocation_propagation_ms", tag);
        rc |= tt_series_declare(s, "lingering", tag);
        rc |= tt_series_declare(s, "propagation_window_ms", tag);
        rc |= tt_series_declare(s, "probe_lateness_ms", tag);
        rc |= tt_series_declare(s, "fresh_token_refused", tag);
    }
    for (size_t i = 0; i < r->n_it; i++) {
        const tt_drill_iter *it = &r->it[i];
        if (it->token_ns >= 0 && it->token_req_ns >= 0) {
            rc |= tt_series_add(s, "time_to_token_ms", NULL,
                                ms_between(it->token_req_ns, it->token_ns));
        }
        if (it->widened) {
            rc |= tt_series_add(s, "scope_widening", NULL, 1);
        }
        if (it->active_after_end == 1) {
            rc |= tt_series_add(s, "active_after_end", NULL, 1);
        }
        if (it->error[0]) {
            rc |= tt_series_add(s, "errors", NULL, 1);
        }
        for (size_t j = 0; j < sc->n_rs; j++) {
            const tt_drill_rs_obs *o = &it->rs[j];
            const char *tag = sc->rs[j].name;
            if (o->first_use_ns >= 0 && it->token_ns >= 0) {
                if (o->first_status == sc->rs[j].accept_status) {
                    rc |= tt_series_add(s, "time_to_first_use_ms", tag,
                                        ms_between(it->token_ns, o->first_use_ns));
                } else {
                    rc |= tt_series_add(s, "fresh_token_refused", tag, 1);
                }
            }
            double p;
            if (propagation_ms(it, o, &p) == 0) {
                rc |= tt_series_add(s, "revocation_propagation_ms", tag, p);
                if (o->lingering) {
                    rc |= tt_series_add(s, "lingering", tag, p);
                }
            }
            if (window_ms(it, o, &p) == 0) {
                rc |= tt_series_add(s, "propagation_window_ms", tag, p);
            }
            if (o->refused_ns >= 0 && o->refusal_late_ns >= 0) {
                rc |= tt_series_add(s, "probe_lateness_ms", tag,
                                    (double)o->refusal_late_ns / 1e6);
            }
        }
    }
    if (rc != 0) {
        return -1;
    }
    int failed = 0;
    for (size_t t = 0; t < sc->n_thr; t++) {
        const tt_sc_threshold *th = &sc->thr[t];
        tt_drill_verdict *v = &r->verdict[t];
        memset(v, 0, sizeof(*v));
        double *vals;
        long n = tt_series_collect(s, th->metric, th->tag, &vals);
        if (n < 0) {
            return -1;
        }
        v->samples = n;
        if (tt_threshold_aggregate(&th->expr, vals, (size_t)n, &v->value) != 0) {
            v->no_data = 1;
            v->pass = 0;
        } else {
            v->pass = tt_cmp_eval(th->expr.op, v->value, th->expr.bound);
        }
        free(vals);
        if (!v->pass) {
            failed++;
        }
    }
    return failed;
}

/* count, p50, p99 and max of every series called name (all tags). */
static int pooled(const tt_drill_result *r, const char *name, long *n, double *p50, double *p99,
                  double *max)
{
    double *v;
    *n = tt_series_collect(&r->series, name, NULL, &v);
    if (*n < 0) {
        return -1;
    }
    if (*n > 0) {
        *p50 = tt_stats_percentile(v, (size_t)*n, 50);
        *p99 = tt_stats_percentile(v, (size_t)*n, 99);
        *max = v[*n - 1];
    }
    free(v);
    return 0;
}

int tt_drill_get_precision(const tt_drill_result *r, tt_drill_precision *p)
{
    memset(p, 0, sizeof(*p));
    double window_max;
    if (pooled(r, "probe_lateness_ms", &p->probes, &p->late_p50_ms, &p->late_p99_ms,
               &p->late_max_ms) != 0 ||
        pooled(r, "propagation_window_ms", &p->windows, &p->window_p50_ms, &p->window_p99_ms,
               &window_max) != 0) {
        return -1;
    }
    p->behind = p->probes > 0 && p->late_p99_ms * 2 >= (double)r->sc->probe_interval_ms;
    return 0;
}

void tt_drill_threshold_label(const tt_sc_threshold *t, char *out, size_t outlen)
{
    if (t->tag) {
        snprintf(out, outlen, "%s{%s} %s", t->metric, t->tag, t->text);
    } else {
        snprintf(out, outlen, "%s %s", t->metric, t->text);
    }
}

/* Round to microseconds so reports stay readable. */
static json_t *jms(double ms)
{
    return json_real(round(ms * 1000.0) / 1000.0);
}

static json_t *jrel(int64_t ns)
{
    return ns < 0 ? json_null() : jms((double)ns / 1e6);
}

static json_t *series_summary(const tt_series_set *s, const char *name, const char *tag)
{
    double *v;
    long n = tt_series_collect(s, name, tag, &v);
    if (n < 0) {
        return NULL;
    }
    json_t *o = json_object();
    json_object_set_new(o, "count", json_integer(n));
    if (n > 0) {
        double sum = 0;
        for (long i = 0; i < n; i++) {
            sum += v[i];
        }
        json_object_set_new(o, "min", jms(v[0]));
        json_object_set_new(o, "max", jms(v[n - 1]));
        json_object_set_new(o, "avg", jms(sum / (double)n));
        static const double pcts[] = {50, 90, 95, 99};
        for (size_t i = 0; i < 4; i++) {
            char k[24];
            snprintf(k, sizeof(k), "p%g", pcts[i]);
            json_object_set_new(o, k, jms(tt_stats_percentile(v, (size_t)n, pcts[i])));
        }
    }
    free(v);
    return o;
}

static int all_pass(const tt_drill_result *r)
{
    for (size_t t = 0; t < r->sc->n_thr; t++) {
        if (!r->verdict[t].pass) {
            return 0;
        }
    }
    return 1;
}

void tt_drill_result_drop_unstarted(tt_drill_result *r)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n_it; i++) {
        if (r->it[i].opened_ns < 0) {
            continue;
        }
        if (i != k) { /* swap, so every rs array stays owned by one slot */
            tt_drill_iter tmp = r->it[k];
            r->it[k] = r->it[i];
            r->it[i] = tmp;
        }
        k++;
    }
    r->n_it = k;
}

size_t tt_drill_errors(const tt_drill_result *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_it; i++) {
        n += r->it[i].error[0] != '\0';
    }
    return n;
}

static int errors_judged(const tt_scenario *sc)
{
    for (size_t t = 0; t < sc->n_thr; t++) {
        if (strcmp(sc->thr[t].metric, "errors") == 0) {
            return 1;
        }
    }
    return 0;
}

tt_drill_outcome tt_drill_get_outcome(const tt_drill_result *r)
{
    if (r->interrupted || (tt_drill_errors(r) > 0 && !errors_judged(r->sc))) {
        return TT_DRILL_ERROR;
    }
    return all_pass(r) ? TT_DRILL_PASS : TT_DRILL_FAIL;
}

const char *tt_drill_outcome_name(tt_drill_outcome o)
{
    return o == TT_DRILL_PASS ? "pass" : o == TT_DRILL_FAIL ? "fail" : "error";
}

void tt_drill_error_text(const tt_drill_result *r, char *out, size_t outlen)
{
    out[0] = '\0';
    if (tt_drill_get_outcome(r) != TT_DRILL_ERROR) {
        return;
    }
    size_t errors = tt_drill_errors(r);
    if (r->interrupted) {
        snprintf(out, outlen, "interrupted by a signal: %zu of %zu iterations started%s", r->n_it,
                 r->n_alloc, errors ? ", some ended in an error" : "");
        return;
    }
    const char *first = "";
    for (size_t i = 0; i < r->n_it && !first[0]; i++) {
        first = r->it[i].error;
    }
    snprintf(out, outlen, "%zu of %zu iterations failed with an error; first: %s", errors,
             r->n_it, first);
}

static json_t *jstr_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *tt_drill_report_json(const tt_drill_result *r)
{
    const tt_scenario *sc = r->sc;
    json_t *root = json_object();
    if (root == NULL) {
        return NULL;
    }
    char ts[TT_TIME_BUFSZ];
    json_object_set_new(root, "run_id", json_string(r->run_id));
    json_object_set_new(root, "result",
                        json_string(tt_drill_outcome_name(tt_drill_get_outcome(r))));
    char why[TT_DRILL_MAX_ERROR + 128];
    tt_drill_error_text(r, why, sizeof(why));
    json_object_set_new(root, "error", why[0] ? json_string(why) : json_null());
    json_object_set_new(root, "interrupted", json_boolean(r->interrupted));
    tt_time_format(r->started_ms, ts);
    json_object_set_new(root, "started_at", json_string(ts));
    tt_time_format(r->finished_ms, ts);
    json_object_set_new(root, "finished_at", json_string(ts));
    json_object_set_new(root, "duration_ms", json_integer(r->finished_ms - r->started_ms));
    json_object_set_new(root, "mono_base_ns", json_integer(r->mono_base_ns));

    json_t *jsc = json_object();
    json_object_set_new(jsc, "name", json_string(sc->name));
    json_object_set_new(jsc, "path", json_string(sc->path));
    json_object_set_new(jsc, "grant", json_string(tt_grant_name(sc->grant)));
    json_object_set_new(jsc, "client_id", json_string(sc->client.id));
    json_object_set_new(jsc, "requested_scope", jstr_or_null(sc->scope));
    json_object_set_new(jsc, "resource", jstr_or_null(sc->resource));
    json_object_set_new(jsc, "end", json_string(tt_end_name(sc->end)));
    json_object_set_new(jsc, "engineers", json_integer(sc->engineers));
    json_object_set_new(jsc, "iterations", json_integer(sc->iterations));
    json_object_set_new(jsc, "probe_interval_ms", json_integer(sc->probe_interval_ms));
    json_object_set_new(jsc, "probe_timeout_ms", json_integer(sc->probe_timeout_ms));
    json_t *jrs = json_array();
    for (size_t j = 0; j < sc->n_rs; j++) {
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(sc->rs[j].name));
        json_object_set_new(o, "url", json_string(sc->rs[j].url));
        json_object_set_new(o, "method", json_string(sc->rs[j].method));
        json_object_set_new(o, "accept_status", json_integer(sc->rs[j].accept_status));
        json_array_append_new(jrs, o);
    }
    json_object_set_new(jsc, "resource_servers", jrs);
    json_object_set_new(root, "scenario", jsc);

    json_t *ep = json_object();
    json_object_set_new(ep, "token", jstr_or_null(r->token_endpoint));
    json_object_set_new(ep, "introspection", jstr_or_null(r->introspection_endpoint));
    json_object_set_new(ep, "revocation", jstr_or_null(r->revocation_endpoint));
    json_object_set_new(ep, "device_authorization", jstr_or_null(r->device_endpoint));
    json_object_set_new(root, "endpoints", ep);

    json_t *metrics = json_object();
    for (size_t i = 0; i < r->series.n; i++) {
        const tt_series *s = &r->series.s[i];
        char key[TT_SERIES_MAX_NAME + TT_SERIES_MAX_TAG + 3];
        if (s->tag[0]) {
            snprintf(key, sizeof(key), "%s{%s}", s->name, s->tag);
        } else {
            snprintf(key, sizeof(key), "%s", s->name);
        }
        json_t *sum = series_summary(&r->series, s->name, s->tag);
        if (sum == NULL) {
            json_decref(root);
            json_decref(metrics);
            return NULL;
        }
        json_object_set_new(metrics, key, sum);
    }
    json_object_set_new(root, "metrics", metrics);

    tt_drill_precision pr;
    if (tt_drill_get_precision(r, &pr) != 0) {
        json_decref(root);
        return NULL;
    }
    json_t *jp = json_object();
    json_object_set_new(jp, "probe_interval_ms", json_integer(sc->probe_interval_ms));
    json_object_set_new(jp, "iterations_probed", json_integer(pr.probes));
    json_object_set_new(jp, "probe_lateness_p50_ms", pr.probes ? jms(pr.late_p50_ms) : json_null());
    json_object_set_new(jp, "probe_lateness_p99_ms", pr.probes ? jms(pr.late_p99_ms) : json_null());
    json_object_set_new(jp, "probe_lateness_max_ms", pr.probes ? jms(pr.late_max_ms) : json_null());
    json_object_set_new(jp, "window_p50_ms", pr.windows ? jms(pr.window_p50_ms) : json_null());
    json_object_set_new(jp, "window_p99_ms", pr.windows ? jms(pr.window_p99_ms) : json_null());
    json_object_set_new(jp, "behind", json_boolean(pr.behind));
    json_object_set_new(root, "precision", jp);

    json_t *thr = json_array();
    size_t failed = 0;
    for (size_t t = 0; t < sc->n_thr; t++) {
        const tt_sc_threshold *th = &sc->thr[t];
        const tt_drill_verdict *v = &r->verdict[t];
        json_t *o = json_object();
        char label[256];
        tt_drill_threshold_label(th, label, sizeof(label));
        json_object_set_new(o, "name", json_string(label));
        json_object_set_new(o, "metric", json_string(th->metric));
        json_object_set_new(o, "tag", jstr_or_null(th->tag));
        json_object_set_new(o, "expression", json_string(th->text));
        json_object_set_new(o, "value", v->no_data ? json_null() : jms(v->value));
        json_object_set_new(o, "samples", json_integer(v->samples));
        json_object_set_new(o, "pass", json_boolean(v->pass));
        json_object_set_new(o, "line", json_integer(th->line));
        json_array_append_new(thr, o);
        failed += !v->pass;
    }
    json_object_set_new(root, "thresholds", thr);
    json_object_set_new(root, "thresholds_failed", json_integer((json_int_t)failed));

    json_t *its = json_array();
    size_t errors = 0;
    for (size_t i = 0; i < r->n_it; i++) {
        const tt_drill_iter *it = &r->it[i];
        json_t *o = json_object();
        json_object_set_new(o, "engineer", json_integer(it->engineer));
        json_object_set_new(o, "iteration", json_integer(it->iteration));
        json_object_set_new(o, "incident_id", json_string(it->incident_id));
        json_object_set_new(o, "token_id", it->token_id[0] ? json_string(it->token_id)
                                                           : json_null());
        json_object_set_new(o, "opened_ms", jrel(it->opened_ns));
        json_object_set_new(o, "token_requested_ms", jrel(it->token_req_ns));
        json_object_set_new(o, "token_ms", jrel(it->token_ns));
        json_object_set_new(o, "end_ms", jrel(it->end_ns));
        json_object_set_new(o, "done_ms", jrel(it->done_ns));
        json_object_set_new(o, "time_to_token_ms",
                            it->token_ns >= 0 && it->token_req_ns >= 0
                                ? jms(ms_between(it->token_req_ns, it->token_ns))
                                : json_null());
        json_object_set_new(o, "granted_scope", json_string(it->granted_scope));
        json_object_set_new(o, "introspected_scope", json_string(it->introspected_scope));
        json_object_set_new(o, "scope_widened", json_boolean(it->widened));
        json_object_set_new(o, "active_after_end", it->active_after_end < 0
                                                       ? json_null()
                                                       : json_boolean(it->active_after_end));
        json_object_set_new(o, "error", it->error[0] ? json_string(it->error) : json_null());
        errors += it->error[0] != '\0';
        json_t *rso = json_object();
        for (size_t j = 0; j < sc->n_rs; j++) {
            const tt_drill_rs_obs *ob = &it->rs[j];
            json_t *x = json_object();
            json_object_set_new(x, "first_use_ms", jrel(ob->first_use_ns));
            json_object_set_new(x, "first_status",
                                ob->first_use_ns >= 0 ? json_integer(ob->first_status)
                                                      : json_null());
            json_object_set_new(x, "last_accept_ms", jrel(ob->last_accept_ns));
            json_object_set_new(x, "refused_ms", jrel(ob->refused_ns));
            double p;
            json_object_set_new(x, "propagation_ms",
                                propagation_ms(it, ob, &p) == 0 ? jms(p) : json_null());
            json_object_set_new(x, "window_ms",
                                window_ms(it, ob, &p) == 0 ? jms(p) : json_null());
            json_object_set_new(x, "lingering", json_boolean(ob->lingering));
            json_object_set_new(x, "probed", json_boolean(!ob->not_probed));
            json_object_set_new(x, "probes", json_integer(ob->probes));
            json_object_set_new(x, "probe_late_max_ms", jrel(ob->probe_late_ns));
            json_object_set_new(x, "refusal_late_ms", jrel(ob->refusal_late_ns));
            json_object_set_new(rso, sc->rs[j].name, x);
        }
        json_object_set_new(o, "resource_servers", rso);
        json_array_append_new(its, o);
    }
    json_object_set_new(root, "iterations", its);
    json_object_set_new(root, "iterations_with_errors", json_integer((json_int_t)errors));
    json_t *ev = json_object();
    json_object_set_new(ev, "sent", json_integer((json_int_t)r->events_sent));
    json_object_set_new(ev, "failed", json_integer((json_int_t)r->events_failed));
    json_object_set_new(root, "events", ev);
    return root;
}

json_t *tt_drill_report_json_not_started(const tt_scenario *sc, const char *why, int64_t now_ms)
{
    char ts[TT_TIME_BUFSZ];
    tt_time_format(now_ms, ts);
    /* no resource servers: nothing was measured on any */
    return json_pack("{s:s, s:s, s:s, s:s, s:b, s:{s:s, s:s, s:[]}, s:[], s:i, s:{}, s:[], s:i}",
                     "result", "error", "error", why, "started_at", ts, "finished_at", ts,
                     "interrupted", 0, "scenario", "name", sc->name, "path", sc->path,
                     "resource_servers", "thresholds", "thresholds_failed", 0, "metrics",
                     "iterations", "iterations_with_errors", 0);
}

/* XML/HTML text and attribute escaping. */
static void put_esc(FILE *fp, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", fp); break;
        case '>': fputs("&gt;", fp); break;
        case '&': fputs("&amp;", fp); break;
        case '"': fputs("&quot;", fp); break;
        case '\'': fputs("&#39;", fp); break;
        default:
            if ((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t') {
                fputc(' ', fp);
            } else {
                fputc(*s, fp);
            }
        }
    }
}

static void verdict_text(const tt_sc_threshold *th, const tt_drill_verdict *v, char *out,
                         size_t outlen)
{
    char agg[32];
    tt_threshold_agg_name(&th->expr, agg, sizeof(agg));
    if (v->no_data) {
        snprintf(out, outlen, "no samples: %s is undefined (%ld samples)", agg, v->samples);
    } else {
        snprintf(out, outlen, "%s = %.3f (%ld samples); required %s %s %g", agg, v->value,
                 v->samples, agg, tt_cmp_name(th->expr.op), th->expr.bound);
    }
}

int tt_drill_report_junit(const tt_drill_result *r, FILE *fp)
{
    const tt_scenario *sc = r->sc;
    size_t failed = 0;
    for (size_t t = 0; t < sc->n_thr; t++) {
        failed += !r->verdict[t].pass;
    }
    /* An interrupted run, or iterations that ended in an error no threshold
     * judges, is one more test case, in error: CI must not read it as green. */
    char why[TT_DRILL_MAX_ERROR + 128];
    tt_drill_error_text(r, why, sizeof(why));
    size_t n_err = why[0] ? 1 : 0, tests = sc->n_thr + n_err;
    char ts[TT_TIME_BUFSZ];
    tt_time_format(r->started_ms, ts);
    double secs = (double)(r->finished_ms - r->started_ms) / 1000.0;
    fprintf(fp, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(fp, "<testsuites name=\"tokentrail drill\" tests=\"%zu\" failures=\"%zu\" "
                "errors=\"%zu\" time=\"%.3f\">\n", tests, failed, n_err, secs);
    fprintf(fp, "  <testsuite name=\"");
    put_esc(fp, sc->name);
    fprintf(fp, "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" time=\"%.3f\" "
                "timestamp=\"%s\">\n", tests, failed, n_err, secs, ts);
    fprintf(fp, "    <properties>\n      <property name=\"run_id\" value=\"");
    put_esc(fp, r->run_id);
    fprintf(fp, "\"/>\n      <property name=\"scenario\" value=\"");
    put_esc(fp, sc->path);
    fprintf(fp, "\"/>\n    </properties>\n");
    for (size_t t = 0; t < sc->n_thr; t++) {
        const tt_sc_threshold *th = &sc->thr[t];
        const tt_drill_verdict *v = &r->verdict[t];
        char label[256], msg[256];
        tt_drill_threshold_label(th, label, sizeof(label));
        verdict_text(th, v, msg, sizeof(msg));
        fprintf(fp, "    <testcase classname=\"drill.");
        put_esc(fp, sc->name);
        fprintf(fp, "\" name=\"");
        put_esc(fp, label);
        fprintf(fp, "\" time=\"0\"");
        if (v->pass) {
            fprintf(fp, "/>\n");
            continue;
        }
        fprintf(fp, ">\n      <failure type=\"threshold\" message=\"");
        put_esc(fp, msg);
        fprintf(fp, "\">");
        put_esc(fp, label);
        fprintf(fp, ": ");
        put_esc(fp, msg);
        fprintf(fp, "</failure>\n    </testcase>\n");
    }
    if (n_err) {
        fprintf(fp, "    <testcase classname=\"drill.");
        put_esc(fp, sc->name);
        fprintf(fp, "\" name=\"run completed without errors\" time=\"%.3f\">\n      <error "
                    "type=\"%s\" message=\"", secs, r->interrupted ? "interrupted" : "iteration");
        put_esc(fp, why);
        fprintf(fp, "\">");
        size_t shown = 0;
        for (size_t i = 0; i < r->n_it && shown < 20; i++) {
            if (r->it[i].error[0]) {
                fprintf(fp, "engineer %d, iteration %d: ", r->it[i].engineer, r->it[i].iteration);
                put_esc(fp, r->it[i].error);
                fprintf(fp, "\n");
                shown++;
            }
        }
        fprintf(fp, "</error>\n    </testcase>\n");
    }
    fprintf(fp, "  </testsuite>\n</testsuites>\n");
    return ferror(fp) ? -1 : 0;
}

/* ---- HTML ---- */

/* No red or green: those mean fail and pass elsewhere in the report. */
static const char *const rs_colors[] = {"#1f77b4", "#ff7f0e", "#9467bd", "#17becf",
                                        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"};
#define N_COLORS (sizeof(rs_colors) / sizeof(rs_colors[0]))

/* Log-scale x position for ms in [lo, hi] over [x0, x0 + w]. */
static double logx(double ms, double lo, double hi, double x0, double w)
{
    if (ms < lo) {
        ms = lo;
    }
    if (ms > hi) {
        ms = hi;
    }
    return x0 + w * (log10(ms) - log10(lo)) / (log10(hi) - log10(lo));
}

static void fmt_ms(double ms, char *out, size_t outlen)
{
    if (ms >= 1000) {
        snprintf(out, outlen, "%.2f s", ms / 1000.0);
    } else if (ms >= 10) {
        snprintf(out, outlen, "%.0f ms", ms);
    } else if (ms >= 0.1 || ms == 0) {
        snprintf(out, outlen, "%.1f ms", ms);
    } else {
        snprintf(out, outlen, "%.0f \xc2\xb5s", ms * 1000.0); /* µs */
    }
}

/* The next upper-bound threshold (<, <=) on rs's propagation after index
 * *t (start with *t = 0); NULL when there is none left. Every one is drawn:
 * a server can have several (p95 < 250 and max < 1000). */
static const tt_sc_threshold *propagation_bound(const tt_scenario *sc, const char *rs, size_t *t)
{
    for (; *t < sc->n_thr; (*t)++) {
        const tt_sc_threshold *th = &sc->thr[*t];
        if (strcmp(th->metric, "revocation_propagation_ms") == 0 &&
            (th->tag == NULL || strcmp(th->tag, rs) == 0) &&
            (th->expr.op == TT_CMP_LT || th->expr.op == TT_CMP_LE)) {
            (*t)++;
            return th;
        }
    }
    return NULL;
}

static void html_distribution(const tt_drill_result *r, FILE *fp)
{
    const tt_scenario *sc = r->sc;
    const double W = 1100, left = 150, plot_w = 860, row_h = 56, top = 30;
    double lo = 0.1, hi = 10;
    for (size_t j = 0; j < sc->n_rs; j++) {
        double *v;
        long n = tt_series_collect(&r->series, "revocation_propagation_ms", sc->rs[j].name, &v);
        if (n > 0 && v[n - 1] > hi) {
            hi = v[n - 1];
        }
        /* the smallest positive sample sets the left end (down to 1 us) */
        for (long i = 0; i < n; i++) {
            if (v[i] > 0) {
                if (v[i] < lo) {
                    lo = fmax(0.001, pow(10, floor(log10(v[i]))));
                }
                break;
            }
        }
        free(v);
        const tt_sc_threshold *th;
        for (size_t t = 0; (th = propagation_bound(sc, sc->rs[j].name, &t)) != NULL;) {
            hi = fmax(hi, th->expr.bound);
        }
    }
    hi = pow(10, ceil(log10(hi * 1.05)));
    double H = top + row_h * (double)sc->n_rs + 40;
    fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %.0f %.0f\" "
                "width=\"%.0f\" height=\"%.0f\" style=\"max-width:100%%;height:auto\" "
                "role=\"img\">\n", W, H, W, H);
    /* decade grid */
    for (double d = lo; d <= hi * 1.001; d *= 10) {
        double x = logx(d, lo, hi, left, plot_w);
        char lab[32];
        fmt_ms(d, lab, sizeof(lab));
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#ddd\"/>\n",
                x, top - 8, x, H - 34);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.0f\" class=\"ax\" text-anchor=\"middle\">%s</text>\n",
                x, H - 18, lab);
    }
    fprintf(fp, "<text x=\"%.0f\" y=\"%.0f\" class=\"ax\" text-anchor=\"middle\">time from end "
                "of access to first refusal (log scale)</text>\n", left + plot_w / 2, H - 2);
    for (size_t j = 0; j < sc->n_rs; j++) {
        const char *name = sc->rs[j].name;
        const char *col = rs_colors[j % N_COLORS];
        double y = top + row_h * (double)j + row_h / 2;
        double *v;
        long n = tt_series_collect(&r->series, "revocation_propagation_ms", name, &v);
        double *lg;
        long nl = tt_series_collect(&r->series, "lingering", name, &lg);
        free(lg);
        int rs_fail = 0;
        for (size_t t = 0; t < sc->n_thr; t++) {
            const tt_sc_threshold *th = &sc->thr[t];
            if (!r->verdict[t].pass && th->tag && strcmp(th->tag, name) == 0) {
                rs_fail = 1;
            }
        }
        fprintf(fp, "<rect x=\"%.0f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"/>",
                left - 140, y - 6, col);
        fprintf(fp, "<text x=\"%.0f\" y=\"%.1f\" class=\"lab\" text-anchor=\"end\"%s>", left - 12,
                y + 4, rs_fail ? " fill=\"#c62828\" font-weight=\"700\"" : "");
        put_esc(fp, name);
        fprintf(fp, "%s</text>\n", rs_fail ? " \xe2\x9c\x97" : "");
        fprintf(fp, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#eee\"/>\n",
                left, y, left + plot_w, y);
        const tt_sc_threshold *th;
        for (size_t t = 0; (th = propagation_bound(sc, name, &t)) != NULL;) {
            double x = logx(th->expr.bound, lo, hi, left, plot_w);
            char agg[32];
            tt_threshold_agg_name(&th->expr, agg, sizeof(agg));
            fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#c00\" "
                        "stroke-width=\"2\" stroke-dasharray=\"5,3\"><title>threshold ",
                    x, y - 22, x, y + 22);
            put_esc(fp, th->text);
            fprintf(fp, "</title></line><text x=\"%.1f\" y=\"%.1f\" class=\"mark\" fill=\"#c00\" "
                        "text-anchor=\"middle\">%s</text>\n", x, y - 24, agg);
        }
        if (n > 0) {
            double p50 = tt_stats_percentile(v, (size_t)n, 50);
            double p95 = tt_stats_percentile(v, (size_t)n, 95);
            double x50 = logx(p50, lo, hi, left, plot_w), x95 = logx(p95, lo, hi, left, plot_w);
            fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"20\" fill=\"%s\" "
                        "fill-opacity=\"0.15\" stroke=\"%s\"/>\n", x50, y - 10,
                    fmax(2, x95 - x50), col, col);
            long step = n > REPORT_MAX_DOTS ? n / REPORT_MAX_DOTS : 1;
            for (long i = 0; i < n; i += step) {
                /* deterministic jitter so the dots of equal values separate */
                double jy = (double)((i * 7919) % 17 - 8);
                fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\" "
                            "fill-opacity=\"0.6\"/>\n", logx(v[i], lo, hi, left, plot_w),
                        y + jy, col);
            }
            char a[32], c[32], d[32];
            fmt_ms(p50, a, sizeof(a));
            fmt_ms(p95, c, sizeof(c));
            fmt_ms(v[n - 1], d, sizeof(d));
            fprintf(fp, "<text x=\"%.0f\" y=\"%.1f\" class=\"small\">n=%ld  p50 %s  p95 %s  "
                        "max %s%s</text>\n", left + 4, y + 24, n, a, c, d,
                    nl > 0 ? "  (still open at probe timeout: lower bound)" : "");
        } else {
            fprintf(fp, "<text x=\"%.0f\" y=\"%.1f\" class=\"small\">no samples</text>\n",
                    left + 4, y + 4);
        }
        free(v);
    }
    fprintf(fp, "</svg>\n");
}

static void html_timeline(const tt_drill_result *r, FILE *fp)
{
    const tt_scenario *sc = r->sc;
    size_t shown = r->n_it < REPORT_MAX_TIMELINE ? r->n_it : REPORT_MAX_TIMELINE;
    const double W = 1100, left = 150, plot_w = 900, top = 34;
    const double sub_h = 9, gap = 10;
    double row_h = sub_h * (double)sc->n_rs + gap;
    double span = 1;
    for (size_t i = 0; i < shown; i++) {
        const tt_drill_iter *it = &r->it[i];
        int64_t t0 = it->opened_ns;
        int64_t t1 = it->done_ns >= 0 ? it->done_ns : it->end_ns;
        for (size_t j = 0; j < sc->n_rs; j++) {
            if (it->rs[j].refused_ns > t1) {
                t1 = it->rs[j].refused_ns;
            }
            if (it->rs[j].last_accept_ns > t1) { /* still open (lingering, interrupted) */
                t1 = it->rs[j].last_accept_ns;
            }
        }
        if (t0 >= 0 && t1 > t0 && ms_between(t0, t1) > span) {
            span = ms_between(t0, t1);
        }
    }
    span *= 1.03;
    double H = top + row_h * (double)shown + 50;
    fprintf(fp, "<p class=\"legend\"><span class=\"dot\"></span> token issued &nbsp; "
                "<span class=\"vbar\"></span> access ended (%s) &nbsp; ", tt_end_name(sc->end));
    for (size_t j = 0; j < sc->n_rs; j++) {
        fprintf(fp, "<span class=\"sw\" style=\"background:%s\"></span> ",
                rs_colors[j % N_COLORS]);
        put_esc(fp, sc->rs[j].name);
        fprintf(fp, " &nbsp; ");
    }
    fprintf(fp, "<br>Each bar is the access window on one server: from the first use to the "
                "first refused probe (&#x2715;). Hatched red: still open at the probe timeout."
                "</p>\n");
    fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %.0f %.0f\" "
                "width=\"%.0f\" height=\"%.0f\" style=\"max-width:100%%;height:auto\" "
                "role=\"img\">\n", W, H, W, H);
    fprintf(fp, "<defs><pattern id=\"hatch\" width=\"6\" height=\"6\" "
                "patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect "
                "width=\"3\" height=\"6\" fill=\"#c00\" fill-opacity=\"0.5\"/></pattern></defs>\n");
    /* time grid: about 8 ticks at a round step */
    double raw_step = span / 8, mag = pow(10, floor(log10(raw_step))), step = mag;
    if (raw_step / mag > 5) {
        step = 10 * mag;
    } else if (raw_step / mag > 2) {
        step = 5 * mag;
    } else if (raw_step / mag > 1) {
        step = 2 * mag;
    }
    for (double t = 0; t <= span; t += step) {
        double x = left + plot_w * t / span;
        char lab[32];
        fmt_ms(t, lab, sizeof(lab));
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#e4e4e4\"/>"
                    "<text x=\"%.1f\" y=\"%.0f\" class=\"ax\" text-anchor=\"middle\">%s</text>\n",
                x, top - 6, x, H - 40, x, H - 24, lab);
    }
    fprintf(fp, "<text x=\"%.0f\" y=\"%.0f\" class=\"ax\" text-anchor=\"middle\">time since "
                "the incident was opened</text>\n", left + plot_w / 2, H - 6);
    for (size_t i = 0; i < shown; i++) {
        const tt_drill_iter *it = &r->it[i];
        double y0 = top + row_h * (double)i;
        int64_t t0 = it->opened_ns;
        fprintf(fp, "<text x=\"%.0f\" y=\"%.1f\" class=\"small\" text-anchor=\"end\">eng %d "
                    "#%d</text>\n", left - 10, y0 + row_h / 2, it->engineer, it->iteration);
        if (t0 < 0) {
            continue;
        }
#define TX(ns) (left + plot_w * ms_between(t0, (ns)) / span)
        /* the end of access first, so a short access bar is drawn over it */
        if (it->end_ns >= 0) {
            double x = TX(it->end_ns);
            fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000\" "
                        "stroke-width=\"2\"/>\n", x, y0 - 2, x, y0 + sub_h * (double)sc->n_rs + 2);
        }
        for (size_t j = 0; j < sc->n_rs; j++) {
            const tt_drill_rs_obs *o = &it->rs[j];
            const char *col = rs_colors[j % N_COLORS];
            double y = y0 + sub_h * (double)j;
            if (o->first_use_ns < 0) {
                continue;
            }
            int64_t stop = o->refused_ns >= 0 ? o->refused_ns
                                              : (o->last_accept_ns >= 0 ? o->last_accept_ns
                                                                        : o->first_use_ns);
            double xa = TX(o->first_use_ns), xb = TX(stop);
            fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.0f\" "
                        "fill=\"%s\" fill-opacity=\"0.75\"><title>", xa, y + 1,
                    fmax(1.5, xb - xa), sub_h - 2, col);
            put_esc(fp, sc->rs[j].name);
            fprintf(fp, "</title></rect>\n");
            if (o->lingering) {
                fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.0f\" "
                            "fill=\"url(#hatch)\"/>\n", xb, y + 1,
                        fmax(3, left + plot_w - xb), sub_h - 2);
            } else if (o->refused_ns >= 0) {
                fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" class=\"mark\" fill=\"%s\" "
                            "text-anchor=\"middle\">&#x2715;</text>\n", xb + 5, y + sub_h - 1,
                        col);
            }
        }
        double ymid = y0 + sub_h * (double)sc->n_rs / 2;
        if (it->token_ns >= 0) {
            fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#333\"/>\n",
                    TX(it->token_ns), ymid);
        }
#undef TX
    }
    fprintf(fp, "</svg>\n");
    if (shown < r->n_it) {
        fprintf(fp, "<p class=\"note\">First %zu of %zu iterations shown; all are in "
                    "report.json.</p>\n", shown, r->n_it);
    }
}

int tt_drill_report_html(const tt_drill_result *r, FILE *fp)
{
    const tt_scenario *sc = r->sc;
    tt_drill_outcome outcome = tt_drill_get_outcome(r);
    int pass = outcome == TT_DRILL_PASS;
    const char *verdict = outcome == TT_DRILL_PASS ? "PASS"
                          : outcome == TT_DRILL_FAIL ? "FAIL"
                                                     : "ERROR";
    char why[TT_DRILL_MAX_ERROR + 128];
    tt_drill_error_text(r, why, sizeof(why));
    char ts[TT_TIME_BUFSZ];
    tt_time_format(r->started_ms, ts);
    fprintf(fp, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>Drill ");
    put_esc(fp, sc->name);
    fprintf(fp, " – %s</title>\n", verdict);
    fprintf(fp,
            "<style>\n"
            "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;"
            "color:#222;margin:24px auto;max-width:1120px;padding:0 12px}\n"
            "h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;"
            "border-bottom:1px solid #ddd;padding-bottom:4px}\n"
            ".badge{display:inline-block;padding:2px 12px;border-radius:4px;color:#fff;"
            "font-weight:700;margin-right:10px}.pass{background:#2e7d32}.fail{background:#c62828}\n"
            "table{border-collapse:collapse;width:100%%}td,th{padding:5px 8px;border-bottom:1px "
            "solid #eee;text-align:left;vertical-align:top}th{background:#f6f6f6}\n"
            "td.num{text-align:right;font-variant-numeric:tabular-nums}\n"
            "tr.bad td{background:#fdecea}.ok{color:#2e7d32;font-weight:700}"
            ".ko{color:#c62828;font-weight:700}\n"
            ".meta{color:#555}.note{color:#666;font-size:13px}.note.ko{color:#c62828}"
            "code{font-size:13px}.why{color:#c62828;font-weight:700}\n"
            "svg text{font-family:system-ui,sans-serif}svg .ax{font-size:12px;fill:#555}"
            "svg .lab{font-size:14px;fill:#222}svg .small{font-size:12px;fill:#333}"
            "svg .mark{font-size:10px;font-weight:700}\n"
            ".legend{font-size:13px;color:#333}.legend span{display:inline-block;"
            "vertical-align:middle}.sw{width:18px;height:8px}.dot{width:8px;height:8px;"
            "border-radius:4px;background:#333}.vbar{width:2px;height:14px;background:#000}\n"
            "</style></head><body>\n");
    fprintf(fp, "<h1><span class=\"badge %s\">%s</span>Drill: ", pass ? "pass" : "fail",
            verdict);
    put_esc(fp, sc->name);
    fprintf(fp, "</h1>\n");
    if (why[0]) {
        fprintf(fp, "<p class=\"why\">");
        put_esc(fp, why);
        fprintf(fp, "</p>\n");
    }
    fprintf(fp, "<p class=\"meta\">run <code>");
    put_esc(fp, r->run_id);
    fprintf(fp, "</code> · started %s · %.1f s · grant <b>%s</b> · access ends by <b>%s</b> · "
                "%lld engineer%s × %lld iteration%s · probe every %lld ms, timeout %lld ms<br>"
                "scenario <code>", ts, (double)(r->finished_ms - r->started_ms) / 1000.0,
            tt_grant_name(sc->grant), tt_end_name(sc->end), (long long)sc->engineers,
            sc->engineers == 1 ? "" : "s", (long long)sc->iterations,
            sc->iterations == 1 ? "" : "s", (long long)sc->probe_interval_ms,
            (long long)sc->probe_timeout_ms);
    put_esc(fp, sc->path);
    fprintf(fp, "</code> · requested scope <code>");
    put_esc(fp, sc->scope ? sc->scope : "(none)");
    fprintf(fp, "</code></p>\n");

    fprintf(fp, "<h2>Thresholds</h2>\n<table><tr><th>metric</th><th>threshold</th>"
                "<th class=\"num\">measured</th><th class=\"num\">samples</th><th>result</th>"
                "</tr>\n");
    for (size_t t = 0; t < sc->n_thr; t++) {
        const tt_sc_threshold *th = &sc->thr[t];
        const tt_drill_verdict *v = &r->verdict[t];
        char agg[32];
        tt_threshold_agg_name(&th->expr, agg, sizeof(agg));
        fprintf(fp, "<tr%s><td><code>", v->pass ? "" : " class=\"bad\"");
        put_esc(fp, th->metric);
        if (th->tag) {
            fputc('{', fp);
            put_esc(fp, th->tag);
            fputc('}', fp);
        }
        fprintf(fp, "</code></td><td><code>");
        put_esc(fp, th->text);
        if (v->no_data) {
            fprintf(fp, "</code></td><td class=\"num\">no data</td>");
        } else {
            fprintf(fp, "</code></td><td class=\"num\">%s = %.*f</td>", agg,
                    v->value == floor(v->value) ? 0 : 1, v->value);
        }
        fprintf(fp, "<td class=\"num\">%ld</td><td class=\"%s\">%s</td></tr>\n", v->samples,
                v->pass ? "ok" : "ko", v->pass ? "pass" : "FAIL");
    }
    fprintf(fp, "</table>\n");

    fprintf(fp, "<h2>Revocation propagation by resource server</h2>\n");
    html_distribution(r, fp);
    fprintf(fp, "<p class=\"note\">Each dot is one iteration: the time from the end of access "
                "to the first probe that was refused. The box spans p50 to p95; the dashed red "
                "line is the threshold.</p>\n");
    tt_drill_precision pr;
    if (tt_drill_get_precision(r, &pr) == 0 && pr.probes > 0) {
        char located[160] = "no server refused, so no refusal was located";
        if (pr.windows > 0) {
            snprintf(located, sizeof(located),
                     "each refusal was located within a %.1f ms (p50) / %.1f ms (p99) window",
                     pr.window_p50_ms, pr.window_p99_ms);
        }
        fprintf(fp, "<p class=\"%s\">Precision: the probes that found the refusals went out "
                    "%.2f ms (p50) / %.2f ms (p99) after their tick, at most %.2f ms; %s, at a "
                    "%lld ms probe interval.%s</p>\n",
                pr.behind ? "note ko" : "note", pr.late_p50_ms, pr.late_p99_ms, pr.late_max_ms,
                located, (long long)sc->probe_interval_ms,
                pr.behind ? " The drill fell behind its probe grid: propagation times carry "
                            "that much extra error. Run fewer engineers or give the drill a "
                            "quieter core."
                          : "");
    }

    fprintf(fp, "<h2>Timeline per iteration</h2>\n");
    html_timeline(r, fp);

    fprintf(fp, "<h2>Summary by metric</h2>\n<table><tr><th>metric</th><th class=\"num\">count"
                "</th><th class=\"num\">p50</th><th class=\"num\">p95</th><th class=\"num\">p99"
                "</th><th class=\"num\">max</th></tr>\n");
    for (size_t i = 0; i < r->series.n; i++) {
        const tt_series *s = &r->series.s[i];
        double *v;
        long n = tt_series_collect(&r->series, s->name, s->tag, &v);
        fprintf(fp, "<tr><td><code>");
        put_esc(fp, s->name);
        if (s->tag[0]) {
            fputc('{', fp);
            put_esc(fp, s->tag);
            fputc('}', fp);
        }
        fprintf(fp, "</code></td><td class=\"num\">%ld</td>", n < 0 ? 0 : n);
        if (n > 0 && strstr(s->name, "_ms")) {
            fprintf(fp, "<td class=\"num\">%.1f</td><td class=\"num\">%.1f</td><td class=\"num\">"
                        "%.1f</td><td class=\"num\">%.1f</td></tr>\n",
                    tt_stats_percentile(v, (size_t)n, 50), tt_stats_percentile(v, (size_t)n, 95),
                    tt_stats_percentile(v, (size_t)n, 99), v[n - 1]);
        } else {
            fprintf(fp, "<td></td><td></td><td></td><td></td></tr>\n");
        }
        free(v);
    }
    fprintf(fp, "</table>\n");

    size_t nerr = 0;
    for (size_t i = 0; i < r->n_it; i++) {
        nerr += r->it[i].error[0] != '\0';
    }
    if (nerr > 0) {
        fprintf(fp, "<h2>Errors (%zu iterations)</h2>\n<table><tr><th>iteration</th><th>error"
                    "</th></tr>\n", nerr);
        size_t shown = 0;
        for (size_t i = 0; i < r->n_it && shown < 50; i++) {
            if (r->it[i].error[0]) {
                fprintf(fp, "<tr><td>eng %d #%d</td><td><code>", r->it[i].engineer,
                        r->it[i].iteration);
                put_esc(fp, r->it[i].error);
                fprintf(fp, "</code></td></tr>\n");
                shown++;
            }
        }
        fprintf(fp, "</table>\n");
    }
    fprintf(fp, "<p class=\"note\">tokentrail %s · all times from one monotonic clock · "
                "report.json has every measurement.</p>\n</body></html>\n", TT_VERSION);
    return ferror(fp) ? -1 : 0;
}
