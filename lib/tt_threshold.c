/* tt_threshold.c - threshold expressions, percentiles and sample series. */
#include "tt_threshold.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    return p;
}

/* Read a finite decimal number; returns the end or NULL. */
static const char *read_number(const char *p, double *out)
{
    if (!(isdigit((unsigned char)*p) || *p == '-' || *p == '+' || *p == '.')) {
        return NULL;
    }
    errno = 0;
    char *end;
    double v = strtod(p, &end);
    if (end == p || errno != 0 || !isfinite(v)) {
        return NULL;
    }
    /* strtod accepts hex and "inf"; we only want plain decimals. */
    for (const char *q = p; q < end; q++) {
        if (!(isdigit((unsigned char)*q) || *q == '.' || *q == '-' || *q == '+' || *q == 'e' ||
              *q == 'E')) {
            return NULL;
        }
    }
    *out = v;
    return end;
}

int tt_threshold_parse(const char *s, tt_threshold_expr *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (s == NULL || strlen(s) > TT_THR_MAX_EXPR) {
        snprintf(err, errlen, "threshold expression missing or longer than %d bytes",
                 TT_THR_MAX_EXPR);
        return -1;
    }
    const char *p = skip_ws(s);
    static const struct {
        const char *name;
        tt_agg agg;
        double pct;
    } names[] = {
        {"count", TT_AGG_COUNT, 0}, {"min", TT_AGG_MIN, 0},  {"max", TT_AGG_MAX, 0},
        {"avg", TT_AGG_AVG, 0},     {"med", TT_AGG_PCT, 50},
    };
    size_t i;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t l = strlen(names[i].name);
        if (strncmp(p, names[i].name, l) == 0 && !isalnum((unsigned char)p[l]) && p[l] != '(') {
            out->agg = names[i].agg;
            out->pct = names[i].pct;
            p += l;
            break;
        }
    }
    if (i == sizeof(names) / sizeof(names[0])) {
        if (*p != 'p') {
            snprintf(err, errlen,
                     "'%s': expected an aggregate (p50, p90, p95, p99, p(N), min, max, avg, "
                     "count) first",
                     s);
            return -1;
        }
        p++;
        int paren = *p == '(';
        if (paren) {
            p++;
        }
        double pct;
        const char *e = read_number(p, &pct);
        if (e == NULL || pct < 0 || pct > 100 || *p == '-' || *p == '+') {
            snprintf(err, errlen, "'%s': percentile must be a number from 0 to 100", s);
            return -1;
        }
        p = e;
        if (paren) {
            if (*p != ')') {
                snprintf(err, errlen, "'%s': missing ')' after the percentile", s);
                return -1;
            }
            p++;
        }
        out->agg = TT_AGG_PCT;
        out->pct = pct;
    }
    p = skip_ws(p);
    static const struct {
        const char *text;
        tt_cmp op;
    } ops[] = {{"<=", TT_CMP_LE}, {">=", TT_CMP_GE}, {"==", TT_CMP_EQ}, {"!=", TT_CMP_NE},
               {"<", TT_CMP_LT},  {">", TT_CMP_GT}};
    for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        size_t l = strlen(ops[i].text);
        if (strncmp(p, ops[i].text, l) == 0) {
            out->op = ops[i].op;
            p += l;
            break;
        }
    }
    if (i == sizeof(ops) / sizeof(ops[0])) {
        snprintf(err, errlen, "'%s': expected an operator (<, <=, >, >=, ==, !=)", s);
        return -1;
    }
    p = skip_ws(p);
    const char *e = read_number(p, &out->bound);
    if (e == NULL) {
        snprintf(err, errlen, "'%s': expected a number after the operator", s);
        return -1;
    }
    p = skip_ws(e);
    if (*p != '\0') {
        snprintf(err, errlen, "'%s': unexpected text after the number", s);
        return -1;
    }
    return 0;
}

void tt_threshold_agg_name(const tt_threshold_expr *e, char *out, size_t outlen)
{
    switch (e->agg) {
    case TT_AGG_MIN: snprintf(out, outlen, "min"); break;
    case TT_AGG_MAX: snprintf(out, outlen, "max"); break;
    case TT_AGG_AVG: snprintf(out, outlen, "avg"); break;
    case TT_AGG_COUNT: snprintf(out, outlen, "count"); break;
    case TT_AGG_PCT: snprintf(out, outlen, "p%g", e->pct); break;
    }
}

const char *tt_cmp_name(tt_cmp op)
{
    static const char *const n[] = {"<", "<=", ">", ">=", "==", "!="};
    return (unsigned)op < 6 ? n[op] : "?";
}

