/* test_drill_report.c - drill results to series, verdicts and report.json /
 * JUnit: a two-iteration result built by hand with known timings. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "suites.h"
#include "tt_drill_report.h"

#define MS INT64_C(1000000)

static tt_scenario *scenario_with(const char *thresholds);

static tt_scenario *scenario(void)
{
    return scenario_with("thresholds:\n"
                         "  time_to_token_ms: ['p50 < 100', 'max < 15']\n"
                         "  revocation_propagation_ms{fast}: ['max < 1000']\n"
                         "  revocation_propagation_ms{slow}: ['max < 1000']\n"
                         "  revocation_propagation_ms: ['count == 4']\n"
                         "  lingering: ['count == 0']\n"
                         "  scope_widening: ['count == 0']\n"
                         "  errors: ['count == 0']\n");
}

static tt_scenario *scenario_with(const char *thresholds)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/tt_dr_%d.yaml", (int)getpid());
    FILE *fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fputs("name: unit\n"
          "authorization_server: {token_endpoint: 'http://127.0.0.1:9/token',\n"
          "  revocation_endpoint: 'http://127.0.0.1:9/revoke'}\n"
          "client: {client_id: svc, client_secret_env: TT_DR_SECRET}\n"
          "grant: {scope: 'a b'}\n"
          "resource_servers:\n"
          "  - {name: fast, url: 'http://127.0.0.1:1/'}\n"
          "  - {name: slow, url: 'http://127.0.0.1:2/'}\n"
          "load: {engineers: 1, iterations: 2}\n",
          fp);
    fputs(thresholds, fp);
    fclose(fp);
    setenv("TT_DR_SECRET", "x", 1);
    char err[512];
    tt_scenario *sc = tt_scenario_load(path, err, sizeof(err));
    unlink(path);
    ck_assert_msg(sc != NULL, "%s", err);
    return sc;
}

/* iteration 1: token in 10 ms, fast refuses 5 ms after the revocation, slow
 * after 4.5 s. iteration 2: token in 20 ms, slow still open at the timeout
 * (lower bound 8 s), scopes widened. */
static tt_drill_result *result(const tt_scenario *sc)
{
    tt_drill_result *r = tt_drill_result_new(sc, 2);
    ck_assert_ptr_nonnull(r);
    snprintf(r->run_id, sizeof(r->run_id), "drill-unit");
    r->started_ms = 1795333671000;
    r->finished_ms = r->started_ms + 20000;
    tt_drill_iter *a = &r->it[0], *b = &r->it[1];
    a->engineer = b->engineer = 1;
    a->iteration = 1;
    b->iteration = 2;
    a->opened_ns = 0;
    a->token_req_ns = 0;
    a->token_ns = 10 * MS;
    a->end_ns = 100 * MS;
    a->rs[0].first_use_ns = 12 * MS;
    a->rs[0].first_status = 200;
    a->rs[0].refused_ns = 105 * MS;
    a->rs[1].first_use_ns = 14 * MS;
    a->rs[1].first_status = 200;
    a->rs[1].last_accept_ns = 4590 * MS;
    a->rs[1].refused_ns = 4600 * MS;
    a->active_after_end = 0;
    snprintf(a->granted_scope, sizeof(a->granted_scope), "a");
    b->opened_ns = 5000 * MS;
    b->token_req_ns = 5000 * MS;
    b->token_ns = 5020 * MS;
    b->end_ns = 5100 * MS;
    b->rs[0].first_use_ns = 5030 * MS;
    b->rs[0].first_status = 200;
    b->rs[0].refused_ns = 5107 * MS;
    b->rs[1].first_use_ns = 5030 * MS;
    b->rs[1].first_status = 401;
    b->rs[1].last_accept_ns = 13100 * MS;
    b->rs[1].lingering = 1;
    b->widened = 1;
    b->active_after_end = 0;
    return r;
}

START_TEST(test_evaluate)
{
    tt_scenario *sc = scenario();
    tt_drill_result *r = result(sc);
    int failed = tt_drill_evaluate(r);
    /* max < 15 (20), slow max < 1000 (8000), lingering (1), widening (1) */
    ck_assert_int_eq(failed, 4);
    static const struct {
        int pass;
        double value;
        long samples;
    } want[] = {
        {1, 15, 2},   {0, 20, 2}, {1, 7, 2}, {0, 8000, 2},
        {1, 4, 4},    {0, 1, 1},  {0, 1, 1}, {1, 0, 0},
    };
    for (size_t t = 0; t < sc->n_thr; t++) {
        ck_assert_msg(r->verdict[t].pass == want[t].pass, "threshold %zu pass", t);
        ck_assert_msg(fabs(r->verdict[t].value - want[t].value) < 1e-6, "threshold %zu: %g", t,
                      r->verdict[t].value);
        ck_assert_int_eq(r->verdict[t].samples, want[t].samples);
    }
    tt_drill_result_free(r);
    tt_scenario_free(sc);
}
END_TEST

