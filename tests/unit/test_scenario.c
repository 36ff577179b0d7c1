/* test_scenario.c - drill scenario loading: a full scenario, defaults, and
 * a table of broken scenarios, each with the file:line and message it must give. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "suites.h"
#include "tt_scenario.h"

#define NCASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

static char yaml_path[64], secret_path[64];

static void setup(void)
{
    snprintf(yaml_path, sizeof(yaml_path), "/tmp/tt_sc_%d.yaml", (int)getpid());
    snprintf(secret_path, sizeof(secret_path), "/tmp/tt_sc_%d.secret", (int)getpid());
    FILE *fp = fopen(secret_path, "w");
    ck_assert_ptr_nonnull(fp);
    fputs("s3cret-from-file\n", fp);
    fclose(fp);
    setenv("TT_SC_SECRET", "s3cret-from-env", 1);
    setenv("TT_SC_SECRET_FILE", secret_path, 1);
    setenv("TT_SC_AS", "http://127.0.0.1:9", 1);
    unsetenv("TT_SC_UNSET");
}

static void teardown(void)
{
    unlink(yaml_path);
    unlink(secret_path);
}

static void write_yaml(const char *text)
{
    FILE *fp = fopen(yaml_path, "w");
    ck_assert_ptr_nonnull(fp);
    fputs(text, fp);
    fclose(fp);
}

#define BASE_CLIENT                                                                                \
    "client:\n"                                                                                    \
    "  client_id: svc\n"                                                                           \
    "  client_secret_env: TT_SC_SECRET\n"
#define BASE_RS                                                                                    \
    "resource_servers:\n"                                                                          \
    "  - name: rs-a\n"                                                                             \
    "    url: http://127.0.0.1:1/api\n"

START_TEST(test_full)
{
    write_yaml("name: full\n"
               "authorization_server:\n"
               "  issuer: ${TT_SC_AS}\n"
               "  revocation_endpoint: ${TT_SC_AS}/revoke\n"
               "client:\n"
               "  client_id: svc\n"
               "  client_auth: client_secret_post\n"
               "  client_secret_file: ${TT_SC_SECRET_FILE}\n"
               "admin_client:\n"
               "  client_id: admin\n"
               "  client_secret_env: TT_SC_SECRET\n"
               "grant:\n"
               "  type: device_code\n"
               "  scope: [db:orders:read, db:orders:write]\n"
               "  resource: urn:x\n"
               "  approval:\n"
               "    url: ${TT_SC_AS}/lab/approve\n"
               "    token_file: ${TT_SC_SECRET_FILE}\n"
               BASE_RS
               "  - name: rs-b\n"
               "    url: http://127.0.0.1:2/api\n"
               "    method: POST\n"
               "    accept_status: 204\n"
               "end: {how: revoke}\n"
               "load:\n"
               "  engineers: 3\n"
               "  iterations: 4\n"
               "  probe_interval: 20ms\n"
               "  probe_timeout: 7s\n"
               "incident: {severity: sev1, services: [orders-db, api]}\n"
               "collector: {url: 'http://127.0.0.1:8088/v1/events'}\n"
               "thresholds:\n"
               "  time_to_token_ms: [\"p95 < 500\", \"max < 2000\"]\n"
               "  revocation_propagation_ms{rs-b}: \"max < 1000\"\n"
               "  lingering: [\"count == 0\"]\n"
               "  probe_lateness_ms: [\"p99 < 5\"]\n"
               "  propagation_window_ms{rs-a}: [\"p99 < 25\"]\n");
    char err[512] = "";
    tt_scenario *sc = tt_scenario_load(yaml_path, err, sizeof(err));
    ck_assert_msg(sc != NULL, "%s", err);
    ck_assert_str_eq(sc->name, "full");
    ck_assert_str_eq(sc->issuer, "http://127.0.0.1:9");
    ck_assert_str_eq(sc->revocation_endpoint, "http://127.0.0.1:9/revoke");
    ck_assert_str_eq(sc->client.secret, "s3cret-from-file");
    ck_assert_int_eq(sc->client.auth, TT_AUTH_POST);
    ck_assert_str_eq(sc->admin.secret, "s3cret-from-env");
    ck_assert_int_eq(sc->grant, TT_GRANT_DEVICE_CODE);
    ck_assert_str_eq(sc->scope, "db:orders:read db:orders:write");
    ck_assert_str_eq(sc->approval_token, "s3cret-from-file");
    ck_assert_int_eq((int)sc->n_rs, 2);
    ck_assert_str_eq(sc->rs[0].method, "GET");
    ck_assert_int_eq(sc->rs[0].accept_status, 200);
    ck_assert_str_eq(sc->rs[1].method, "POST");
    ck_assert_int_eq(sc->rs[1].accept_status, 204);
    ck_assert_int_eq(sc->engineers, 3);
    ck_assert_int_eq(sc->iterations, 4);
    ck_assert_int_eq(sc->probe_interval_ms, 20);
    ck_assert_int_eq(sc->probe_timeout_ms, 7000);
    ck_assert_int_eq((int)sc->n_services, 2);
    ck_assert_int_eq((int)sc->n_thr, 6);
    ck_assert_str_eq(sc->thr[4].metric, "probe_lateness_ms");
    ck_assert_ptr_null(sc->thr[4].tag);
    ck_assert_str_eq(sc->thr[5].metric, "propagation_window_ms");
    ck_assert_str_eq(sc->thr[5].tag, "rs-a");
    ck_assert_str_eq(sc->thr[1].text, "max < 2000");
    ck_assert_str_eq(sc->thr[2].metric, "revocation_propagation_ms");
    ck_assert_str_eq(sc->thr[2].tag, "rs-b");
    ck_assert_ptr_null(sc->thr[3].tag);
    ck_assert_int_eq(sc->thr[3].line, 37);
    tt_scenario_free(sc);
}
END_TEST

START_TEST(test_defaults)
{
    write_yaml("authorization_server: {token_endpoint: 'http://127.0.0.1:9/token',\n"
               "  revocation_endpoint: 'http://127.0.0.1:9/revoke'}\n" BASE_CLIENT BASE_RS);
    char err[512] = "";
    tt_scenario *sc = tt_scenario_load(yaml_path, err, sizeof(err));
    ck_assert_msg(sc != NULL, "%s", err);
    ck_assert_int_eq(sc->grant, TT_GRANT_CLIENT_CREDENTIALS);
    ck_assert_int_eq(sc->end, TT_END_REVOKE);
    ck_assert_int_eq(sc->client.auth, TT_AUTH_BASIC);
    ck_assert_int_eq(sc->engineers, 1);
    ck_assert_int_eq(sc->iterations, 1);
    ck_assert_int_eq(sc->probe_interval_ms, 10);
    ck_assert_int_eq(sc->probe_timeout_ms, 10000);
    ck_assert_str_eq(sc->name, yaml_path);
    ck_assert_str_eq(sc->incident_severity, "sev2");
    tt_scenario_free(sc);
    tt_scenario_free(NULL);
}
END_TEST

typedef struct {
    const char *yaml;
    const char *want; /* ":LINE: message" substring */
} bad_case;

