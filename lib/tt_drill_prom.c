/* tt_drill_prom.c - a drill's report.json as Prometheus metrics in the
 * node_exporter textfile-collector format, written atomically. */
#include "tt_drill_prom.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tt_time.h"

/* Longest label value (scenario or resource server name) read back from an
 * existing textfile; a longer one makes that line unreadable (dropped). */
#define DP_MAX_LABEL 1024

enum {
    F_LAST_RUN,
    F_LAST_SUCCESS,
    F_PASSED,
    F_THRESHOLDS,
    F_THRESHOLDS_FAILED,
    F_ITERATIONS,
    F_ITER_ERRORS,
    F_DURATION,
    F_PROP,
    F_LINGERING,
    F__COUNT
};

static const struct {
    const char *name, *type, *help;
} fam[F__COUNT] = {
    {"tokentrail_drill_last_run_timestamp_seconds", "gauge",
     "When the last drill run finished (Unix time)."},
    {"tokentrail_drill_last_success_timestamp_seconds", "gauge",
     "When a run of this scenario last passed (Unix time); 0 if none has yet."},
    {"tokentrail_drill_passed", "gauge",
     "1 if the last run passed every threshold without unjudged errors, else 0."},
    {"tokentrail_drill_thresholds", "gauge", "Thresholds in the scenario."},
    {"tokentrail_drill_thresholds_failed", "gauge", "Thresholds the last run failed."},
    {"tokentrail_drill_iterations", "gauge", "Iterations in the last run."},
    {"tokentrail_drill_iterations_with_errors", "gauge",
     "Iterations of the last run that ended in an error."},
    {"tokentrail_drill_duration_seconds", "gauge", "Wall-clock duration of the last run."},
    {"tokentrail_drill_revocation_propagation_seconds", "summary",
     "Time from ending access until the resource server refused the token, over the last run "
     "only (quantile 1 is the maximum; _count and _sum are not cumulative across runs)."},
    {"tokentrail_drill_lingering_tokens", "gauge",
     "Tokens the resource server still accepted at the probe timeout in the last run."},
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Append a label value escaped as the exposition format requires. */
static int add_label_value(tt_buf *b, const char *s)
{
    for (; *s; s++) {
        int rc;
        switch (*s) {
        case '\\': rc = tt_buf_adds(b, "\\\\"); break;
        case '"': rc = tt_buf_adds(b, "\\\""); break;
        case '\n': rc = tt_buf_adds(b, "\\n"); break;
        default: rc = tt_buf_add(b, s, 1); break;
        }
        if (rc != 0) {
            return -1;
        }
    }
    return 0;
}

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == ':';
}

/* Parse the label set starting just after '{'. If it has label `want`, copy
 * its unescaped value to out (DP_MAX_LABEL) and set *found. Returns the
 * character after '}', or NULL when the labels are malformed. */
static const char *parse_labels(const char *p, const char *want, char *out, int *found)
{
    *found = 0;
    for (;;) {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '}') {
            return p + 1;
        }
        const char *n = p;
        while (is_name_char(*p)) {
            p++;
        }
        size_t nlen = (size_t)(p - n);
        if (nlen == 0 || *p != '=' || p[1] != '"') {
            return NULL;
        }
        p += 2;
        int take = strlen(want) == nlen && memcmp(n, want, nlen) == 0;
        size_t o = 0;
        while (*p != '"') {
            char c = *p;
            if (c == '\0' || c == '\n') {
                return NULL;
            }
            if (c == '\\') {
                p++;
                c = *p == 'n' ? '\n' : *p;
                if (c == '\0') {
                    return NULL;
                }
            }
            if (take) {
                if (o + 1 >= DP_MAX_LABEL) {
                    return NULL;
                }
                out[o++] = c;
            }
            p++;
        }
        p++;
        if (take) {
            out[o] = '\0';
            *found = 1;
        }
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == ',') {
            p++;
        } else if (*p != '}') {
            return NULL;
        }
    }
}

/* The family a sample name belongs to (a summary's _sum and _count too), or -1. */
static int family_of(const char *name, size_t len)
{
    for (int i = 0; i < F__COUNT; i++) {
        size_t n = strlen(fam[i].name);
        if (len < n || memcmp(fam[i].name, name, n) != 0) {
            continue;
        }
        if (len == n) {
            return i;
        }
        if (strcmp(fam[i].type, "summary") == 0 &&
            ((len - n == 4 && memcmp(name + n, "_sum", 4) == 0) ||
             (len - n == 6 && memcmp(name + n, "_count", 6) == 0))) {
            return i;
        }
    }
    return -1;
}

