/* test_drill_prom.c - report.json to node_exporter textfile metrics: the
 * samples, carrying the last success and other scenarios forward, escaping,
 * errors that name the missing field, the atomic file write, and a report
 * made by the real tt_drill_report_json. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "suites.h"
#include "tt_drill_prom.h"
#include "tt_drill_report.h"

/* The fields the converter reads, as tt_drill_report_json writes them. */
#define REPORT                                                                                     \
    "{\"run_id\":\"drill-1\",\"result\":\"%s\","                                                   \
    "\"started_at\":\"2026-11-22T07:47:51.000Z\",\"finished_at\":\"2026-11-22T07:48:11.250Z\","    \
    "\"duration_ms\":20250,"                                                                       \
    "\"scenario\":{\"name\":\"\",\"resource_servers\":[{\"name\":\"rs-a\"},{\"name\":\"rs-b\"}]}," \
    "\"metrics\":{"                                                                                \
    "\"revocation_propagation_ms{rs-a}\":{\"count\":2,\"min\":5.0,\"max\":7.0,\"avg\":6.0,"        \
    "\"p50\":6.0,\"p90\":6.8,\"p95\":6.9,\"p99\":6.98},"                                           \
    "\"lingering{rs-a}\":{\"count\":0},"                                                           \
    "\"revocation_propagation_ms{rs-b}\":{\"count\":0},"                                           \
    "\"lingering{rs-b}\":{\"count\":1,\"min\":8000.0,\"max\":8000.0}},"                            \
    "\"thresholds\":[{\"metric\":\"lingering\",\"pass\":true},"                                    \
    "{\"metric\":\"revocation_propagation_ms\",\"pass\":%s}],"                                     \
    "\"thresholds_failed\":%d,\"iterations\":[{},{}],\"iterations_with_errors\":%d}"

static json_t *report(const char *scenario, int pass, int errors)
{
    char text[4096];
    snprintf(text, sizeof(text), REPORT, pass ? "pass" : "fail", pass ? "true" : "false",
             pass ? 0 : 1, errors);
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    ck_assert_msg(j != NULL, "test report: %s", je.text);
    json_object_set_new(json_object_get(j, "scenario"), "name", json_string(scenario));
    return j;
}

/* Render and return the text (caller frees); fails the test on error. */
static char *render(const json_t *r, const char *previous)
{
    tt_buf b;
    tt_buf_init(&b, TT_DRILL_PROM_MAX_FILE);
    char err[256] = "";
    ck_assert_msg(tt_drill_prom_render(r, previous, &b, err, sizeof(err)) == 0, "%s", err);
    return tt_buf_detach(&b);
}

#define HAS(text, line)                                                                            \
    ck_assert_msg(strstr((text), (line)) != NULL, "missing: %s\nin:\n%s", (line), (text))
#define HASNT(text, line)                                                                          \
    ck_assert_msg(strstr((text), (line)) == NULL, "unexpected: %s\nin:\n%s", (line), (text))

