/* tt_threshold.h - k6-style thresholds ("p95 < 500", "count == 0") over named
 * series of measurements, and the order statistics they need. */
#ifndef TT_THRESHOLD_H
#define TT_THRESHOLD_H

#include <stddef.h>

/* Longest threshold expression, metric name and tag accepted. */
#define TT_THR_MAX_EXPR 128
#define TT_SERIES_MAX_NAME 64
#define TT_SERIES_MAX_TAG 64
/* Most samples one series may hold; adding more is an error. */
#define TT_SERIES_MAX_SAMPLES 10000000

typedef enum { TT_AGG_PCT = 0, TT_AGG_MIN, TT_AGG_MAX, TT_AGG_AVG, TT_AGG_COUNT } tt_agg;
typedef enum { TT_CMP_LT = 0, TT_CMP_LE, TT_CMP_GT, TT_CMP_GE, TT_CMP_EQ, TT_CMP_NE } tt_cmp;

/* One parsed expression: aggregate, operator, bound. */
typedef struct tt_threshold_expr {
    tt_agg agg;
    double pct;   /* 0..100, only for TT_AGG_PCT */
    tt_cmp op;
    double bound;
} tt_threshold_expr;

/* Parse "p95 < 500", "p(99.9)<=20", "max < 1000", "avg>=1", "med < 5",
 * "count == 0". Returns 0, or -1 with err saying what is wrong. */
int tt_threshold_parse(const char *s, tt_threshold_expr *out, char *err, size_t errlen);

/* Aggregate name as written canonically: "p95", "p99.9", "max", "count". */
void tt_threshold_agg_name(const tt_threshold_expr *e, char *out, size_t outlen);
const char *tt_cmp_name(tt_cmp op); /* "<", "<=", ... */

/* 1 when a OP b holds. */
int tt_cmp_eval(tt_cmp op, double a, double b);

/* Percentile p (0..100) of n ascending values, linear interpolation between
 * the closest ranks (rank = p/100 * (n-1), as numpy's default and k6). n > 0. */
double tt_stats_percentile(const double *sorted, size_t n, double p);

/* Aggregate n ascending values. COUNT works on n == 0; the others return -1
 * then (there is no value to compare). Returns 0 and sets *out. */
int tt_threshold_aggregate(const tt_threshold_expr *e, const double *sorted, size_t n,
                           double *out);

/* A named, optionally tagged series of samples (ms, or 1 per occurrence). */
typedef struct tt_series {
    char name[TT_SERIES_MAX_NAME];
    char tag[TT_SERIES_MAX_TAG]; /* "" = untagged */
    double *v;
    size_t n, cap;
} tt_series;

typedef struct tt_series_set {
    tt_series *s;
    size_t n, cap;
} tt_series_set;

/* Declare a series so it exists (and reports count 0) even with no samples.
 * Returns 0 or -1 (out of memory, name or tag too long). */
int tt_series_declare(tt_series_set *set, const char *name, const char *tag);

/* Append one sample. Returns 0, or -1 (out of memory, over the maximum). */
int tt_series_add(tt_series_set *set, const char *name, const char *tag, double v);

/* Copy into *out (caller frees) every sample of `name` with tag `tag`, or of
 * every tag when tag is NULL, sorted ascending. Returns the count, or -1 on
 * out of memory. *out is NULL when the count is 0. */
long tt_series_collect(const tt_series_set *set, const char *name, const char *tag, double **out);

void tt_series_set_free(tt_series_set *set); /* accepts NULL */

#endif
