/* test_time.c - table-driven Check suite for tt_time: RFC 3339, epoch JSON, formatting, durations. */
#include <stdint.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "suites.h"
#include "tt_time.h"

#define NCASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* 2026-11-22T07:47:51.123Z */
#define T_REF INT64_C(1795333671123)

typedef struct {
    const char *in;
    int64_t ms;
} rfc_ok_case;

static const rfc_ok_case rfc_ok[] = {
    {"1970-01-01T00:00:00Z", 0},
    {"1970-01-01T00:00:00.000Z", 0},
    {"1970-01-01T01:00:00+01:00", 0},
    {"2026-11-22T07:47:51.123Z", T_REF},
    {"2026-11-22t07:47:51.123z", T_REF},
    {"2026-11-22 07:47:51.123Z", T_REF},
    {"2026-11-22T08:47:51.123+01:00", T_REF},
    {"2026-11-22T02:17:51.123-05:30", T_REF},
    {"2026-11-22T23:47:51.123+16:00", T_REF},
    {"2026-11-22T07:47:51.123-00:00", T_REF},
    {"2026-11-22T07:47:51.1234567890123Z", T_REF},
    {"2026-11-22T07:47:51.1239Z", T_REF},
    {"2026-11-22T07:47:51.1Z", T_REF - 23},
    {"2026-11-22T07:47:51.12Z", T_REF - 3},
    {"2026-11-22T07:47:51Z", T_REF - 123},
    {"2024-02-29T00:00:00Z", INT64_C(1709164800000)},
    {"2000-02-29T00:00:00Z", INT64_C(951782400000)},
    {"2000-03-01T00:00:00Z", INT64_C(951868800000)},
    {"2100-03-01T00:00:00Z", INT64_C(4107542400000)},
    {"2400-02-29T00:00:00Z", INT64_C(13574563200000)},
    {"1999-12-31T23:59:59.999Z", INT64_C(946684799999)},
    {"2016-12-31T23:59:60Z", INT64_C(1483228799999)},
    {"2016-12-31T23:59:60.5Z", INT64_C(1483228799999)},
    {"2038-01-19T03:14:08Z", INT64_C(2147483648000)},
    {"2026-01-01T00:00:00Z", INT64_C(1767225600000)},
    {"9999-12-31T23:59:59.999Z", TT_TIME_MAX_MS},
    {"9999-12-31T23:59:59.999999Z", TT_TIME_MAX_MS},
    {"9999-12-31T23:59:59.999+00:00", TT_TIME_MAX_MS},
};

static const char *const rfc_bad[] = {
    "",
    "2026",
    "2026-02-30T00:00:00Z",
    "2025-02-29T00:00:00Z",
    "1900-02-29T00:00:00Z",
    "2100-02-29T00:00:00Z",
    "2026-04-31T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-00-10T00:00:00Z",
    "2026-11-00T00:00:00Z",
    "2026-11-22T24:00:00Z",
    "2026-11-22T23:60:00Z",
    "2026-11-22T23:59:61Z",
    "2026-11-22T07:47:51",
    "2026-11-22T07:47:51.123",
    "2026-11-22T07:47:51+0100",
    "2026-11-22T07:47:51+01",
    "2026-11-22T07:47:51+24:00",
    "2026-11-22T07:47:51+01:60",
    "2026-11-22T07:47:51+1:00",
    "2026-11-22T07:47:51Zjunk",
    "2026-11-22T07:47:51Z ",
    " 2026-11-22T07:47:51Z",
    "2026-11-22T07:47:51.Z",
    "2026-11-22T07:47:51,123Z",
    "2026-11-22T07:47:5aZ",
    "2026-11-22X07:47:51Z",
    "2026-11-22T07-47-51Z",
    "2026/11/22T07:47:51Z",
    "2026-1-22T07:47:51Z",
    "26-11-22T07:47:51Z",
    "+2026-11-22T07:47:51Z",
    "0000-01-01T00:00:00Z",
    "10000-01-01T00:00:00Z",
    "1969-12-31T23:59:59.999Z",
    "1970-01-01T00:30:00+01:00",
    "9999-12-31T23:59:59.999-00:01",
    "2026-11-22",
    "07:47:51Z",
};