/* Sort the previous textfile's samples: other scenarios' lines go to keep[f];
 * this scenario's last-success value goes to *prev_success. */
static int carry_over(const char *previous, const char *scenario, tt_buf keep[F__COUNT],
                      double *prev_success)
{
    const char *p = previous;
    while (p && *p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        const char *next = eol ? eol + 1 : p + len;
        const char *q = p;
        while (is_name_char(*q) && q < p + len) {
            q++;
        }
        int f = q > p && *p != '#' ? family_of(p, (size_t)(q - p)) : -1;
        char sc[DP_MAX_LABEL];
        int found = 0;
        const char *after = NULL;
        if (f >= 0 && *q == '{') {
            after = parse_labels(q + 1, "scenario", sc, &found);
        }
        if (after && found && after <= p + len) {
            if (strcmp(sc, scenario) != 0) {
                if (tt_buf_add(&keep[f], p, len) != 0 || tt_buf_add(&keep[f], "\n", 1) != 0) {
                    return -1;
                }
            } else if (f == F_LAST_SUCCESS) {
                char *end;
                double v = strtod(after, &end);
                if (end != after && isfinite(v)) {
                    *prev_success = v;
                }
            }
        }
        p = next;
    }
    return 0;
}

/* report[a][b] as the wanted JSON type, or NULL with err naming the field. */
static const json_t *field(const json_t *o, const char *path, const char *key, char *err,
                           size_t errlen)
{
    const json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
    if (v == NULL || json_is_null(v)) {
        seterr(err, errlen, "missing field '%s'", path);
    }
    return v && !json_is_null(v) ? v : NULL;
}

static int get_field(const json_t *o, const char *path, const char *key, const json_t **out,
                     char *err, size_t errlen)
{
    *out = field(o, path, key, err, errlen);
    return *out ? 0 : -1;
}