int tt_cmp_eval(tt_cmp op, double a, double b)
{
    switch (op) {
    case TT_CMP_LT: return a < b;
    case TT_CMP_LE: return a <= b;
    case TT_CMP_GT: return a > b;
    case TT_CMP_GE: return a >= b;
    case TT_CMP_EQ: return a == b;
    case TT_CMP_NE: return a != b;
    }
    return 0;
}

double tt_stats_percentile(const double *sorted, size_t n, double p)
{
    if (n == 1 || p <= 0) {
        return sorted[0];
    }
    if (p >= 100) {
        return sorted[n - 1];
    }
    double rank = p / 100.0 * (double)(n - 1);
    size_t lo = (size_t)rank;
    double frac = rank - (double)lo;
    if (lo + 1 >= n) {
        return sorted[n - 1];
    }
    return sorted[lo] + (sorted[lo + 1] - sorted[lo]) * frac;
}

int tt_threshold_aggregate(const tt_threshold_expr *e, const double *sorted, size_t n,
                           double *out)
{
    if (e->agg == TT_AGG_COUNT) {
        *out = (double)n;
        return 0;
    }
    if (n == 0) {
        return -1;
    }
    switch (e->agg) {
    case TT_AGG_MIN: *out = sorted[0]; break;
    case TT_AGG_MAX: *out = sorted[n - 1]; break;
    case TT_AGG_AVG: {
        double sum = 0;
        for (size_t i = 0; i < n; i++) {
            sum += sorted[i];
        }
        *out = sum / (double)n;
        break;
    }
    case TT_AGG_PCT: *out = tt_stats_percentile(sorted, n, e->pct); break;
    case TT_AGG_COUNT: break;
    }
    return 0;
}

static tt_series *series_find(const tt_series_set *set, const char *name, const char *tag)
{
    for (size_t i = 0; i < set->n; i++) {
        if (strcmp(set->s[i].name, name) == 0 && strcmp(set->s[i].tag, tag) == 0) {
            return &set->s[i];
        }
    }
    return NULL;
}

static tt_series *series_get(tt_series_set *set, const char *name, const char *tag)
{
    if (tag == NULL) {
        tag = "";
    }
    tt_series *s = series_find(set, name, tag);
    if (s) {
        return s;
    }
    if (strlen(name) >= TT_SERIES_MAX_NAME || strlen(tag) >= TT_SERIES_MAX_TAG) {
        return NULL;
    }
    if (set->n == set->cap) {
        size_t ncap = set->cap ? set->cap * 2 : 16;
        tt_series *ns = realloc(set->s, ncap * sizeof(*ns));
        if (ns == NULL) {
            return NULL;
        }
        set->s = ns;
        set->cap = ncap;
    }
    s = &set->s[set->n++];
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->tag, sizeof(s->tag), "%s", tag);
    return s;
}

int tt_series_declare(tt_series_set *set, const char *name, const char *tag)
{
    return series_get(set, name, tag) ? 0 : -1;
}

int tt_series_add(tt_series_set *set, const char *name, const char *tag, double v)
{
    tt_series *s = series_get(set, name, tag);
    if (s == NULL || s->n >= TT_SERIES_MAX_SAMPLES) {
        return -1;
    }
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        double *nv = realloc(s->v, ncap * sizeof(*nv));
        if (nv == NULL) {
            return -1;
        }
        s->v = nv;
        s->cap = ncap;
    }
    s->v[s->n++] = v;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

long tt_series_collect(const tt_series_set *set, const char *name, const char *tag, double **out)
{
    *out = NULL;
    size_t total = 0;
    for (size_t i = 0; i < set->n; i++) {
        const tt_series *s = &set->s[i];
        if (strcmp(s->name, name) == 0 && (tag == NULL || strcmp(s->tag, tag) == 0)) {
            total += s->n;
        }
    }
    if (total == 0) {
        return 0;
    }
    double *v = malloc(total * sizeof(*v));
    if (v == NULL) {
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < set->n; i++) {
        const tt_series *s = &set->s[i];
        if (s->n > 0 && strcmp(s->name, name) == 0 && (tag == NULL || strcmp(s->tag, tag) == 0)) {
            memcpy(v + k, s->v, s->n * sizeof(*v));
            k += s->n;
        }
    }
    qsort(v, total, sizeof(*v), cmp_double);
    *out = v;
    return (long)total;
}

void tt_series_set_free(tt_series_set *set)
{
    if (set == NULL) {
        return;
    }
    for (size_t i = 0; i < set->n; i++) {
        free(set->s[i].v);
    }
    free(set->s);
    set->s = NULL;
    set->n = set->cap = 0;
}