START_TEST(test_rfc3339_valid)
{
    const rfc_ok_case *c = &rfc_ok[_i];
    int64_t ms = -42;
    ck_assert_msg(tt_time_parse_rfc3339(c->in, strlen(c->in), &ms) == 0, "rejected %s", c->in);
    ck_assert_msg(ms == c->ms, "%s: got %lld want %lld", c->in, (long long)ms, (long long)c->ms);
}
END_TEST

START_TEST(test_rfc3339_invalid)
{
    const char *in = rfc_bad[_i];
    int64_t ms = -42;
    ck_assert_msg(tt_time_parse_rfc3339(in, strlen(in), &ms) == -1, "accepted \"%s\"", in);
    ck_assert_msg(ms == -42, "%s: *out_ms written on failure", in);
}
END_TEST

/* The length bounds the parse: bytes after it are never read, bytes before it
 * must form a whole timestamp. */
typedef struct {
    const char *buf;
    size_t len;
    int rc;
    int64_t ms;
} rfc_len_case;

static const rfc_len_case rfc_len[] = {
    {"2026-11-22T07:47:51.123Zgarbage", 24, 0, T_REF},
    {"2026-11-22T07:47:51.123+01:00", 24, -1, 0},
    {"2026-11-22T07:47:51.123Z", 23, -1, 0},
    {"2026-11-22T07:47:51.123Z", 19, -1, 0},
    {"2026-11-22T07:47:51.123Z", 0, -1, 0},
};

START_TEST(test_rfc3339_length_bound)
{
    const rfc_len_case *c = &rfc_len[_i];
    int64_t ms = 0;
    ck_assert_int_eq(tt_time_parse_rfc3339(c->buf, c->len, &ms), c->rc);
    if (c->rc == 0) {
        ck_assert_int_eq(ms, c->ms);
    }
}
END_TEST

typedef struct {
    const char *json; /* any JSON value */
    int rc;
    int64_t ms;
    const char *why;  /* on failure */
} json_case;

static const json_case json_cases[] = {
    {"0", 0, 0, NULL},
    {"1700000000", 0, INT64_C(1700000000000), NULL},
    {"1700000000123", 0, INT64_C(1700000000123), NULL},
    {"99999999999", 0, INT64_C(99999999999000), NULL},
    {"100000000000", 0, INT64_C(100000000000), NULL},
    {"253402300799999", 0, TT_TIME_MAX_MS, NULL},
    {"1700000000.5", 0, INT64_C(1700000000500), NULL},
    {"1700000000.123", 0, INT64_C(1700000000123), NULL},
    {"1.123", 0, 1123, NULL},
    {"0.0009", 0, 0, NULL},
    {"1700000000123.9", 0, INT64_C(1700000000123), NULL},
    {"\"1700000000\"", 0, INT64_C(1700000000000), NULL},
    {"\"1700000000.25\"", 0, INT64_C(1700000000250), NULL},
    {"\"1700000000.123999\"", 0, INT64_C(1700000000123), NULL},
    {"\"1700000000123\"", 0, INT64_C(1700000000123), NULL},
    {"\"1700000000123.7\"", 0, INT64_C(1700000000123), NULL},
    {"\"0\"", 0, 0, NULL},
    {"\"2026-11-22T07:47:51.123Z\"", 0, T_REF, NULL},
    {"\"2026-11-22T08:47:51.123+01:00\"", 0, T_REF, NULL},
    {"-1", -1, 0, "timestamp out of range"},
    {"-0.5", -1, 0, "timestamp out of range"},
    {"-1700000000", -1, 0, "timestamp out of range"},
    {"253402300800000", -1, 0, "timestamp out of range"},
    {"9223372036854775807", -1, 0, "timestamp out of range"},
    {"1e300", -1, 0, "timestamp out of range"},
    {"\"253402300800000\"", -1, 0, "timestamp out of range"},
    {"\"99999999999999999999999999\"", -1, 0, "timestamp out of range"},
    {"\"1969-12-31T23:59:59Z\"", -1, 0, "timestamp out of range"},
    {"\"abc\"", -1, 0, "not a timestamp"},
    {"\"\"", -1, 0, "not a timestamp"},
    {"\"12a\"", -1, 0, "not a timestamp"},
    {"\"1.\"", -1, 0, "not a timestamp"},
    {"\".5\"", -1, 0, "not a timestamp"},
    {"\"1.2.3\"", -1, 0, "not a timestamp"},
    {"\"-5\"", -1, 0, "not a timestamp"},
    {"\" 5\"", -1, 0, "not a timestamp"},
    {"\"1e9\"", -1, 0, "not a timestamp"},
    {"\"2025-02-29T00:00:00Z\"", -1, 0, "not a timestamp"},
    {"null", -1, 0, "not a timestamp"},
    {"true", -1, 0, "not a timestamp"},
    {"false", -1, 0, "not a timestamp"},
    {"[]", -1, 0, "not a timestamp"},
    {"{}", -1, 0, "not a timestamp"},
};