START_TEST(test_passed_run)
{
    json_t *r = report("lab-revoke", 1, 0);
    char *t = render(r, NULL);
    HAS(t, "# TYPE tokentrail_drill_last_run_timestamp_seconds gauge\n");
    HAS(t,
        "\ntokentrail_drill_last_run_timestamp_seconds{scenario=\"lab-revoke\"} 1795333691.250\n");
    HAS(t, "\ntokentrail_drill_last_success_timestamp_seconds{scenario=\"lab-revoke\"} "
           "1795333691.250\n");
    HAS(t, "\ntokentrail_drill_passed{scenario=\"lab-revoke\"} 1\n");
    HAS(t, "\ntokentrail_drill_thresholds{scenario=\"lab-revoke\"} 2\n");
    HAS(t, "\ntokentrail_drill_thresholds_failed{scenario=\"lab-revoke\"} 0\n");
    HAS(t, "\ntokentrail_drill_iterations{scenario=\"lab-revoke\"} 2\n");
    HAS(t, "\ntokentrail_drill_iterations_with_errors{scenario=\"lab-revoke\"} 0\n");
    HAS(t, "\ntokentrail_drill_duration_seconds{scenario=\"lab-revoke\"} 20.25\n");
    HAS(t, "\ntokentrail_drill_revocation_propagation_seconds{scenario=\"lab-revoke\","
           "resource_server=\"rs-a\",quantile=\"0.5\"} 0.006\n");
    HAS(t, "\ntokentrail_drill_revocation_propagation_seconds{scenario=\"lab-revoke\","
           "resource_server=\"rs-a\",quantile=\"0.99\"} 0.00698\n");
    HAS(t, "\ntokentrail_drill_revocation_propagation_seconds{scenario=\"lab-revoke\","
           "resource_server=\"rs-a\",quantile=\"1\"} 0.007\n");
    HAS(t, "\ntokentrail_drill_revocation_propagation_seconds_count{scenario=\"lab-revoke\","
           "resource_server=\"rs-a\"} 2\n");
    HAS(t, "\ntokentrail_drill_revocation_propagation_seconds_sum{scenario=\"lab-revoke\","
           "resource_server=\"rs-a\"} 0.012\n");
    HAS(t, "# TYPE tokentrail_drill_revocation_propagation_seconds summary\n");
    /* no measurement on rs-b: a count of 0 and no quantiles */
    HAS(t, "\ntokentrail_drill_revocation_propagation_seconds_count{scenario=\"lab-revoke\","
           "resource_server=\"rs-b\"} 0\n");
    HASNT(t, "resource_server=\"rs-b\",quantile");
    HAS(t, "\ntokentrail_drill_lingering_tokens{scenario=\"lab-revoke\",resource_server=\"rs-b\"} "
           "1\n");
    HAS(t, "\ntokentrail_drill_lingering_tokens{scenario=\"lab-revoke\",resource_server=\"rs-a\"} "
           "0\n");
    /* every family declared once, each line ends with a newline */
    ck_assert_ptr_eq(
        strstr(strstr(t, "# TYPE tokentrail_drill_passed ") + 1, "# TYPE tokentrail_drill_passed "),
        NULL);
    ck_assert_int_eq(t[strlen(t) - 1], '\n');
    free(t);
    json_decref(r);
}
END_TEST

START_TEST(test_failed_run_keeps_last_success_and_other_scenarios)
{
    json_t *ok = report("lab-revoke", 1, 0);
    json_t *other = report("lab-nocache", 0, 0);
    char *t1 = render(ok, NULL);
    char *t2 = render(other, t1); /* another scenario fails: never passed */
    HAS(t2, "\ntokentrail_drill_last_success_timestamp_seconds{scenario=\"lab-nocache\"} 0.000\n");
    HAS(t2, "\ntokentrail_drill_passed{scenario=\"lab-nocache\"} 0\n");
    HAS(t2, "\ntokentrail_drill_passed{scenario=\"lab-revoke\"} 1\n");

    /* lab-revoke now fails, a day later: its last success stays */
    json_t *bad = report("lab-revoke", 0, 0);
    json_object_set_new(bad, "finished_at", json_string("2026-11-23T07:48:11.250Z"));
    char *t3 = render(bad, t2);
    HAS(t3, "\ntokentrail_drill_last_run_timestamp_seconds{scenario=\"lab-revoke\"} "
            "1795420091.250\n");
    HAS(t3, "\ntokentrail_drill_last_success_timestamp_seconds{scenario=\"lab-revoke\"} "
            "1795333691.250\n");
    HAS(t3, "\ntokentrail_drill_passed{scenario=\"lab-revoke\"} 0\n");
    HAS(t3, "\ntokentrail_drill_thresholds_failed{scenario=\"lab-revoke\"} 1\n");
    HASNT(t3, "\ntokentrail_drill_passed{scenario=\"lab-revoke\"} 1\n");
    /* the other scenario is untouched, its summary's _count included */
    HAS(t3, "\ntokentrail_drill_passed{scenario=\"lab-nocache\"} 0\n");
    HAS(t3, "\ntokentrail_drill_revocation_propagation_seconds_count{scenario=\"lab-nocache\","
            "resource_server=\"rs-a\"} 2\n");
    /* lab-revoke's own lines were replaced, not repeated */
    char *c = strstr(t3, "_count{scenario=\"lab-revoke\",resource_server=\"rs-a\"}");
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_null(strstr(c + 1, "_count{scenario=\"lab-revoke\",resource_server=\"rs-a\"}"));
    HAS(t3, "\ntokentrail_drill_last_success_timestamp_seconds{scenario=\"lab-nocache\"} 0.000\n");
    /* and its run again fails: still the same last success */
    char *t4 = render(bad, t3);
    HAS(t4, "\ntokentrail_drill_last_success_timestamp_seconds{scenario=\"lab-revoke\"} "
            "1795333691.250\n");
    ck_assert_str_eq(t4, t3);
    free(t1);
    free(t2);
    free(t3);
    free(t4);
    json_decref(ok);
    json_decref(other);
    json_decref(bad);
}
END_TEST