#define AS "authorization_server: {issuer: 'http://127.0.0.1:9'}\n"

static const bad_case bad[] = {
    {AS BASE_CLIENT BASE_RS "colour: blue\n", ":8: unknown key 'colour' in the scenario"},
    {AS "client:\n  client_id: svc\n  client_secret: hunter2\n" BASE_RS,
     ":4: client_secret: inline secrets are not allowed"},
    {AS "client:\n  client_id: svc\n" BASE_RS, ":3: client: client_secret_env or"},
    {AS "client:\n  client_id: svc\n  client_secret_env: TT_SC_NOPE_NOT_SET\n" BASE_RS,
     ":4: client_secret_env: environment variable TT_SC_NOPE_NOT_SET is not set"},
    {AS "client:\n  client_id: svc\n  client_secret_file: /nonexistent/x\n" BASE_RS,
     ":4: client_secret_file: cannot read /nonexistent/x"},
    {AS BASE_CLIENT BASE_RS "grant: {type: password}\n", ":8: type: 'password' is not"},
    /* Regression: the cross-key errors below all said ":1:" instead of the
     * line of the key involved. */
    {AS BASE_CLIENT BASE_RS "grant: {type: device_code}\n",
     ":8: grant device_code needs grant.approval"},
    {AS BASE_CLIENT BASE_RS "name: x\ngrant:\n  scope: a\n  type: device_code\n",
     ":9: grant device_code needs grant.approval with url or command"},
    {AS BASE_CLIENT BASE_RS "grant: {type: token_exchange}\n",
     ":8: grant token_exchange needs grant.subject"},
    {AS BASE_CLIENT BASE_RS "name: x\ngrant:\n  scope: a\n  type: token_exchange\n",
     ":9: grant token_exchange needs grant.subject (the client whose token is exchanged)"},
    {AS BASE_CLIENT BASE_RS "name: x\nend: resolve_incident\n",
     ":9: end resolve_incident needs collector.url (the resolution is sent there)"},
    {AS BASE_CLIENT BASE_RS
     "load:\n  probe_interval: 20ms\n  engineers: 2\n  probe_timeout: 10ms\n",
     ":11: load: probe_timeout must be at least probe_interval"},
    {AS BASE_CLIENT BASE_RS "load:\n  engineers: 2\n  probe_interval: 20s\n",
     ":10: load: probe_timeout must be at least probe_interval"},
    {BASE_CLIENT BASE_RS "authorization_server:\n  introspection_endpoint: http://x/i\n",
     ":7: authorization_server: give issuer (for discovery) or token_endpoint"},
    {AS BASE_CLIENT BASE_RS "grant:\n  type: device_code\n  approval:\n    url: http://x/a\n"
     "    command: [approve]\n",
     ":12: grant.approval: give url or command, not both"},
    {AS "client:\n  client_id: svc\n  client_auth: none\n" BASE_RS,
     ":4: grant client_credentials needs a confidential client"},
    /* Regression: a missing revocation_endpoint with no issuer to discover it
     * from only failed at run time ("setup: end is revoke but ..."). */
    {"authorization_server:\n  token_endpoint: http://x/t\n" BASE_CLIENT BASE_RS,
     ":1: end revoke needs authorization_server.revocation_endpoint (there is no issuer for "
     "discovery)"},
    {"name: x\nauthorization_server:\n  token_endpoint: http://x/t\n" BASE_CLIENT BASE_RS
     "end: {how: revoke}\n",
     ":10: end revoke needs authorization_server.revocation_endpoint"},
    {"authorization_server:\n  token_endpoint: http://x/t\n  revocation_endpoint: http://x/r\n"
     BASE_CLIENT BASE_RS "grant:\n  type: device_code\n  approval: {url: 'http://x/a'}\n",
     ":11: grant device_code needs authorization_server.device_authorization_endpoint (there "
     "is no issuer for discovery)"},
    /* Regression: a bare number was read as seconds (probe_interval: 10 gave
     * 10 s where 10 ms was meant). */
    {AS BASE_CLIENT BASE_RS "load:\n  probe_timeout: 2\n",
     ":9: probe_timeout: '2' needs a unit (e.g. 10ms, 2s)"},
    {AS BASE_CLIENT BASE_RS "load:\n  engineers: 1\n  probe_interval: 10\n",
     ":10: probe_interval: '10' needs a unit (e.g. 10ms, 2s)"},
    {AS BASE_CLIENT BASE_RS "load: {ramp: 0}\n", ":8: ramp: '0' needs a unit"},
    /* Regression: only the first YAML document was read. */
    {AS BASE_CLIENT BASE_RS "---\nname: two\n", ":8: more than one YAML document"},
    {"---\n" AS BASE_CLIENT BASE_RS "---\nload: {probe_timeout: 5ms}\n",
     ":9: more than one YAML document"},
    {AS BASE_CLIENT BASE_RS "---\nname: [\n", ":10:1: YAML error"},
    {AS BASE_CLIENT BASE_RS "load: {probe_interval: fast}\n", ":8: probe_interval: expected a duration"},
    {AS BASE_CLIENT BASE_RS "load: {engineers: 0}\n", ":8: engineers: expected an integer from 1"},
    {AS BASE_CLIENT BASE_RS "load: {engineers: 2, speed: 3}\n", "unknown key 'speed' in load"},
    {AS BASE_CLIENT BASE_RS "thresholds:\n  time_to_token_ms: [\"p95 <\"]\n",
     ":9: threshold time_to_token_ms: 'p95 <': expected a number"},
    {AS BASE_CLIENT BASE_RS "thresholds:\n  latency_ms: [\"p95 < 5\"]\n",
     ":9: threshold 'latency_ms': unknown metric"},
    {AS BASE_CLIENT BASE_RS "thresholds:\n  revocation_propagation_ms{rs-zzz}: [\"max < 5\"]\n",
     "no resource server named 'rs-zzz'"},
    {AS BASE_CLIENT BASE_RS "thresholds:\n  time_to_token_ms{rs-a}: [\"max < 5\"]\n",
     "time_to_token_ms is not per resource server"},
    {AS BASE_CLIENT "resource_servers: []\n", "resource_servers: give at least one"},
    {AS BASE_CLIENT BASE_RS "  - name: rs-a\n    url: http://x/\n", ":8: resource server name 'rs-a' used twice"},
    {AS BASE_CLIENT "resource_servers:\n  - name: a b\n    url: http://x/\n", ":6: name: 1-63"},
    {AS BASE_CLIENT "resource_servers:\n  - name: a\n    url: ftp://x/\n", ":7: url: expected an http"},
    {"authorization_server: {issuer: '${TT_SC_UNSET}'}\n" BASE_CLIENT BASE_RS,
     ":1: issuer: environment variable TT_SC_UNSET is not set"},
    {BASE_CLIENT BASE_RS, "give issuer (for discovery) or token_endpoint"},
    {AS BASE_CLIENT BASE_RS "end: vanish\n", ":8: how: 'vanish' is not revoke"},
    {AS BASE_CLIENT BASE_RS "end: resolve_incident\n",
     ":8: end resolve_incident needs collector.url"},
    {AS BASE_CLIENT BASE_RS "name: a\nname: b\n", ":9: the scenario: duplicate key 'name'"},
    {AS BASE_CLIENT BASE_RS "grant: [1, 2\n", "YAML"},
    {"", ":1: the file is empty"},
    {"- a\n- b\n", ":1: the scenario: expected a mapping"},
    {AS BASE_CLIENT BASE_RS "collector: {url: 'http://x', token: abc}\n",
     "token: inline secrets are not allowed"},
};