START_TEST(test_from_json)
{
    const json_case *c = &json_cases[_i];
    json_error_t jerr;
    json_t *v = json_loads(c->json, JSON_DECODE_ANY, &jerr);
    ck_assert_msg(v != NULL, "fixture %s: %s", c->json, jerr.text);
    int64_t ms = -42;
    const char *why = NULL;
    int rc = tt_time_from_json(v, &ms, &why);
    json_decref(v);
    ck_assert_msg(rc == c->rc, "%s: rc %d want %d", c->json, rc, c->rc);
    if (c->rc == 0) {
        ck_assert_msg(ms == c->ms, "%s: got %lld want %lld", c->json, (long long)ms,
                      (long long)c->ms);
    } else {
        ck_assert_ptr_nonnull(why);
        ck_assert_str_eq(why, c->why);
        ck_assert_msg(ms == -42, "%s: *out_ms written on failure", c->json);
    }
}
END_TEST

START_TEST(test_from_json_null_value)
{
    int64_t ms = -42;
    const char *why = NULL;
    ck_assert_int_eq(tt_time_from_json(NULL, &ms, &why), -1);
    ck_assert_str_eq(why, "not a timestamp");
}
END_TEST

typedef struct {
    int64_t ms;
    const char *out;
} fmt_case;

static const fmt_case fmt_cases[] = {
    {0, "1970-01-01T00:00:00.000Z"},
    {1, "1970-01-01T00:00:00.001Z"},
    {T_REF, "2026-11-22T07:47:51.123Z"},
    {INT64_C(951782400000), "2000-02-29T00:00:00.000Z"},
    {INT64_C(951868800000), "2000-03-01T00:00:00.000Z"},
    {INT64_C(946684799999), "1999-12-31T23:59:59.999Z"},
    {INT64_C(1483228799999), "2016-12-31T23:59:59.999Z"},
    {INT64_C(2147483648000), "2038-01-19T03:14:08.000Z"},
    {TT_TIME_MAX_MS, "9999-12-31T23:59:59.999Z"},
    /* clamped */
    {-1, "1970-01-01T00:00:00.000Z"},
    {INT64_MIN, "1970-01-01T00:00:00.000Z"},
    {TT_TIME_MAX_MS + 1, "9999-12-31T23:59:59.999Z"},
    {INT64_MAX, "9999-12-31T23:59:59.999Z"},
};

