/* tt_time.c - timestamps: hand-written RFC 3339 / epoch parsing, RFC 3339 UTC formatting, durations. */
#include "tt_time.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Epoch values at or above this magnitude are milliseconds, below it seconds:
 * 1e11 s is the year 5138, 1e11 ms is 1973, so real data is never ambiguous. */
#define EPOCH_MS_THRESHOLD INT64_C(100000000000)

#define MS_PER_DAY INT64_C(86400000)

/* Returned by parse_rfc3339 when the text is well formed but the instant lies
 * outside [TT_TIME_MIN_MS, TT_TIME_MAX_MS], so callers can say which. */
#define PARSE_BAD (-1)
#define PARSE_RANGE (-2)

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads n digits at s; returns -1 if any is not a digit. */
static int read_digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(s[i])) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && is_leap(y)) {
        return 29;
    }
    return dim[m - 1];
}

/* Howard Hinnant's days_from_civil: proleptic Gregorian date -> days since
 * 1970-01-01, exact for every year, no libc time zone state involved. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Inverse of days_from_civil. */
static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int parse_rfc3339(const char *s, size_t len, int64_t *out_ms)
{
    /* "YYYY-MM-DDTHH:MM:SS" then optional fraction, then zone. */
    if (s == NULL || len < 20) {
        return PARSE_BAD;
    }
    if (s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':') {
        return PARSE_BAD;
    }
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') {
        return PARSE_BAD;
    }
    int year = read_digits(s, 4);
    int mon = read_digits(s + 5, 2);
    int day = read_digits(s + 8, 2);
    int hour = read_digits(s + 11, 2);
    int min = read_digits(s + 14, 2);
    int sec = read_digits(s + 17, 2);
    if (year < 0 || mon < 1 || mon > 12 || day < 1 || hour < 0 || hour > 23 || min < 0 ||
        min > 59 || sec < 0 || sec > 60) {
        return PARSE_BAD;
    }
    if (day > days_in_month(year, mon)) {
        return PARSE_BAD;
    }

    size_t pos = 19;
    int frac_ms = 0;
    if (s[pos] == '.') {
        pos++;
        size_t start = pos;
        while (pos < len && is_digit(s[pos])) {
            /* Digits past the third are read and dropped: truncation, not rounding. */
            if (pos - start < 3) {
                frac_ms = frac_ms * 10 + (s[pos] - '0');
            }
            pos++;
        }
        size_t ndig = pos - start;
        if (ndig == 0) {
            return PARSE_BAD;
        }
        for (size_t i = ndig; i < 3; i++) {
            frac_ms *= 10;
        }
    }
    if (pos >= len) {
        return PARSE_BAD;
    }

    int64_t offset_min = 0;
    if (s[pos] == 'Z' || s[pos] == 'z') {
        pos++;
    } else if (s[pos] == '+' || s[pos] == '-') {
        if (len - pos < 6 || s[pos + 3] != ':') {
            return PARSE_BAD;
        }
        int oh = read_digits(s + pos + 1, 2);
        int om = read_digits(s + pos + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59) {
            return PARSE_BAD;
        }
        offset_min = (int64_t)oh * 60 + om;
        if (s[pos] == '-') {
            offset_min = -offset_min;
        }
        pos += 6;
    } else {
        return PARSE_BAD;
    }
    if (pos != len) {
        return PARSE_BAD;
    }

    if (sec == 60) {
        /* A leap second has no POSIX representation; keep it inside its minute. */
        sec = 59;
        frac_ms = 999;
    }
    int64_t ms = days_from_civil(year, mon, day) * MS_PER_DAY + (int64_t)hour * 3600000 +
                 (int64_t)min * 60000 + (int64_t)sec * 1000 + frac_ms - offset_min * 60000;
    if (ms < TT_TIME_MIN_MS || ms > TT_TIME_MAX_MS) {
        return PARSE_RANGE;
    }
    *out_ms = ms;
    return 0;
}

int tt_time_parse_rfc3339(const char *s, size_t len, int64_t *out_ms)
{
    int64_t ms = 0;
    if (parse_rfc3339(s, len, &ms) != 0) {
        return -1;
    }
    *out_ms = ms;
    return 0;
}

