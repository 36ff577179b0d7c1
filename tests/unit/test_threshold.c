/* test_threshold.c - table-driven Check suite for tt_threshold: expression
 * parsing, evaluation, percentile math and sample series. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "suites.h"
#include "tt_threshold.h"

#define NCASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef struct {
    const char *in;
    tt_agg agg;
    double pct;
    tt_cmp op;
    double bound;
} parse_ok_case;

static const parse_ok_case parse_ok[] = {
    {"p95 < 500", TT_AGG_PCT, 95, TT_CMP_LT, 500},
    {"p(99.9)<=20", TT_AGG_PCT, 99.9, TT_CMP_LE, 20},
    {"p50>1", TT_AGG_PCT, 50, TT_CMP_GT, 1},
    {"  p90 >= 0.5  ", TT_AGG_PCT, 90, TT_CMP_GE, 0.5},
    {"max < 1000", TT_AGG_MAX, 0, TT_CMP_LT, 1000},
    {"min > -3", TT_AGG_MIN, 0, TT_CMP_GT, -3},
    {"avg != 7", TT_AGG_AVG, 0, TT_CMP_NE, 7},
    {"count == 0", TT_AGG_COUNT, 0, TT_CMP_EQ, 0},
    {"med < 5", TT_AGG_PCT, 50, TT_CMP_LT, 5},
    {"p99 < 1e3", TT_AGG_PCT, 99, TT_CMP_LT, 1000},
    {"p0 >= 0", TT_AGG_PCT, 0, TT_CMP_GE, 0},
    {"p100 <= 10", TT_AGG_PCT, 100, TT_CMP_LE, 10},
};

START_TEST(test_parse_ok)
{
    const parse_ok_case *c = &parse_ok[_i];
    tt_threshold_expr e;
    char err[256];
    ck_assert_msg(tt_threshold_parse(c->in, &e, err, sizeof(err)) == 0, "%s: %s", c->in, err);
    ck_assert_int_eq(e.agg, c->agg);
    ck_assert_int_eq(e.op, c->op);
    ck_assert(fabs(e.pct - c->pct) < 1e-9);
    ck_assert(fabs(e.bound - c->bound) < 1e-9);
}
END_TEST

typedef struct {
    const char *in;
    const char *why; /* substring of the error */
} parse_bad_case;

static const parse_bad_case parse_bad[] = {
    {"", "aggregate"},
    {"p95", "operator"},
    {"p95 <", "number"},
    {"p95 < abc", "number"},
    {"p101 < 5", "percentile"},
    {"p-1 < 5", "percentile"},
    {"p(95 < 5", "')'"},
    {"mean < 5", "aggregate"},
    {"max =< 5", "operator"},
    {"max = 5", "operator"},
    {"max < 5 ms", "unexpected"},
    {"max < 0x10", "number"},
    {"max < inf", "number"},
    {"maximum < 5", "aggregate"},
    {"count", "operator"},
};

START_TEST(test_parse_bad)
{
    const parse_bad_case *c = &parse_bad[_i];
    tt_threshold_expr e;
    char err[256] = "";
    ck_assert_msg(tt_threshold_parse(c->in, &e, err, sizeof(err)) == -1, "'%s' accepted", c->in);
    ck_assert_msg(strstr(err, c->why) != NULL, "'%s': error '%s' lacks '%s'", c->in, err, c->why);
}
END_TEST

START_TEST(test_parse_too_long)
{
    char buf[TT_THR_MAX_EXPR + 20];
    memset(buf, ' ', sizeof(buf));
    memcpy(buf + sizeof(buf) - 11, "max < 1000", 11);
    tt_threshold_expr e;
    char err[256];
    ck_assert_int_eq(tt_threshold_parse(buf, &e, err, sizeof(err)), -1);
}
END_TEST

typedef struct {
    double v[8];
    size_t n;
    double p;
    double want;
} pct_case;

/* Linear interpolation between closest ranks: rank = p/100 * (n - 1). */
static const pct_case pcts[] = {
    {{5}, 1, 95, 5},
    {{1, 2}, 2, 50, 1.5},
    {{1, 2, 3, 4}, 4, 50, 2.5},
    {{1, 2, 3, 4}, 4, 0, 1},
    {{1, 2, 3, 4}, 4, 100, 4},
    {{10, 20, 30, 40, 50}, 5, 90, 46},
    {{10, 20, 30, 40, 50}, 5, 95, 48},
    {{10, 20, 30, 40, 50}, 5, 99, 49.6},
    {{0, 0, 0, 100}, 4, 95, 85},
    {{1, 1, 1, 1}, 4, 99, 1},
};

