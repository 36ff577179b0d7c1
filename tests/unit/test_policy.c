/* test_policy.c - policy files: a full example, defaults, and precise
 * errors with file:line for bad files. */
#include <string.h>

#include "suites.h"
#include "tt_policy.h"

static const char example[] =
    "scopes:\n"
    "  - {name: db:orders:read,  service: orders-db, access: read,  max_ttl: 1h}\n"
    "  - {name: db:orders:write, service: orders-db, access: write, max_ttl: 15m}\n"
    "  - name: db:billing:admin\n"
    "    service: billing-db\n"
    "    access: admin\n"
    "clients:\n"
    "  oncall-cli: {allowed_scopes: [db:orders:write, db:orders:read], refresh_tokens: false}\n"
    "  ci-bot: {allowed_scopes: [db:orders:read], refresh_tokens: true}\n"
    "  other: {allowed_scopes: []}\n"
    "defaults: {max_ttl: 30m, refresh_tokens: false, revocation_grace: 5s, incident_grace: 5m,"
    " idle_after: 30m}\n";

START_TEST(policy_example)
{
    char err[512] = "";
    tt_policy *p = tt_policy_parse(example, strlen(example), "policy.yaml", err, sizeof(err));
    ck_assert_msg(p != NULL, "%s", err);
    ck_assert_uint_eq(p->n_scopes, 3);
    ck_assert_uint_eq(p->n_clients, 3);
    const tt_policy_scope *w = tt_policy_scope_find(p, "db:orders:write");
    ck_assert_ptr_nonnull(w);
    ck_assert_str_eq(w->service, "orders-db");
    ck_assert_int_eq(w->access, TT_ACCESS_WRITE);
    ck_assert_int_eq(w->max_ttl_ms, 15 * 60000);
    ck_assert_int_eq(tt_policy_scope_find(p, "db:billing:admin")->access, TT_ACCESS_ADMIN);
    ck_assert_ptr_null(tt_policy_scope_find(p, "db:nope"));
    /* scope without max_ttl and unknown scopes fall back to defaults.max_ttl */
    ck_assert_int_eq(tt_policy_scope_ttl(p, "db:billing:admin"), 30 * 60000);
    ck_assert_int_eq(tt_policy_scope_ttl(p, "db:nope"), 30 * 60000);
    ck_assert_int_eq(tt_policy_scope_ttl(p, "db:orders:read"), 3600000);
    const tt_policy_client *c = tt_policy_client_find(p, "oncall-cli");
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(tt_policy_client_allows(c, "db:orders:read"), 1);
    ck_assert_int_eq(tt_policy_client_allows(c, "db:billing:admin"), 0);
    ck_assert_int_eq(tt_policy_refresh_allowed(p, "oncall-cli"), 0);
    ck_assert_int_eq(tt_policy_refresh_allowed(p, "ci-bot"), 1);
    ck_assert_int_eq(tt_policy_refresh_allowed(p, "unknown"), 0);
    ck_assert_int_eq(tt_policy_client_allows(tt_policy_client_find(p, "other"), "db:orders:read"),
                     0);
    ck_assert_int_eq(p->defaults.revocation_grace_ms, 5000);
    ck_assert_int_eq(p->defaults.incident_grace_ms, 300000);
    ck_assert_int_eq(p->defaults.idle_after_ms, 1800000);
    tt_policy_free(p);
}
END_TEST

START_TEST(policy_defaults_only)
{
    char err[512] = "";
    const char *text = "scopes: []\n";
    tt_policy *p = tt_policy_parse(text, strlen(text), "p.yaml", err, sizeof(err));
    ck_assert_msg(p != NULL, "%s", err);
    ck_assert_int_eq(p->defaults.max_ttl_ms, 3600000);
    ck_assert_int_eq(p->defaults.revocation_grace_ms, 5000);
    ck_assert_int_eq(p->defaults.incident_grace_ms, 300000);
    ck_assert_int_eq(p->defaults.idle_after_ms, 1800000);
    ck_assert_int_eq(p->defaults.refresh_tokens, 0);
    tt_policy_free(p);
    tt_policy_free(NULL);
}
END_TEST