/* An epoch in a string: digits with at most one '.' and digits after it.
 * Returns 0 with *out_ms, PARSE_BAD when the text is not of that shape,
 * PARSE_RANGE when it is but the value is too large. */
static int parse_epoch_string(const char *s, size_t len, int64_t *out_ms)
{
    size_t pos = 0;
    int64_t ip = 0;
    int big = 0;
    while (pos < len && is_digit(s[pos])) {
        if (!big) {
            ip = ip * 10 + (s[pos] - '0');
            /* Past the largest ms value the number is out of range either way;
             * stop accumulating so it cannot overflow. */
            if (ip > TT_TIME_MAX_MS) {
                big = 1;
            }
        }
        pos++;
    }
    if (pos == 0) {
        return PARSE_BAD;
    }
    int frac_ms = 0;
    if (pos < len && s[pos] == '.') {
        pos++;
        size_t start = pos;
        while (pos < len && is_digit(s[pos])) {
            if (pos - start < 3) {
                frac_ms = frac_ms * 10 + (s[pos] - '0');
            }
            pos++;
        }
        size_t ndig = pos - start;
        if (ndig == 0) {
            return PARSE_BAD;
        }
        for (size_t i = ndig; i < 3; i++) {
            frac_ms *= 10;
        }
    }
    if (pos != len) {
        return PARSE_BAD;
    }
    if (big) {
        return PARSE_RANGE;
    }
    int64_t ms = ip >= EPOCH_MS_THRESHOLD ? ip : ip * 1000 + frac_ms;
    if (ms > TT_TIME_MAX_MS) {
        return PARSE_RANGE;
    }
    *out_ms = ms;
    return 0;
}

int tt_time_from_json(const json_t *v, int64_t *out_ms, const char **why)
{
    static const char *const not_ts = "not a timestamp";
    static const char *const range = "timestamp out of range";
    int64_t ms = 0;
    int rc = PARSE_BAD;

    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0 || i > TT_TIME_MAX_MS) {
            rc = PARSE_RANGE;
        } else {
            ms = i >= EPOCH_MS_THRESHOLD ? i : i * 1000;
            rc = ms <= TT_TIME_MAX_MS ? 0 : PARSE_RANGE;
        }
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (isnan(d) || isinf(d) || d < 0.0 || d > (double)TT_TIME_MAX_MS) {
            rc = PARSE_RANGE;
        } else if (d >= (double)EPOCH_MS_THRESHOLD) {
            ms = (int64_t)d;
            rc = 0;
        } else {
            /* Round to the microsecond first so 1.123 (stored as 1.12299...)
             * still yields 1123 ms, then truncate like string fractions. */
            ms = (int64_t)llround(d * 1e6) / 1000;
            rc = ms <= TT_TIME_MAX_MS ? 0 : PARSE_RANGE;
        }
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        rc = parse_epoch_string(s, len, &ms);
        if (rc == PARSE_BAD) {
            rc = parse_rfc3339(s, len, &ms);
        }
    }

    if (rc == 0) {
        *out_ms = ms;
        return 0;
    }
    if (why != NULL) {
        *why = rc == PARSE_RANGE ? range : not_ts;
    }
    return -1;
}