START_TEST(test_format)
{
    const fmt_case *c = &fmt_cases[_i];
    char buf[TT_TIME_BUFSZ];
    memset(buf, 'x', sizeof(buf));
    tt_time_format(c->ms, buf);
    ck_assert_str_eq(buf, c->out);

    /* and back again, for values inside the range */
    if (c->ms >= TT_TIME_MIN_MS && c->ms <= TT_TIME_MAX_MS) {
        int64_t back = -1;
        ck_assert_int_eq(tt_time_parse_rfc3339(buf, strlen(buf), &back), 0);
        ck_assert_int_eq(back, c->ms);
    }
}
END_TEST

/* Walks the whole range in uneven steps (hitting many days, months, leap
 * years and times of day) and checks format and parse are inverses. */
START_TEST(test_format_roundtrip_sweep)
{
    const int64_t step = INT64_C(86400000) * 97 + INT64_C(3723456) + 7;
    int n = 0;
    for (int64_t ms = 0; ms <= TT_TIME_MAX_MS; ms += step) {
        char buf[TT_TIME_BUFSZ];
        int64_t back = -1;
        tt_time_format(ms, buf);
        ck_assert_uint_eq(strlen(buf), 24);
        ck_assert_msg(tt_time_parse_rfc3339(buf, strlen(buf), &back) == 0, "%s", buf);
        ck_assert_msg(back == ms, "%s: %lld != %lld", buf, (long long)back, (long long)ms);
        n++;
    }
    ck_assert_int_gt(n, 20000);
}
END_TEST

typedef struct {
    const char *in;
    int rc;
    int64_t ms;
} dur_case;

static const dur_case dur_cases[] = {
    {"250ms", 0, 250},
    {"0ms", 0, 0},
    {"5s", 0, 5000},
    {"15m", 0, 900000},
    {"1h", 0, 3600000},
    {"2d", 0, 172800000},
    {"1h30m", 0, 5400000},
    {"1m30s", 0, 90000},
    {"1d2h3m4s5ms", 0, INT64_C(93784005)},
    {"1s500ms", 0, 1500},
    {"90", 0, 90000},
    {"0", 0, 0},
    {"007s", 0, 7000},
    {"9223372036854775807ms", 0, INT64_MAX},
    {"", -1, 0},
    {"-5s", -1, 0},
    {"+5s", -1, 0},
    {"5x", -1, 0},
    {"5S", -1, 0},
    {"h", -1, 0},
    {"ms", -1, 0},
    {"5 s", -1, 0},
    {" 5s", -1, 0},
    {"5s ", -1, 0},
    {"1h30", -1, 0},
    {"1.5s", -1, 0},
    {"5sm", -1, 0},
    {"5mss", -1, 0},
    {"9223372036854775808ms", -1, 0},
    {"9223372036854775807s", -1, 0},
    {"99999999999999999999", -1, 0},
    {"106751991168d", -1, 0},
    {"9223372036854775807ms1ms", -1, 0},
};

START_TEST(test_duration)
{
    const dur_case *c = &dur_cases[_i];
    int64_t ms = -42;
    int rc = tt_time_parse_duration(c->in, &ms);
    ck_assert_msg(rc == c->rc, "\"%s\": rc %d want %d", c->in, rc, c->rc);
    if (c->rc == 0) {
        ck_assert_msg(ms == c->ms, "\"%s\": got %lld want %lld", c->in, (long long)ms,
                      (long long)c->ms);
    } else {
        ck_assert_msg(ms == -42, "\"%s\": *out_ms written on failure", c->in);
    }
}
END_TEST

START_TEST(test_duration_null)
{
    int64_t ms = 0;
    ck_assert_int_eq(tt_time_parse_duration(NULL, &ms), -1);
}
END_TEST

/* Finding messages used to show raw durations ("61500ms", "3601s",
 * "86399s"); tt_time_format_duration writes them for people. */
typedef struct {
    int64_t ms;
    const char *want;
} fmt_dur_case;