static const struct {
    const char *text;
    const char *expect; /* substring of the error */
} bad[] = {
    {"scopez: []\n", "policy.yaml:1: unknown key 'scopez'"},
    {"scopes:\n  - {name: a, service: s, max_ttl: soon}\n",
     "policy.yaml:2: max_ttl: not a duration"},
    {"scopes:\n  - {name: a, service: s}\n  - {name: b, service: s, access: rw}\n",
     "policy.yaml:3: scope 'b': access must be read, write or admin"},
    {"scopes:\n  - {name: a, service: s}\nclients:\n  c1: {allowed_scopes: [a, zz]}\n",
     "policy.yaml:4: client 'c1': allowed scope 'zz' is not in scopes"},
    {"scopes:\n  - {name: a, service: s}\n  - {name: a, service: t}\n",
     "policy.yaml:3: scope 'a' is listed twice"},
    {"scopes:\n  - {name: a}\n", "policy.yaml:2: scope 'a': service is required"},
    {"scopes:\n  - {service: s}\n", "policy.yaml:2: scopes: entry without a name"},
    {"scopes:\n  - {name: a, service: s, colour: red}\n", "policy.yaml:2: unknown key 'colour'"},
    {"defaults:\n  max_ttl: 1h\n  max_ttl: 2h\n", "policy.yaml:3: duplicate key 'max_ttl'"},
    {"defaults:\n  idle_after: -5m\n", "policy.yaml:2: idle_after: not a duration"},
    {"defaults:\n  refresh_tokens: maybe\n", "policy.yaml:2: refresh_tokens: not a boolean"},
    {"scopes: [\n", "policy.yaml:2:1: YAML error"},
    {"clients:\n  c1: [a]\n", "policy.yaml:2: client 'c1': expected a mapping"},
    {"scopes: {name: a}\n", "policy.yaml:1: scopes: expected a list"},
    {"scopes:\n  - {name: \"a b\", service: s}\n", "policy.yaml:2: scope 'a b': invalid scope"},
    {"- a\n- b\n", "policy.yaml:1: the top level must be a mapping"},
    {"", "policy.yaml:1: empty policy"},
    /* Regression: a second document was silently ignored. */
    {"scopes: []\n---\nfoo: bar\n", "policy.yaml:2: more than one YAML document"},
    {"scopes: []\n---\nfoo: [\n", "policy.yaml:4:1: YAML error"},
    /* Regression: in block style these named the line where the entry's
     * mapping began (5 and 2), not the offending value. */
    {"scopes:\n  - {name: db:orders:read, service: orders-db}\nclients:\n  a:\n"
     "    allowed_scopes:\n      - db:orders:read\n      - db:orders:nope\n",
     "policy.yaml:7: client 'a': allowed scope 'db:orders:nope' is not in scopes"},
    {"scopes:\n  - name: a\n    service: s\n    access: writ\n",
     "policy.yaml:4: scope 'a': access must be read, write or admin"},
    {"scopes:\n  - {name: a, service: s}\nclients:\n  c:\n    refresh_tokens: true\n"
     "    allowed_scopes:\n      - a\n      - a\n",
     "policy.yaml:8: client 'c': allowed scope 'a' is listed twice"},
    {"scopes:\n  - service: s\n    name: \"a b\"\n", "policy.yaml:3: scope 'a b': invalid scope"},
    {"scopes:\n  - {name: a, service: s}\n  - service: t\n    name: a\n",
     "policy.yaml:4: scope 'a' is listed twice"},
    {"scopes:\n  - name: a\n    service: s\n    max_ttl:\n      x: 1\n",
     "policy.yaml:4: max_ttl: expected a single value, not a mapping"},
};

START_TEST(policy_errors)
{
    char err[512] = "";
    tt_policy *p =
        tt_policy_parse(bad[_i].text, strlen(bad[_i].text), "policy.yaml", err, sizeof(err));
    ck_assert_ptr_null(p);
    ck_assert_msg(strstr(err, bad[_i].expect) != NULL, "case %d: expected '%s' in '%s'", _i,
                  bad[_i].expect, err);
}
END_TEST

START_TEST(policy_load_missing_file)
{
    char err[512] = "";
    ck_assert_ptr_null(tt_policy_load("/nonexistent/policy.yaml", err, sizeof(err)));
    ck_assert_msg(strstr(err, "/nonexistent/policy.yaml: cannot open") != NULL, "%s", err);
}
END_TEST

Suite *tt_policy_suite(void)
{
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, policy_example);
    tcase_add_test(tc, policy_defaults_only);
    tcase_add_loop_test(tc, policy_errors, 0, (int)(sizeof(bad) / sizeof(bad[0])));
    tcase_add_test(tc, policy_load_missing_file);
    suite_add_tcase(s, tc);
    return s;
}