static void put_digits(char *p, int v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

void tt_time_format(int64_t ms, char out[TT_TIME_BUFSZ])
{
    if (ms < TT_TIME_MIN_MS) {
        ms = TT_TIME_MIN_MS;
    }
    if (ms > TT_TIME_MAX_MS) {
        ms = TT_TIME_MAX_MS;
    }
    int64_t days = ms / MS_PER_DAY;
    int64_t rem = ms % MS_PER_DAY;
    int y = 0;
    int m = 0;
    int d = 0;
    civil_from_days(days, &y, &m, &d);

    /* Fixed layout "YYYY-MM-DDTHH:MM:SS.mmmZ" written digit by digit. */
    memcpy(out, "0000-00-00T00:00:00.000Z", 25);
    put_digits(out, y, 4);
    put_digits(out + 5, m, 2);
    put_digits(out + 8, d, 2);
    put_digits(out + 11, (int)(rem / 3600000), 2);
    put_digits(out + 14, (int)(rem / 60000 % 60), 2);
    put_digits(out + 17, (int)(rem / 1000 % 60), 2);
    put_digits(out + 20, (int)(rem % 1000), 3);
}

char *tt_time_format_duration(int64_t ms, char out[TT_DURATION_BUFSZ])
{
    /* The magnitude as unsigned: -INT64_MIN does not fit in an int64_t. */
    uint64_t v = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    const char *sign = ms < 0 ? "-" : "";
    if (v == 0) {
        snprintf(out, TT_DURATION_BUFSZ, "0s");
        return out;
    }
    if (v < 1000) {
        snprintf(out, TT_DURATION_BUFSZ, "%s%ums", sign, (unsigned)v);
        return out;
    }
    unsigned long long h = v / 3600000;
    unsigned m = (unsigned)(v / 60000 % 60);
    unsigned s = (unsigned)(v / 1000 % 60);
    unsigned frac = (unsigned)(v % 1000);
    /* 0 hours, 1 minutes, 2 seconds: print from the largest non-zero unit
     * down to the smallest non-zero one ("1h0m1s", not "1h1s" or "1h0m0s"). */
    int top = h ? 0 : m ? 1 : 2;
    int bottom = s || frac ? 2 : m ? 1 : 0;
    size_t n = 0;
    n += (size_t)snprintf(out + n, TT_DURATION_BUFSZ - n, "%s", sign);
    if (top == 0) {
        n += (size_t)snprintf(out + n, TT_DURATION_BUFSZ - n, "%lluh", h);
    }
    if (top <= 1 && bottom >= 1) {
        n += (size_t)snprintf(out + n, TT_DURATION_BUFSZ - n, "%um", m);
    }
    if (bottom == 2) {
        if (frac == 0) {
            snprintf(out + n, TT_DURATION_BUFSZ - n, "%us", s);
        } else {
            char f[4] = {(char)('0' + frac / 100), (char)('0' + frac / 10 % 10),
                         (char)('0' + frac % 10), '\0'};
            for (int i = 2; i > 0 && f[i] == '0'; i--) {
                f[i] = '\0';
            }
            snprintf(out + n, TT_DURATION_BUFSZ - n, "%u.%ss", s, f);
        }
    }
    return out;
}

int64_t tt_time_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t tt_time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec;
}

int tt_time_parse_duration(const char *s, int64_t *out_ms)
{
    if (s == NULL || *s == '\0') {
        return -1;
    }
    int64_t total = 0;
    const char *p = s;
    int units_seen = 0;
    while (*p != '\0') {
        if (!is_digit(*p)) {
            return -1;
        }
        int64_t n = 0;
        while (is_digit(*p)) {
            if (n > (INT64_MAX - (*p - '0')) / 10) {
                return -1;
            }
            n = n * 10 + (*p - '0');
            p++;
        }
        int64_t mult = 0;
        if (p[0] == 'm' && p[1] == 's') {
            mult = 1;
            p += 2;
        } else if (*p == 's') {
            mult = 1000;
            p++;
        } else if (*p == 'm') {
            mult = 60000;
            p++;
        } else if (*p == 'h') {
            mult = 3600000;
            p++;
        } else if (*p == 'd') {
            mult = MS_PER_DAY;
            p++;
        } else if (*p == '\0' && units_seen == 0) {
            /* Only a lone number means seconds; "1h30" is ambiguous and refused. */
            mult = 1000;
        } else {
            return -1;
        }
        if (n > INT64_MAX / mult || n * mult > INT64_MAX - total) {
            return -1;
        }
        total += n * mult;
        units_seen++;
    }
    *out_ms = total;
    return 0;
}

int tt_time_parse_when(const char *s, int64_t now_ms, int64_t *out_ms)
{
    int64_t d;
    if (strspn(s, "0123456789") != strlen(s) && tt_time_parse_duration(s, &d) == 0) {
        *out_ms = now_ms - d;
        return 0;
    }
    json_t *js = json_string(s);
    const char *why;
    int rc = js ? tt_time_from_json(js, out_ms, &why) : -1;
    json_decref(js);
    return rc;
}