START_TEST(test_unjudged_errors_fail)
{
    /* result "pass", but an iteration ended in an error and no threshold
     * judges `errors`: `drill run` exits 2, so this is not a pass */
    json_t *r = report("s", 1, 1);
    char *t = render(r, NULL);
    HAS(t, "\ntokentrail_drill_passed{scenario=\"s\"} 0\n");
    HAS(t, "\ntokentrail_drill_last_success_timestamp_seconds{scenario=\"s\"} 0.000\n");
    free(t);
    /* with a threshold on errors the thresholds decide */
    json_array_append_new(json_object_get(r, "thresholds"), json_pack("{s:s}", "metric", "errors"));
    t = render(r, NULL);
    HAS(t, "\ntokentrail_drill_passed{scenario=\"s\"} 1\n");
    free(t);
    json_decref(r);
}
END_TEST

START_TEST(test_escaping_round_trip)
{
    const char *name = "we\"ird\\name\nx";
    json_t *ok = report(name, 1, 0);
    char *t1 = render(ok, "junk line\n# comment\nnot_ours{scenario=\"x\"} 1\n");
    HAS(t1, "\ntokentrail_drill_passed{scenario=\"we\\\"ird\\\\name\\nx\"} 1\n");
    HASNT(t1, "junk");
    HASNT(t1, "not_ours");
    json_t *bad = report(name, 0, 0);
    char *t2 = render(bad, t1);
    /* the escaped name was read back: one scenario, success carried over */
    HAS(t2, "\ntokentrail_drill_passed{scenario=\"we\\\"ird\\\\name\\nx\"} 0\n");
    HAS(t2, "\ntokentrail_drill_last_success_timestamp_seconds{scenario=\"we\\\"ird\\\\name\\nx\"} "
            "1795333691.250\n");
    HASNT(t2, "} 1\ntokentrail_drill_passed");
    free(t1);
    free(t2);
    json_decref(ok);
    json_decref(bad);
}
END_TEST