START_TEST(test_percentile)
{
    const pct_case *c = &pcts[_i];
    double got = tt_stats_percentile(c->v, c->n, c->p);
    ck_assert_msg(fabs(got - c->want) < 1e-9, "case %d: p%g = %g, want %g", _i, c->p, got,
                  c->want);
}
END_TEST

typedef struct {
    const char *expr;
    double v[6];
    size_t n;
    int rc;        /* of aggregate */
    double value;
    int pass;
} eval_case;

static const eval_case evals[] = {
    {"count == 0", {0}, 0, 0, 0, 1},
    {"count == 0", {3}, 1, 0, 1, 0},
    {"max < 1000", {0}, 0, -1, 0, 0},
    {"max < 1000", {10, 999.9}, 2, 0, 999.9, 1},
    {"max < 1000", {10, 1000}, 2, 0, 1000, 0},
    {"max <= 1000", {10, 1000}, 2, 0, 1000, 1},
    {"min > 5", {5, 6}, 2, 0, 5, 0},
    {"avg == 2", {1, 2, 3}, 3, 0, 2, 1},
    {"p50 != 2", {1, 2, 3}, 3, 0, 2, 0},
    {"p95 < 500", {100, 200, 300, 400, 600}, 5, 0, 560, 0},
    {"p95 >= 560", {100, 200, 300, 400, 600}, 5, 0, 560, 1},
};

START_TEST(test_evaluate)
{
    const eval_case *c = &evals[_i];
    tt_threshold_expr e;
    char err[256];
    ck_assert_int_eq(tt_threshold_parse(c->expr, &e, err, sizeof(err)), 0);
    double got = -1;
    int rc = tt_threshold_aggregate(&e, c->v, c->n, &got);
    ck_assert_int_eq(rc, c->rc);
    if (rc == 0) {
        ck_assert_msg(fabs(got - c->value) < 1e-9, "%s: %g", c->expr, got);
        ck_assert_int_eq(tt_cmp_eval(e.op, got, e.bound), c->pass);
    }
}
END_TEST

START_TEST(test_series)
{
    tt_series_set s;
    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(tt_series_declare(&s, "lingering", "rs-a"), 0);
    ck_assert_int_eq(tt_series_add(&s, "prop", "rs-a", 30), 0);
    ck_assert_int_eq(tt_series_add(&s, "prop", "rs-b", 10), 0);
    ck_assert_int_eq(tt_series_add(&s, "prop", "rs-a", 20), 0);
    double *v;
    ck_assert_int_eq(tt_series_collect(&s, "prop", NULL, &v), 3);
    ck_assert(v[0] == 10 && v[1] == 20 && v[2] == 30);
    free(v);
    ck_assert_int_eq(tt_series_collect(&s, "prop", "rs-a", &v), 2);
    ck_assert(v[0] == 20 && v[1] == 30);
    free(v);
    ck_assert_int_eq(tt_series_collect(&s, "lingering", "rs-a", &v), 0);
    ck_assert_ptr_null(v);
    char longname[TT_SERIES_MAX_NAME + 5];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    ck_assert_int_eq(tt_series_add(&s, longname, NULL, 1), -1);
    tt_series_set_free(&s);
    tt_series_set_free(NULL);
}
END_TEST

START_TEST(test_agg_name)
{
    static const struct {
        const char *in, *name;
    } c[] = {{"p95 < 1", "p95"}, {"p(99.9) < 1", "p99.9"}, {"med < 1", "p50"},
             {"count == 0", "count"}, {"max<1", "max"}};
    for (int i = 0; i < NCASES(c); i++) {
        tt_threshold_expr e;
        char err[128], name[32];
        ck_assert_int_eq(tt_threshold_parse(c[i].in, &e, err, sizeof(err)), 0);
        tt_threshold_agg_name(&e, name, sizeof(name));
        ck_assert_str_eq(name, c[i].name);
    }
    ck_assert_str_eq(tt_cmp_name(TT_CMP_NE), "!=");
}
END_TEST

Suite *tt_threshold_suite(void)
{
    Suite *s = suite_create("threshold");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_parse_ok, 0, NCASES(parse_ok));
    tcase_add_loop_test(tc, test_parse_bad, 0, NCASES(parse_bad));
    tcase_add_test(tc, test_parse_too_long);
    tcase_add_loop_test(tc, test_percentile, 0, NCASES(pcts));
    tcase_add_loop_test(tc, test_evaluate, 0, NCASES(evals));
    tcase_add_test(tc, test_series);
    tcase_add_test(tc, test_agg_name);
    suite_add_tcase(s, tc);
    return s;
}
