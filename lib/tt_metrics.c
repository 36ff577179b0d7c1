/* tt_metrics.c - histograms and Prometheus text rendering. */
#include "tt_metrics.h"

static const double hist_bounds[TT_HIST_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};

void tt_hist_observe_ns(tt_histogram *h, int64_t ns)
{
    if (ns < 0) {
        ns = 0;
    }
    double s = (double)ns / 1e9;
    int i = 0;
    while (i < TT_HIST_BUCKETS && s > hist_bounds[i]) {
        i++;
    }
    tt_counter_add(&h->counts[i], 1);
    tt_counter_add(&h->count, 1);
    tt_counter_add(&h->sum_ns, (uint64_t)ns);
}

int tt_metrics_family(tt_buf *out, const char *name, const char *type, const char *help)
{
    return tt_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int tt_metrics_histogram(tt_buf *out, const char *name, const char *labels, const tt_histogram *h)
{
    uint64_t cum = 0;
    const char *sep = *labels ? "," : "";
    int rc = 0;
    for (int i = 0; i < TT_HIST_BUCKETS; i++) {
        cum += tt_counter_get(&h->counts[i]);
        rc |= tt_buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
                            hist_bounds[i], (unsigned long long)cum);
    }
    cum += tt_counter_get(&h->counts[TT_HIST_BUCKETS]);
    rc |= tt_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                        (unsigned long long)cum);
    const char *lb = *labels ? "{" : "";
    const char *rb = *labels ? "}" : "";
    rc |= tt_buf_printf(out, "%s_sum%s%s%s %.9f\n", name, lb, labels, rb,
                        (double)tt_counter_get(&h->sum_ns) / 1e9);
    rc |= tt_buf_printf(out, "%s_count%s%s%s %llu\n", name, lb, labels, rb,
                        (unsigned long long)cum);
    return rc ? -1 : 0;
}

double tt_hist_quantile(const tt_histogram *h, double q)
{
    uint64_t total = 0;
    uint64_t c[TT_HIST_BUCKETS + 1];
    for (int i = 0; i <= TT_HIST_BUCKETS; i++) {
        c[i] = tt_counter_get(&h->counts[i]);
        total += c[i];
    }
    if (total == 0) {
        return 0;
    }
    double rank = q * (double)total;
    uint64_t cum = 0;
    for (int i = 0; i <= TT_HIST_BUCKETS; i++) {
        if ((double)(cum + c[i]) >= rank && c[i] > 0) {
            if (i == TT_HIST_BUCKETS) {
                return hist_bounds[TT_HIST_BUCKETS - 1];
            }
            double lo = i == 0 ? 0 : hist_bounds[i - 1];
            double hi = hist_bounds[i];
            return lo + (hi - lo) * ((rank - (double)cum) / (double)c[i]);
        }
        cum += c[i];
    }
    return hist_bounds[TT_HIST_BUCKETS - 1];
}