static const fmt_dur_case fmt_dur_cases[] = {
    {0, "0s"},
    {1, "1ms"},
    {250, "250ms"},
    {999, "999ms"},
    {1000, "1s"},
    {1005, "1.005s"},
    {1050, "1.05s"},
    {1500, "1.5s"},
    {5000, "5s"},
    {59999, "59.999s"},
    {60000, "1m"},
    {60500, "1m0.5s"},
    {61500, "1m1.5s"},
    {90000, "1m30s"},
    {900000, "15m"},
    {3600000, "1h"},
    {3600500, "1h0m0.5s"},
    {3601000, "1h0m1s"},
    {3660000, "1h1m"},
    {5400000, "1h30m"},
    {86399000, "23h59m59s"},
    {86400000, "24h"},
    {172800000, "48h"},
    {-250, "-250ms"},
    {-61500, "-1m1.5s"},
    {-3600000, "-1h"},
    {INT64_MAX, "2562047788015h12m55.807s"},
    {INT64_MIN, "-2562047788015h12m55.808s"},
};

START_TEST(test_format_duration)
{
    const fmt_dur_case *c = &fmt_dur_cases[_i];
    char buf[TT_DURATION_BUFSZ];
    memset(buf, 'x', sizeof(buf));
    ck_assert_ptr_eq(tt_time_format_duration(c->ms, buf), buf);
    ck_assert_msg(strcmp(buf, c->want) == 0, "%lld: got \"%s\" want \"%s\"", (long long)c->ms, buf,
                  c->want);
}
END_TEST

/* Whole seconds (and whole milliseconds below a second) read back through
 * tt_time_parse_duration. */
START_TEST(test_format_duration_roundtrip)
{
    for (int64_t ms = 0; ms < INT64_C(200000000); ms = ms * 3 + 1000) {
        int64_t v = ms < 1000 ? ms : ms - ms % 1000;
        char buf[TT_DURATION_BUFSZ];
        int64_t back = -1;
        tt_time_format_duration(v, buf);
        ck_assert_msg(tt_time_parse_duration(buf, &back) == 0 && back == v,
                      "%lld -> \"%s\" -> %lld", (long long)v, buf, (long long)back);
    }
}
END_TEST

START_TEST(test_clocks)
{
    int64_t now = tt_time_now_ms();
    /* after 2020-01-01 and inside the accepted range */
    ck_assert_int_gt(now, INT64_C(1577836800000));
    ck_assert_int_le(now, TT_TIME_MAX_MS);
    int64_t a = tt_time_mono_ns();
    int64_t b = tt_time_mono_ns();
    ck_assert_int_ge(b, a);
}
END_TEST

Suite *tt_time_suite(void)
{
    Suite *s = suite_create("tt_time");
    TCase *tc = tcase_create("rfc3339");
    tcase_add_loop_test(tc, test_rfc3339_valid, 0, NCASES(rfc_ok));
    tcase_add_loop_test(tc, test_rfc3339_invalid, 0, NCASES(rfc_bad));
    tcase_add_loop_test(tc, test_rfc3339_length_bound, 0, NCASES(rfc_len));
    suite_add_tcase(s, tc);

    tc = tcase_create("from_json");
    tcase_add_loop_test(tc, test_from_json, 0, NCASES(json_cases));
    tcase_add_test(tc, test_from_json_null_value);
    suite_add_tcase(s, tc);

    tc = tcase_create("format");
    tcase_add_loop_test(tc, test_format, 0, NCASES(fmt_cases));
    tcase_add_test(tc, test_format_roundtrip_sweep);
    suite_add_tcase(s, tc);

    tc = tcase_create("duration");
    tcase_add_loop_test(tc, test_duration, 0, NCASES(dur_cases));
    tcase_add_test(tc, test_duration_null);
    tcase_add_loop_test(tc, test_format_duration, 0, NCASES(fmt_dur_cases));
    tcase_add_test(tc, test_format_duration_roundtrip);
    tcase_add_test(tc, test_clocks);
    suite_add_tcase(s, tc);
    return s;
}