static int get_string(const json_t *o, const char *path, const char *key, const char **out,
                      char *err, size_t errlen)
{
    const json_t *v = field(o, path, key, err, errlen);
    if (v == NULL) {
        return -1;
    }
    if (!json_is_string(v)) {
        seterr(err, errlen, "field '%s': not a string", path);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

static int get_count(const json_t *o, const char *path, const char *key, long long *out, char *err,
                     size_t errlen)
{
    const json_t *v = field(o, path, key, err, errlen);
    if (v == NULL) {
        return -1;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        seterr(err, errlen, "field '%s': not a non-negative integer", path);
        return -1;
    }
    *out = (long long)json_integer_value(v);
    return 0;
}

static int get_number(const json_t *o, const char *path, const char *key, double *out, char *err,
                      size_t errlen)
{
    const json_t *v = field(o, path, key, err, errlen);
    if (v == NULL) {
        return -1;
    }
    if (!json_is_number(v) || !isfinite(json_number_value(v))) {
        seterr(err, errlen, "field '%s': not a number", path);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

/* `name[suffix]{scenario="..."[,resource_server="..."][,quantile="q"]} value\n` */
static int sample_sfx(tt_buf *b, int f, const char *suffix, const char *scenario, const char *rs,
                      const char *q, const char *value)
{
    int rc = tt_buf_adds(b, fam[f].name);
    rc |= tt_buf_adds(b, suffix);
    rc |= tt_buf_adds(b, "{scenario=\"");
    rc |= add_label_value(b, scenario);
    if (rs) {
        rc |= tt_buf_adds(b, "\",resource_server=\"");
        rc |= add_label_value(b, rs);
    }
    if (q) {
        rc |= tt_buf_printf(b, "\",quantile=\"%s", q);
    }
    rc |= tt_buf_printf(b, "\"} %s\n", value);
    return rc ? -1 : 0;
}

static int sample(tt_buf *b, int f, const char *scenario, const char *rs, const char *q,
                  const char *value)
{
    return sample_sfx(b, f, "", scenario, rs, q, value);
}

static void fmt_seconds(char *out, size_t n, double s)
{
    snprintf(out, n, "%.10g", s);
}

static void fmt_ms_timestamp(char *out, size_t n, long long ms)
{
    snprintf(out, n, "%lld.%03lld", ms / 1000, ms % 1000);
}

/* One resource server's propagation summary (quantiles 0.5, 0.99 and 1 =
 * max, _sum, _count) and lingering count from report.metrics. */
static int render_rs(const json_t *metrics, const char *scenario, const char *rs, tt_buf *fb,
                     char *err, size_t errlen)
{
    char key[DP_MAX_LABEL + 64], path[DP_MAX_LABEL + 96], v[64];
    snprintf(key, sizeof(key), "revocation_propagation_ms{%s}", rs);
    snprintf(path, sizeof(path), "metrics.%s", key);
    const json_t *m = field(metrics, path, key, err, errlen);
    long long count;
    double avg = 0;
    if (m == NULL) {
        return -1;
    }
    snprintf(path, sizeof(path), "metrics.%s.count", key);
    if (get_count(m, path, "count", &count, err, errlen) != 0) {
        return -1;
    }
    if (count > 0) {
        static const struct {
            const char *key, *q;
        } qs[] = {{"p50", "0.5"}, {"p99", "0.99"}, {"max", "1"}};
        for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
            double ms;
            snprintf(path, sizeof(path), "metrics.%s.%s", key, qs[i].key);
            if (get_number(m, path, qs[i].key, &ms, err, errlen) != 0) {
                return -1;
            }
            fmt_seconds(v, sizeof(v), ms / 1000.0);
            if (sample(&fb[F_PROP], F_PROP, scenario, rs, qs[i].q, v) != 0) {
                goto full;
            }
        }
        snprintf(path, sizeof(path), "metrics.%s.avg", key);
        if (get_number(m, path, "avg", &avg, err, errlen) != 0) {
            return -1;
        }
    }
    fmt_seconds(v, sizeof(v), avg * (double)count / 1000.0);
    if (sample_sfx(&fb[F_PROP], F_PROP, "_sum", scenario, rs, NULL, v) != 0) {
        goto full;
    }
    snprintf(v, sizeof(v), "%lld", count);
    if (sample_sfx(&fb[F_PROP], F_PROP, "_count", scenario, rs, NULL, v) != 0) {
        goto full;
    }
    /* "lingering{rs}" is optional: older reports lack it; absent means none. */
    long long lingering = 0;
    snprintf(key, sizeof(key), "lingering{%s}", rs);
    const json_t *l = json_object_get(metrics, key);
    if (l != NULL) {
        snprintf(path, sizeof(path), "metrics.%s.count", key);
        if (get_count(l, path, "count", &lingering, err, errlen) != 0) {
            return -1;
        }
    }
    snprintf(v, sizeof(v), "%lld", lingering);
    if (sample(&fb[F_LINGERING], F_LINGERING, scenario, rs, NULL, v) != 0) {
        goto full;
    }
    return 0;
full:
    seterr(err, errlen, "textfile too large (over %d bytes)", TT_DRILL_PROM_MAX_FILE);
    return -1;
}

int tt_drill_prom_render(const json_t *report, const char *previous, tt_buf *out, char *err,
                         size_t errlen)
{
    tt_buf fb[F__COUNT];
    for (int f = 0; f < F__COUNT; f++) {
        tt_buf_init(&fb[f], TT_DRILL_PROM_MAX_FILE);
    }
    int rc = -1;
    const char *scenario, *result, *finished;
    const json_t *sc, *metrics, *thresholds, *rss;
    long long thr_failed, iter_errors;
    int64_t finished_ms;
    char v[64];

    if (!json_is_object(report)) {
        seterr(err, errlen, "not a JSON object");
        goto done;
    }
    if (get_field(report, "scenario", "scenario", &sc, err, errlen) != 0 ||
        get_string(sc, "scenario.name", "name", &scenario, err, errlen) != 0 ||
        get_string(report, "result", "result", &result, err, errlen) != 0 ||
        get_string(report, "finished_at", "finished_at", &finished, err, errlen) != 0 ||
        get_count(report, "thresholds_failed", "thresholds_failed", &thr_failed, err, errlen) !=
            0 ||
        get_count(report, "iterations_with_errors", "iterations_with_errors", &iter_errors, err,
                  errlen) != 0 ||
        get_field(report, "thresholds", "thresholds", &thresholds, err, errlen) != 0 ||
        get_field(report, "metrics", "metrics", &metrics, err, errlen) != 0 ||
        get_field(sc, "scenario.resource_servers", "resource_servers", &rss, err, errlen) != 0) {
        goto done;
    }
    if (strcmp(result, "pass") != 0 && strcmp(result, "fail") != 0 &&
        strcmp(result, "error") != 0) {
        seterr(err, errlen, "field 'result': expected \"pass\", \"fail\" or \"error\", got \"%.40s\"",
               result);
        goto done;
    }
    if (tt_time_parse_rfc3339(finished, strlen(finished), &finished_ms) != 0) {
        seterr(err, errlen, "field 'finished_at': not an RFC 3339 timestamp");
        goto done;
    }
    if (!json_is_array(thresholds)) {
        seterr(err, errlen, "field 'thresholds': not an array");
        goto done;
    }
    if (!json_is_object(metrics)) {
        seterr(err, errlen, "field 'metrics': not an object");
        goto done;
    }
    if (!json_is_array(rss)) {
        seterr(err, errlen, "field 'scenario.resource_servers': not an array");
        goto done;
    }

    /* Passed mirrors `tokentrail drill run`'s exit status 0: every threshold
     * passed, and iterations that ended in an error are either absent or
     * judged by a threshold on `errors`. */
    int errors_judged = 0;
    size_t i;
    const json_t *t;
    json_array_foreach(thresholds, i, t)
    {
        const json_t *m = json_is_object(t) ? json_object_get(t, "metric") : NULL;
        errors_judged |= json_is_string(m) && strcmp(json_string_value(m), "errors") == 0;
    }
    int passed =
        strcmp(result, "pass") == 0 && thr_failed == 0 && (iter_errors == 0 || errors_judged);

    double last_success = 0;
    if (carry_over(previous, scenario, fb, &last_success) != 0) {
        goto full;
    }
    if (passed) {
        last_success = (double)finished_ms / 1000.0;
    }

    int wr = 0;
    fmt_ms_timestamp(v, sizeof(v), (long long)finished_ms);
    wr |= sample(&fb[F_LAST_RUN], F_LAST_RUN, scenario, NULL, NULL, v);
    if (passed) {
        wr |= sample(&fb[F_LAST_SUCCESS], F_LAST_SUCCESS, scenario, NULL, NULL, v);
    } else {
        snprintf(v, sizeof(v), "%.3f", last_success);
        wr |= sample(&fb[F_LAST_SUCCESS], F_LAST_SUCCESS, scenario, NULL, NULL, v);
    }
    wr |= sample(&fb[F_PASSED], F_PASSED, scenario, NULL, NULL, passed ? "1" : "0");
    snprintf(v, sizeof(v), "%zu", json_array_size(thresholds));
    wr |= sample(&fb[F_THRESHOLDS], F_THRESHOLDS, scenario, NULL, NULL, v);
    snprintf(v, sizeof(v), "%lld", thr_failed);
    wr |= sample(&fb[F_THRESHOLDS_FAILED], F_THRESHOLDS_FAILED, scenario, NULL, NULL, v);
    const json_t *its = json_object_get(report, "iterations");
    if (json_is_array(its)) {
        snprintf(v, sizeof(v), "%zu", json_array_size(its));
        wr |= sample(&fb[F_ITERATIONS], F_ITERATIONS, scenario, NULL, NULL, v);
    }
    snprintf(v, sizeof(v), "%lld", iter_errors);
    wr |= sample(&fb[F_ITER_ERRORS], F_ITER_ERRORS, scenario, NULL, NULL, v);
    const json_t *dur = json_object_get(report, "duration_ms");
    if (json_is_number(dur) && json_number_value(dur) >= 0) {
        fmt_seconds(v, sizeof(v), json_number_value(dur) / 1000.0);
        wr |= sample(&fb[F_DURATION], F_DURATION, scenario, NULL, NULL, v);
    }
    if (wr != 0) {
        goto full;
    }

    const json_t *rs;
    json_array_foreach(rss, i, rs)
    {
        const char *name;
        char path[64];
        snprintf(path, sizeof(path), "scenario.resource_servers[%zu].name", i);
        if (get_string(rs, path, "name", &name, err, errlen) != 0) {
            goto done;
        }
        if (strlen(name) >= DP_MAX_LABEL) {
            seterr(err, errlen, "field '%s': longer than %d bytes", path, DP_MAX_LABEL - 1);
            goto done;
        }
        if (render_rs(metrics, scenario, name, fb, err, errlen) != 0) {
            goto done;
        }
    }

    for (int f = 0; f < F__COUNT; f++) {
        if (fb[f].len == 0) {
            continue;
        }
        if (tt_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help,
                          fam[f].name, fam[f].type) != 0 ||
            tt_buf_add(out, fb[f].data, fb[f].len) != 0) {
            goto full;
        }
    }
    rc = 0;
    goto done;
full:
    seterr(err, errlen, "textfile too large (over %d bytes)", TT_DRILL_PROM_MAX_FILE);
done:
    for (int f = 0; f < F__COUNT; f++) {
        tt_buf_free(&fb[f]);
    }
    return rc;
}

/* Read a whole file of at most max bytes into *out (NUL-terminated, caller
 * frees). Returns 0, 1 when it does not exist, -1 with err on failure. */
static int read_all(const char *path, size_t max, char **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        if (errno == ENOENT) {
            return 1;
        }
        seterr(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    tt_buf b;
    tt_buf_init(&b, max);
    char chunk[65536];
    size_t n;
    int rc = 0;
    for (;;) {
        n = fread(chunk, 1, sizeof(chunk), fp);
        if (n == 0) {
            break;
        }
        if (tt_buf_add(&b, chunk, n) != 0) {
            seterr(err, errlen, "%s: larger than %zu bytes", path, max);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(fp)) {
        seterr(err, errlen, "%s: read error", path);
        rc = -1;
    }
    fclose(fp);
    if (rc != 0) {
        tt_buf_free(&b);
        return -1;
    }
    if (b.data == NULL) {
        /* empty file: hand back an empty string */
        *out = calloc(1, 1);
        if (*out == NULL) {
            seterr(err, errlen, "out of memory");
            return -1;
        }
        return 0;
    }
    *out = tt_buf_detach(&b);
    return 0;
}

/* Write data to path via a temporary file in the same directory + rename. */
static int write_atomic(const char *path, const char *data, size_t len, char *err, size_t errlen)
{
    char tmp[TT_DRILL_PROM_MAX_PATH + 16];
    if (strlen(path) >= TT_DRILL_PROM_MAX_PATH) {
        seterr(err, errlen, "textfile path longer than %d bytes", TT_DRILL_PROM_MAX_PATH - 1);
        return -1;
    }
    /* "x.prom.AbC123": node_exporter reads only *.prom, so never this one. */
    snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        seterr(err, errlen, "%s: cannot create a temporary file: %s", path, strerror(errno));
        return -1;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            seterr(err, errlen, "%s: write: %s", tmp, strerror(errno));
            goto fail;
        }
        off += (size_t)w;
    }
    /* mkstemp makes 0600; node_exporter often runs as another user. */
    if (fchmod(fd, 0644) != 0 || fsync(fd) != 0) {
        seterr(err, errlen, "%s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        seterr(err, errlen, "%s: close: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        seterr(err, errlen, "%s: rename: %s", path, strerror(errno));
        goto fail;
    }
    /* Make the rename itself durable; best effort (some filesystems refuse). */
    char dir[TT_DRILL_PROM_MAX_PATH];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) {
        slash[1] = '\0';
    } else if (slash) {
        *slash = '\0';
    } else {
        snprintf(dir, sizeof(dir), ".");
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
fail:
    if (fd >= 0) {
        close(fd);
    }
    unlink(tmp);
    return -1;
}

static int write_json(const json_t *report, const char *what, const char *textfile_path, char *err,
                      size_t errlen)
{
    char *previous = NULL;
    if (read_all(textfile_path, TT_DRILL_PROM_MAX_FILE, &previous, err, errlen) < 0) {
        return -1;
    }
    tt_buf out;
    tt_buf_init(&out, TT_DRILL_PROM_MAX_FILE);
    char why[512];
    int rc = tt_drill_prom_render(report, previous, &out, why, sizeof(why));
    free(previous);
    if (rc != 0) {
        seterr(err, errlen, "%s: %s", what, why);
    } else {
        rc = write_atomic(textfile_path, out.data ? out.data : "", out.len, err, errlen);
    }
    tt_buf_free(&out);
    return rc;
}

int tt_drill_prom_write_json(const json_t *report, const char *textfile_path, char *err,
                             size_t errlen)
{
    return write_json(report, "report", textfile_path, err, errlen);
}

int tt_drill_prom_write(const char *report_json_path, const char *textfile_path, char *err,
                        size_t errlen)
{
    char *text = NULL;
    int r = read_all(report_json_path, TT_DRILL_PROM_MAX_REPORT, &text, err, errlen);
    if (r != 0) {
        if (r > 0) {
            seterr(err, errlen, "%s: %s", report_json_path, strerror(ENOENT));
        }
        return -1;
    }
    json_error_t je;
    json_t *report = json_loads(text, 0, &je);
    free(text);
    if (report == NULL) {
        seterr(err, errlen, "%s:%d: not JSON: %s", report_json_path, je.line, je.text);
        return -1;
    }
    int rc = write_json(report, report_json_path, textfile_path, err, errlen);
    json_decref(report);
    return rc;
}