START_TEST(test_json)
{
    tt_scenario *sc = scenario();
    tt_drill_result *r = result(sc);
    ck_assert_int_eq(tt_drill_evaluate(r), 4);
    json_t *j = tt_drill_report_json(r);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "result")), "fail");
    ck_assert_str_eq(json_string_value(json_object_get(j, "run_id")), "drill-unit");
    ck_assert_str_eq(json_string_value(json_object_get(j, "started_at")),
                     "2026-11-22T07:47:51.000Z");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "thresholds_failed")), 4);
    json_t *thr = json_object_get(j, "thresholds");
    ck_assert_int_eq((int)json_array_size(thr), 8);
    json_t *t3 = json_array_get(thr, 3);
    ck_assert_str_eq(json_string_value(json_object_get(t3, "name")),
                     "revocation_propagation_ms{slow} max < 1000");
    ck_assert(json_is_false(json_object_get(t3, "pass")));
    ck_assert(fabs(json_real_value(json_object_get(t3, "value")) - 8000) < 1e-6);
    json_t *m = json_object_get(json_object_get(j, "metrics"), "revocation_propagation_ms{fast}");
    ck_assert_int_eq(json_integer_value(json_object_get(m, "count")), 2);
    ck_assert(fabs(json_real_value(json_object_get(m, "p50")) - 6) < 1e-6);
    json_t *it1 = json_array_get(json_object_get(j, "iterations"), 1);
    json_t *slow = json_object_get(json_object_get(it1, "resource_servers"), "slow");
    ck_assert(json_is_true(json_object_get(slow, "lingering")));
    ck_assert(json_is_null(json_object_get(slow, "refused_ms")));
    ck_assert(fabs(json_real_value(json_object_get(slow, "propagation_ms")) - 8000) < 1e-6);
    ck_assert(json_is_true(json_object_get(it1, "scope_widened")));
    ck_assert(fabs(json_real_value(json_object_get(it1, "time_to_token_ms")) - 20) < 1e-6);
    json_decref(j);
    tt_drill_result_free(r);
    tt_scenario_free(sc);
}
END_TEST

/* The run's own precision: windows [max(end, last accept), first refusal] of
 * 5 (fast, no accept after the end), 10 and 7 ms (the lingering server has
 * none); the refusing probes went out 1, 9 and 3 ms after their ticks (the
 * lingering server's 8 ms is no refusal's), at the default 10 ms interval. */
