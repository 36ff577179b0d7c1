/* tt_metrics.h - lock-free counters and histograms rendered in the
 * Prometheus text exposition format. */
#ifndef TT_METRICS_H
#define TT_METRICS_H

#include <stdint.h>

#include "tt_buf.h"

/* Latency buckets in seconds, shared by every tokentrail histogram. */
#define TT_HIST_BUCKETS 16

typedef struct tt_histogram {
    uint64_t counts[TT_HIST_BUCKETS + 1]; /* last one is +Inf; not cumulative */
    uint64_t count;
    uint64_t sum_ns;
} tt_histogram;

/* Atomic increments; safe from any thread. */
static inline void tt_counter_add(uint64_t *c, uint64_t n)
{
    __atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

static inline uint64_t tt_counter_get(const uint64_t *c)
{
    return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* Record one observation of `ns` nanoseconds. Thread-safe. */
void tt_hist_observe_ns(tt_histogram *h, int64_t ns);

/* Append "# HELP", "# TYPE" lines for a metric family. */
int tt_metrics_family(tt_buf *out, const char *name, const char *type, const char *help);

/* Append one histogram (buckets, _sum, _count). `labels` is "" or
 * `key="value"` pairs without braces. */
int tt_metrics_histogram(tt_buf *out, const char *name, const char *labels, const tt_histogram *h);

/* Estimate quantile q (0..1) in seconds from the buckets (linear within a
 * bucket, as PromQL's histogram_quantile does). Returns 0 when empty. */
double tt_hist_quantile(const tt_histogram *h, double q);

#endif