START_TEST(test_missing_fields_are_named)
{
    static const struct {
        const char *parent, *key, *want;
    } cases[] = {
        {NULL, "result", "missing field 'result'"},
        {NULL, "finished_at", "missing field 'finished_at'"},
        {NULL, "thresholds_failed", "missing field 'thresholds_failed'"},
        {NULL, "iterations_with_errors", "missing field 'iterations_with_errors'"},
        {NULL, "thresholds", "missing field 'thresholds'"},
        {NULL, "metrics", "missing field 'metrics'"},
        {NULL, "scenario", "missing field 'scenario'"},
        {"scenario", "name", "missing field 'scenario.name'"},
        {"scenario", "resource_servers", "missing field 'scenario.resource_servers'"},
        {"metrics", "revocation_propagation_ms{rs-b}",
         "missing field 'metrics.revocation_propagation_ms{rs-b}'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *r = report("s", 1, 0);
        json_t *o = cases[i].parent ? json_object_get(r, cases[i].parent) : r;
        ck_assert_int_eq(json_object_del(o, cases[i].key), 0);
        tt_buf b;
        tt_buf_init(&b, TT_DRILL_PROM_MAX_FILE);
        char err[256] = "";
        ck_assert_int_eq(tt_drill_prom_render(r, NULL, &b, err, sizeof(err)), -1);
        ck_assert_str_eq(err, cases[i].want);
        tt_buf_free(&b);
        json_decref(r);
    }
    static const struct {
        const char *key, *want;
    } bad[] = {
        {"result", "field 'result': expected \"pass\", \"fail\" or \"error\", got \"maybe\""},
        {"finished_at", "field 'finished_at': not an RFC 3339 timestamp"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *r = report("s", 1, 0);
        json_object_set_new(r, bad[i].key, json_string(i == 0 ? "maybe" : "yesterday"));
        tt_buf b;
        tt_buf_init(&b, TT_DRILL_PROM_MAX_FILE);
        char err[256] = "";
        ck_assert_int_eq(tt_drill_prom_render(r, NULL, &b, err, sizeof(err)), -1);
        ck_assert_str_eq(err, bad[i].want);
        tt_buf_free(&b);
        json_decref(r);
    }
    /* a present count of the wrong type */
    json_t *r = report("s", 1, 0);
    json_object_set_new(
        json_object_get(json_object_get(r, "metrics"), "revocation_propagation_ms{rs-a}"), "count",
        json_string("2"));
    tt_buf b;
    tt_buf_init(&b, TT_DRILL_PROM_MAX_FILE);
    char err[256] = "";
    ck_assert_int_eq(tt_drill_prom_render(r, NULL, &b, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "field 'metrics.revocation_propagation_ms{rs-a}.count': not a "
                          "non-negative integer");
    tt_buf_free(&b);
    json_decref(r);
}
END_TEST

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

START_TEST(test_write_files)
{
    char dir[] = "/tmp/tt_dp_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char rpath[128], tpath[128], err[512];
    snprintf(rpath, sizeof(rpath), "%s/report.json", dir);
    snprintf(tpath, sizeof(tpath), "%s/tokentrail_drill.prom", dir);

    /* missing report: the error names it */
    ck_assert_int_eq(tt_drill_prom_write(rpath, tpath, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, rpath));

    json_t *r = report("lab-revoke", 1, 0);
    ck_assert_int_eq(json_dump_file(r, rpath, 0), 0);
    ck_assert_msg(tt_drill_prom_write(rpath, tpath, err, sizeof(err)) == 0, "%s", err);
    HAS(slurp(tpath), "\ntokentrail_drill_passed{scenario=\"lab-revoke\"} 1\n");
    struct stat st;
    ck_assert_int_eq(stat(tpath, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0644);

    /* failed run via the parsed-object entry point keeps the success time */
    json_t *bad = report("lab-revoke", 0, 0);
    ck_assert_msg(tt_drill_prom_write_json(bad, tpath, err, sizeof(err)) == 0, "%s", err);
    char *t = slurp(tpath);
    HAS(t, "\ntokentrail_drill_passed{scenario=\"lab-revoke\"} 0\n");
    HAS(t, "\ntokentrail_drill_last_success_timestamp_seconds{scenario=\"lab-revoke\"} "
           "1795333691.250\n");

    /* a broken report leaves the textfile as it was */
    json_object_del(bad, "result");
    ck_assert_int_eq(tt_drill_prom_write_json(bad, tpath, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "report: missing field 'result'");
    FILE *fp = fopen(rpath, "w");
    fputs("{\"result\":", fp);
    fclose(fp);
    ck_assert_int_eq(tt_drill_prom_write(rpath, tpath, err, sizeof(err)), -1);
    ck_assert_msg(strncmp(err, rpath, strlen(rpath)) == 0 && strstr(err, "not JSON"), "%s", err);
    HAS(slurp(tpath), "\ntokentrail_drill_passed{scenario=\"lab-revoke\"} 0\n");

    /* no temporary file is left behind */
    DIR *d = opendir(dir);
    struct dirent *e;
    int files = 0;
    for (e = readdir(d); e != NULL; e = readdir(d)) {
        if (e->d_name[0] != '.') {
            files++;
            ck_assert_msg(strcmp(e->d_name, "report.json") == 0 ||
                              strcmp(e->d_name, "tokentrail_drill.prom") == 0,
                          "left over: %s", e->d_name);
        }
    }
    closedir(d);
    ck_assert_int_eq(files, 2);

    /* an unwritable directory is an error, not a crash */
    ck_assert_int_eq(tt_drill_prom_write_json(r, "/nonexistent-dir/x.prom", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent-dir/x.prom"));

    unlink(rpath);
    unlink(tpath);
    rmdir(dir);
    json_decref(r);
    json_decref(bad);
}
END_TEST

/* The converter reads what the real report writer writes. */
START_TEST(test_real_report)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/tt_dp_%d.yaml", (int)getpid());
    FILE *fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fputs("name: unit-prom\n"
          "authorization_server: {token_endpoint: 'http://127.0.0.1:9/token',\n"
          "  revocation_endpoint: 'http://127.0.0.1:9/revoke'}\n"
          "client: {client_id: svc, client_secret_env: TT_DP_SECRET}\n"
          "grant: {scope: a}\n"
          "resource_servers:\n"
          "  - {name: fast, url: 'http://127.0.0.1:1/'}\n"
          "load: {engineers: 1, iterations: 1}\n"
          "thresholds:\n"
          "  revocation_propagation_ms{fast}: ['max < 1000']\n",
          fp);
    fclose(fp);
    setenv("TT_DP_SECRET", "x", 1);
    char err[512];
    tt_scenario *sc = tt_scenario_load(path, err, sizeof(err));
    unlink(path);
    ck_assert_msg(sc != NULL, "%s", err);
    tt_drill_result *r = tt_drill_result_new(sc, 1);
    ck_assert_ptr_nonnull(r);
    snprintf(r->run_id, sizeof(r->run_id), "drill-unit");
    r->started_ms = 1795333671000;
    r->finished_ms = r->started_ms + 2000;
    tt_drill_iter *a = &r->it[0];
    a->engineer = a->iteration = 1;
    a->opened_ns = a->token_req_ns = 0;
    a->token_ns = 10 * 1000000LL;
    a->end_ns = 100 * 1000000LL;
    a->rs[0].first_use_ns = 12 * 1000000LL;
    a->rs[0].first_status = 200;
    a->rs[0].refused_ns = 105 * 1000000LL;
    a->active_after_end = 0;
    ck_assert_int_eq(tt_drill_evaluate(r), 0);
    json_t *j = tt_drill_report_json(r);
    ck_assert_ptr_nonnull(j);
    char *t = render(j, NULL);
    HAS(t, "\ntokentrail_drill_passed{scenario=\"unit-prom\"} 1\n");
    HAS(t, "\ntokentrail_drill_last_run_timestamp_seconds{scenario=\"unit-prom\"} "
           "1795333673.000\n");
    HAS(t, "\ntokentrail_drill_revocation_propagation_seconds{scenario=\"unit-prom\","
           "resource_server=\"fast\",quantile=\"1\"} 0.005\n");
    HAS(t, "\ntokentrail_drill_revocation_propagation_seconds_count{scenario=\"unit-prom\","
           "resource_server=\"fast\"} 1\n");
    HAS(t, "\ntokentrail_drill_iterations{scenario=\"unit-prom\"} 1\n");
    free(t);
    json_decref(j);
    tt_drill_result_free(r);
    tt_scenario_free(sc);
}
END_TEST

Suite *tt_drill_prom_suite(void)
{
    Suite *s = suite_create("drill_prom");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_passed_run);
    tcase_add_test(tc, test_failed_run_keeps_last_success_and_other_scenarios);
    tcase_add_test(tc, test_unjudged_errors_fail);
    tcase_add_test(tc, test_escaping_round_trip);
    tcase_add_test(tc, test_missing_fields_are_named);
    tcase_add_test(tc, test_write_files);
    tcase_add_test(tc, test_real_report);
    suite_add_tcase(s, tc);
    return s;
}