START_TEST(test_precision)
{
    tt_scenario *sc = scenario();
    ck_assert_int_eq((int)sc->probe_interval_ms, 10);
    tt_drill_result *r = result(sc);
    r->it[0].rs[0].refusal_late_ns = 1 * MS;
    r->it[0].rs[1].refusal_late_ns = 9 * MS;
    r->it[1].rs[0].refusal_late_ns = 3 * MS;
    r->it[1].rs[1].refusal_late_ns = 8 * MS; /* lingering: no refusal, not counted */
    r->it[0].rs[0].probe_late_ns = 1 * MS;
    ck_assert_int_eq(tt_drill_evaluate(r), 4);
    tt_drill_precision p;
    ck_assert_int_eq(tt_drill_get_precision(r, &p), 0);
    ck_assert_int_eq(p.probes, 3);
    ck_assert(fabs(p.late_p50_ms - 3) < 1e-9);
    ck_assert(fabs(p.late_p99_ms - 8.88) < 1e-9);
    ck_assert(fabs(p.late_max_ms - 9) < 1e-9);
    ck_assert_int_eq(p.windows, 3);
    ck_assert(fabs(p.window_p50_ms - 7) < 1e-9);
    ck_assert(fabs(p.window_p99_ms - 9.94) < 1e-9);
    ck_assert_int_eq(p.behind, 1); /* 8.88 >= 10 / 2 */

    json_t *j = tt_drill_report_json(r);
    ck_assert_ptr_nonnull(j);
    json_t *jp = json_object_get(j, "precision");
    ck_assert(json_is_true(json_object_get(jp, "behind")));
    ck_assert(fabs(json_real_value(json_object_get(jp, "window_p99_ms")) - 9.94) < 1e-6);
    json_t *m = json_object_get(json_object_get(j, "metrics"), "propagation_window_ms{slow}");
    ck_assert_int_eq(json_integer_value(json_object_get(m, "count")), 1);
    ck_assert(fabs(json_real_value(json_object_get(m, "max")) - 10) < 1e-6);
    m = json_object_get(json_object_get(j, "metrics"), "probe_lateness_ms{slow}");
    ck_assert_int_eq(json_integer_value(json_object_get(m, "count")), 1);
    json_t *it0 = json_array_get(json_object_get(j, "iterations"), 0);
    json_t *fast = json_object_get(json_object_get(it0, "resource_servers"), "fast");
    ck_assert(fabs(json_real_value(json_object_get(fast, "window_ms")) - 5) < 1e-6);
    ck_assert(fabs(json_real_value(json_object_get(fast, "probe_late_max_ms")) - 1) < 1e-6);
    ck_assert(fabs(json_real_value(json_object_get(fast, "refusal_late_ms")) - 1) < 1e-6);
    json_t *it1 = json_array_get(json_object_get(j, "iterations"), 1);
    json_t *slow = json_object_get(json_object_get(it1, "resource_servers"), "slow");
    ck_assert(json_is_null(json_object_get(slow, "window_ms")));
    json_decref(j);

    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    ck_assert_int_eq(tt_drill_report_html(r, fp), 0);
    fclose(fp);
    ck_assert(strstr(buf, "The drill fell behind its probe grid") != NULL);
    free(buf);

    /* within half the interval: not behind; no refusal timed: nothing known */
    r->it[0].rs[1].refusal_late_ns = 2 * MS;
    ck_assert_int_eq(tt_drill_evaluate(r), 4);
    ck_assert_int_eq(tt_drill_get_precision(r, &p), 0);
    ck_assert(fabs(p.late_p99_ms - 2.98) < 1e-9);
    ck_assert_int_eq(p.behind, 0);
    for (size_t i = 0; i < r->n_it; i++) {
        for (size_t k = 0; k < sc->n_rs; k++) {
            r->it[i].rs[k].refusal_late_ns = -1;
        }
    }
    ck_assert_int_eq(tt_drill_evaluate(r), 4);
    ck_assert_int_eq(tt_drill_get_precision(r, &p), 0);
    ck_assert_int_eq(p.probes, 0);
    ck_assert_int_eq(p.behind, 0);
    tt_drill_result_free(r);
    tt_scenario_free(sc);
}
END_TEST

static char *render(int (*fn)(const tt_drill_result *, FILE *), const tt_drill_result *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    ck_assert_int_eq(fn(r, fp), 0);
    fclose(fp);
    return buf;
}

/* The outcome every output shares. An iteration that ended in an error with
 * no `errors` threshold to judge it was reported as PASS in report.json, the
 * HTML badge and JUnit (exit status 2 only); an interrupted run likewise, with
 * phantom "eng 0 #0" iterations for those that never started. */