START_TEST(test_bad)
{
    const bad_case *c = &bad[_i];
    write_yaml(c->yaml);
    char err[768] = "";
    tt_scenario *sc = tt_scenario_load(yaml_path, err, sizeof(err));
    ck_assert_msg(sc == NULL, "case %d accepted", _i);
    ck_assert_msg(strstr(err, c->want) != NULL, "case %d: '%s' lacks '%s'", _i, err, c->want);
    ck_assert_msg(strncmp(err, yaml_path, strlen(yaml_path)) == 0, "case %d: no file: %s", _i,
                  err);
    ck_assert_msg(strstr(err, "hunter2") == NULL, "a secret leaked into: %s", err);
}
END_TEST

START_TEST(test_missing_file)
{
    char err[256];
    ck_assert_ptr_null(tt_scenario_load("/nonexistent/drill.yaml", err, sizeof(err)));
    ck_assert(strstr(err, "/nonexistent/drill.yaml: cannot open") != NULL);
}
END_TEST

Suite *tt_scenario_suite(void)
{
    Suite *s = suite_create("scenario");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_full);
    tcase_add_test(tc, test_defaults);
    tcase_add_loop_test(tc, test_bad, 0, NCASES(bad));
    tcase_add_test(tc, test_missing_file);
    suite_add_tcase(s, tc);
    return s;
}
