/* test_metrics.c - histogram buckets, rendering and quantiles. */
#include <string.h>

#include "suites.h"
#include "tt_metrics.h"

START_TEST(hist_buckets_are_cumulative_when_rendered)
{
    tt_histogram h;
    memset(&h, 0, sizeof(h));
    tt_hist_observe_ns(&h, 50000);      /* 0.05 ms -> le 0.0001 */
    tt_hist_observe_ns(&h, 2000000);    /* 2 ms    -> le 0.0025 */
    tt_hist_observe_ns(&h, 20000000000); /* 20 s   -> +Inf */
    tt_buf b;
    tt_buf_init(&b, 1 << 16);
    ck_assert_int_eq(tt_metrics_histogram(&b, "x_seconds", "k=\"v\"", &h), 0);
    ck_assert_ptr_nonnull(strstr(b.data, "x_seconds_bucket{k=\"v\",le=\"0.0001\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "x_seconds_bucket{k=\"v\",le=\"0.001\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "x_seconds_bucket{k=\"v\",le=\"0.0025\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "x_seconds_bucket{k=\"v\",le=\"10\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "x_seconds_bucket{k=\"v\",le=\"+Inf\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "x_seconds_count{k=\"v\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "x_seconds_sum{k=\"v\"} 20.002050000\n"));
    tt_buf_free(&b);
}
END_TEST

START_TEST(hist_without_labels)
{
    tt_histogram h;
    memset(&h, 0, sizeof(h));
    tt_buf b;
    tt_buf_init(&b, 1 << 16);
    tt_metrics_histogram(&b, "y", "", &h);
    ck_assert_ptr_nonnull(strstr(b.data, "y_bucket{le=\"+Inf\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "y_count 0\n"));
    tt_buf_free(&b);
}
END_TEST

START_TEST(hist_quantile)
{
    tt_histogram h;
    memset(&h, 0, sizeof(h));
    ck_assert_double_eq(tt_hist_quantile(&h, 0.99), 0);
    for (int i = 0; i < 99; i++) {
        tt_hist_observe_ns(&h, 700000); /* 0.7 ms: bucket (0.0005, 0.001] */
    }
    tt_hist_observe_ns(&h, 4000000000); /* one slow one: (2.5, 5] */
    double p50 = tt_hist_quantile(&h, 0.50);
    ck_assert(p50 > 0.0005 && p50 <= 0.001);
    double p999 = tt_hist_quantile(&h, 0.999);
    ck_assert(p999 > 2.5 && p999 <= 5.0);
}
END_TEST

Suite *tt_metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("histogram");
    tcase_add_test(tc, hist_buckets_are_cumulative_when_rendered);
    tcase_add_test(tc, hist_without_labels);
    tcase_add_test(tc, hist_quantile);
    suite_add_tcase(s, tc);
    return s;
}