START_TEST(test_outcome)
{
    tt_scenario *sc = scenario_with("thresholds:\n  scope_widening: ['count <= 1']\n");
    tt_drill_result *r = result(sc);
    ck_assert_int_eq(tt_drill_evaluate(r), 0);
    ck_assert_int_eq(tt_drill_get_outcome(r), TT_DRILL_PASS);

    /* an unjudged error: ERROR everywhere */
    snprintf(r->it[1].error, sizeof(r->it[1].error), "token request: HTTP 401: bad client");
    ck_assert_int_eq(tt_drill_evaluate(r), 0);
    ck_assert_int_eq(tt_drill_get_outcome(r), TT_DRILL_ERROR);
    ck_assert_uint_eq(tt_drill_errors(r), 1);
    json_t *j = tt_drill_report_json(r);
    ck_assert_str_eq(json_string_value(json_object_get(j, "result")), "error");
    ck_assert_str_eq(json_string_value(json_object_get(j, "error")),
                     "1 of 2 iterations failed with an error; first: token request: HTTP 401: "
                     "bad client");
    json_decref(j);
    char *x = render(tt_drill_report_junit, r);
    ck_assert_ptr_nonnull(strstr(x, "tests=\"2\" failures=\"0\" errors=\"1\""));
    ck_assert_ptr_nonnull(strstr(x, "<error type=\"iteration\""));
    ck_assert_ptr_nonnull(strstr(x, "engineer 1, iteration 2: token request: HTTP 401"));
    free(x);
    x = render(tt_drill_report_html, r);
    ck_assert_ptr_nonnull(strstr(x, ">ERROR</span>"));
    ck_assert_ptr_null(strstr(x, ">PASS</span>"));
    free(x);

    /* judged by a threshold on errors: the threshold decides */
    tt_drill_result_free(r);
    tt_scenario_free(sc);
    sc = scenario_with("thresholds:\n  errors: ['count <= 1']\n");
    r = result(sc);
    snprintf(r->it[1].error, sizeof(r->it[1].error), "boom");
    ck_assert_int_eq(tt_drill_evaluate(r), 0);
    ck_assert_int_eq(tt_drill_get_outcome(r), TT_DRILL_PASS);

    /* interrupted before the second iteration started: ERROR, one iteration */
    r->it[1].error[0] = '\0';
    r->it[1].opened_ns = -1;
    r->interrupted = 1;
    tt_drill_result_drop_unstarted(r);
    ck_assert_uint_eq(r->n_it, 1);
    ck_assert_uint_eq(r->n_alloc, 2);
    ck_assert_int_eq(r->it[0].iteration, 1);
    ck_assert_int_eq(tt_drill_evaluate(r), 0);
    ck_assert_int_eq(tt_drill_get_outcome(r), TT_DRILL_ERROR);
    j = tt_drill_report_json(r);
    ck_assert_str_eq(json_string_value(json_object_get(j, "result")), "error");
    ck_assert(json_is_true(json_object_get(j, "interrupted")));
    ck_assert_int_eq((int)json_array_size(json_object_get(j, "iterations")), 1);
    json_decref(j);
    x = render(tt_drill_report_junit, r);
    ck_assert_ptr_nonnull(strstr(x, "<error type=\"interrupted\" message=\"interrupted by a "
                                    "signal: 1 of 2 iterations started\""));
    free(x);
    tt_drill_result_free(r); /* frees both iterations' server arrays (ASan) */
    tt_scenario_free(sc);
}
END_TEST

/* A server that refused the fresh token was never given access, so there is
 * no revocation to time there: it was probed anyway and a 0 ms propagation
 * passed `max < 1000`. */
START_TEST(test_not_probed)
{
    tt_scenario *sc = scenario();
    tt_drill_result *r = result(sc);
    r->it[0].rs[0].first_status = 401;
    r->it[0].rs[0].refused_ns = -1;
    r->it[0].rs[0].not_probed = 1;
    ck_assert_int_ge(tt_drill_evaluate(r), 0);
    double *v;
    long n = tt_series_collect(&r->series, "revocation_propagation_ms", "fast", &v);
    ck_assert_int_eq(n, 1); /* only the second iteration's */
    free(v);
    n = tt_series_collect(&r->series, "fresh_token_refused", "fast", &v);
    ck_assert_int_eq(n, 1);
    free(v);
    tt_drill_result_free(r);
    tt_scenario_free(sc);
}
END_TEST

START_TEST(test_junit_html)
{
    tt_scenario *sc = scenario();
    tt_drill_result *r = result(sc);
    tt_drill_evaluate(r);
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    ck_assert_int_eq(tt_drill_report_junit(r, fp), 0);
    fclose(fp);
    ck_assert(strstr(buf, "tests=\"8\" failures=\"4\"") != NULL);
    ck_assert(strstr(buf, "name=\"revocation_propagation_ms{slow} max &lt; 1000\"") != NULL);
    ck_assert(strstr(buf, "max = 8000.000 (2 samples); required max &lt; 1000") != NULL);
    free(buf);
    fp = open_memstream(&buf, &len);
    ck_assert_int_eq(tt_drill_report_html(r, fp), 0);
    fclose(fp);
    ck_assert(strstr(buf, "<svg") != NULL);
    ck_assert(strstr(buf, ">FAIL<") != NULL);
    ck_assert(strstr(buf, "<script") == NULL);
    free(buf);
    tt_drill_result_free(r);
    tt_scenario_free(sc);
}
END_TEST

Suite *tt_drill_report_suite(void)
{
    Suite *s = suite_create("drill_report");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_evaluate);
    tcase_add_test(tc, test_json);
    tcase_add_test(tc, test_precision);
    tcase_add_test(tc, test_outcome);
    tcase_add_test(tc, test_not_probed);
    tcase_add_test(tc, test_junit_html);
    suite_add_tcase(s, tc);
    return s;
}
