/* test_ingest.c - body splitting, per-event results and the response shape. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "suites.h"
#include "tt_ingest.h"

#define USED(id)                                                                              \
    "{\"specversion\":\"1.0\",\"id\":\"" id "\",\"source\":\"rs\",\"type\":\"token.used\","  \
    "\"time\":\"2026-01-01T00:00:00Z\",\"data\":{\"token_id\":\"t1\",\"resource\":\"orders\"}}"

static tt_store *store;
static char dbpath[64];

static void setup(void)
{
    snprintf(dbpath, sizeof(dbpath), "/tmp/tt_ingest_%d.db", (int)getpid());
    unlink(dbpath);
    char err[256];
    store = tt_store_open(dbpath, NULL, err, sizeof(err));
    ck_assert_msg(store != NULL, "%s", err);
}

static void teardown(void)
{
    tt_store_close(store);
    unlink(dbpath);
}

/* Table: body, format, expected status, expected response. */
static const struct {
    const char *name;
    const char *body;
    tt_body_format fmt;
    tt_ingest_status status;
    const char *resp;
} cases[] = {
    {"single", USED("a"), TT_BODY_JSON, TT_INGEST_OK,
     "{\"accepted\":1,\"duplicates\":0,\"rejected\":0,\"errors\":[]}"},
    {"array with a duplicate", "[" USED("a") "," USED("b") "," USED("a") "]", TT_BODY_JSON,
     TT_INGEST_OK, "{\"accepted\":2,\"duplicates\":1,\"rejected\":0,\"errors\":[]}"},
    {"ndjson mixed, blank lines skipped", USED("a") "\n\n  \r\n{\"x\":1}\n" USED("c") "\r\n",
     TT_BODY_NDJSON, TT_INGEST_OK,
     "{\"accepted\":2,\"duplicates\":0,\"rejected\":1,\"errors\":[{\"index\":1,\"id\":null,"
     "\"error\":\"specversion: missing\"}]}"},
    {"broken json body", "{\"specversion\":", TT_BODY_JSON, TT_INGEST_OK,
     "{\"accepted\":0,\"duplicates\":0,\"rejected\":1,\"errors\":[{\"index\":0,\"id\":null,"
     "\"error\":\"json: unexpected token near end of file at line 1 column 15\"}]}"},
    {"empty", "", TT_BODY_JSON, TT_INGEST_EMPTY, NULL},
    {"whitespace only", " \r\n\t ", TT_BODY_JSON, TT_INGEST_EMPTY, NULL},
    {"only blank lines", "\n\n \n", TT_BODY_NDJSON, TT_INGEST_EMPTY, NULL},
    {"empty array", "[]", TT_BODY_JSON, TT_INGEST_EMPTY, NULL},
    {"single, leading whitespace, twice", " \r\n" USED("a") "\n", TT_BODY_JSON, TT_INGEST_OK,
     "{\"accepted\":1,\"duplicates\":0,\"rejected\":0,\"errors\":[]}"},
    {"single, rejected", "{\"id\":\"x\"}", TT_BODY_JSON, TT_INGEST_OK,
     "{\"accepted\":0,\"duplicates\":0,\"rejected\":1,\"errors\":[{\"index\":0,\"id\":\"x\","
     "\"error\":\"specversion: missing\"}]}"},
    /* a scalar body is an event that is not an object, as an NDJSON line is */
    {"single, not a JSON object", "42", TT_BODY_JSON, TT_INGEST_OK,
     "{\"accepted\":0,\"duplicates\":0,\"rejected\":1,\"errors\":[{\"index\":0,\"id\":null,"
     "\"error\":\"event: not a JSON object\"}]}"},
    {"single, null", " null ", TT_BODY_JSON, TT_INGEST_OK,
     "{\"accepted\":0,\"duplicates\":0,\"rejected\":1,\"errors\":[{\"index\":0,\"id\":null,"
     "\"error\":\"event: not a JSON object\"}]}"},
    {"single, a string", "\"abc\"", TT_BODY_JSON, TT_INGEST_OK,
     "{\"accepted\":0,\"duplicates\":0,\"rejected\":1,\"errors\":[{\"index\":0,\"id\":null,"
     "\"error\":\"event: not a JSON object\"}]}"},
    /* a UTF-8 byte order mark before the JSON is skipped */
    {"single after a BOM", "\xEF\xBB\xBF" USED("a"), TT_BODY_JSON, TT_INGEST_OK,
     "{\"accepted\":1,\"duplicates\":0,\"rejected\":0,\"errors\":[]}"},
    {"ndjson after a BOM", "\xEF\xBB\xBF" USED("a") "\n" USED("b") "\n", TT_BODY_NDJSON,
     TT_INGEST_OK, "{\"accepted\":2,\"duplicates\":0,\"rejected\":0,\"errors\":[]}"},
    /* jansson's " near '<token>'" would quote the start of the secret */
    {"broken json body with a token", "{\"data\":{\"token\":\"s3cr3t", TT_BODY_JSON,
     TT_INGEST_OK,
     "{\"accepted\":0,\"duplicates\":0,\"rejected\":1,\"errors\":[{\"index\":0,\"id\":null,"
     "\"error\":\"json: premature end of input at line 1 column 24\"}]}"},
};

START_TEST(ingest_table)
{
    tt_buf resp;
    tt_buf_init(&resp, 1 << 20);
    tt_ingest_stats st;
    memset(&st, 0, sizeof(st));
    tt_ingest_status s = tt_ingest_body(store, cases[_i].body, strlen(cases[_i].body),
                                        cases[_i].fmt, &resp, &st);
    ck_assert_msg(s == cases[_i].status, "%s: status %d", cases[_i].name, s);
    if (cases[_i].resp) {
        ck_assert_msg(strcmp(resp.data, cases[_i].resp) == 0, "%s: got %s", cases[_i].name,
                      resp.data);
    } else {
        ck_assert_ptr_nonnull(strstr(resp.data, "\"error\":"));
    }
    tt_buf_free(&resp);
}
END_TEST

START_TEST(ingest_stats_by_type_and_reason)
{
    const char *body = USED("a") "\n" USED("a") "\n"
                       "{\"specversion\":\"1.0\",\"id\":\"z\",\"source\":\"s\",\"type\":\"token.used\","
                       "\"time\":\"yesterday\",\"data\":{}}\n"
                       "[1]\n";
    tt_buf resp;
    tt_buf_init(&resp, 1 << 20);
    tt_ingest_stats st;
    memset(&st, 0, sizeof(st));
    ck_assert_int_eq(tt_ingest_body(store, body, strlen(body), TT_BODY_NDJSON, &resp, &st),
                     TT_INGEST_OK);
    ck_assert_uint_eq(st.accepted[TT_EV_TOKEN_USED], 1);
    ck_assert_uint_eq(st.duplicates[TT_EV_TOKEN_USED], 1);
    ck_assert_uint_eq(st.rejected[TT_EV_TOKEN_USED][TT_REJ_TIMESTAMP], 1);
    ck_assert_uint_eq(st.rejected[TT_EV_UNKNOWN][TT_REJ_NOT_OBJECT], 1);
    ck_assert_uint_eq(st.n_rejected, 2);
    tt_buf_free(&resp);
}
END_TEST

START_TEST(ingest_error_list_is_capped)
{
    size_t n = TT_INGEST_MAX_ERRORS + 5;
    tt_buf body;
    tt_buf_init(&body, 1 << 20);
    for (size_t i = 0; i < n; i++) {
        tt_buf_adds(&body, "{}\n");
    }
    tt_buf resp;
    tt_buf_init(&resp, 1 << 24);
    tt_ingest_stats st;
    memset(&st, 0, sizeof(st));
    ck_assert_int_eq(tt_ingest_body(store, body.data, body.len, TT_BODY_NDJSON, &resp, &st),
                     TT_INGEST_OK);
    ck_assert_uint_eq(st.n_rejected, n);
    ck_assert_ptr_nonnull(strstr(resp.data, "\"rejected\":1005,"));
    ck_assert_ptr_nonnull(strstr(resp.data, "\"errors_truncated\":true"));
    ck_assert_ptr_null(strstr(resp.data, "\"index\":1000,"));
    tt_buf_free(&body);
    tt_buf_free(&resp);
}
END_TEST

START_TEST(ingest_too_many_events)
{
    tt_buf body;
    tt_buf_init(&body, 1 << 22);
    for (size_t i = 0; i <= TT_INGEST_MAX_EVENTS; i++) {
        tt_buf_adds(&body, "1\n");
    }
    tt_buf resp;
    tt_buf_init(&resp, 1 << 20);
    tt_ingest_stats st;
    memset(&st, 0, sizeof(st));
    ck_assert_int_eq(tt_ingest_body(store, body.data, body.len, TT_BODY_NDJSON, &resp, &st),
                     TT_INGEST_TOO_MANY);
    ck_assert_uint_eq(st.n_rejected + st.n_accepted, 0);
    tt_buf_free(&body);
    tt_buf_free(&resp);
}
END_TEST

/* gzip a string with zlib's gzip wrapper. */
static size_t gz(const char *in, size_t n, unsigned char *out, size_t cap)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    deflate(&zs, Z_FINISH);
    size_t len = cap - zs.avail_out;
    deflateEnd(&zs);
    return len;
}

START_TEST(inflate_roundtrip_in_small_pieces)
{
    const char *text = USED("a") "\n" USED("b") "\n";
    unsigned char z[4096];
    size_t zn = gz(text, strlen(text), z, sizeof(z));
    tt_inflate *inf = tt_inflate_new();
    tt_buf out;
    tt_buf_init(&out, 1 << 20);
    for (size_t i = 0; i < zn; i += 7) {
        size_t k = zn - i < 7 ? zn - i : 7;
        ck_assert_int_eq(tt_inflate_feed(inf, z + i, k, &out), 0);
    }
    ck_assert_int_eq(tt_inflate_done(inf), 1);
    ck_assert_str_eq(out.data, text);
    tt_inflate_free(inf);
    tt_buf_free(&out);
}
END_TEST

START_TEST(inflate_bomb_stops_at_limit)
{
    size_t big = 50u << 20; /* 50 MiB of zeros compress to ~50 KiB */
    char *zeros = calloc(1, big);
    size_t cap = 1 << 20;
    unsigned char *z = malloc(cap);
    size_t zn = gz(zeros, big, z, cap);
    free(zeros);
    ck_assert_uint_lt(zn, 200000);
    tt_inflate *inf = tt_inflate_new();
    tt_buf out;
    tt_buf_init(&out, 1 << 20);
    ck_assert_int_eq(tt_inflate_feed(inf, z, zn, &out), -2);
    ck_assert_uint_le(out.len, 1 << 20);
    tt_inflate_free(inf);
    tt_buf_free(&out);
    free(z);
}
END_TEST

START_TEST(inflate_rejects_garbage_and_trailing_bytes)
{
    tt_inflate *inf = tt_inflate_new();
    tt_buf out;
    tt_buf_init(&out, 1 << 20);
    ck_assert_int_eq(tt_inflate_feed(inf, "definitely not gzip", 19, &out), -1);
    tt_inflate_free(inf);

    unsigned char z[256];
    size_t zn = gz("abc", 3, z, sizeof(z) - 4);
    memcpy(z + zn, "JUNK", 4);
    inf = tt_inflate_new();
    tt_buf_reset(&out);
    ck_assert_int_eq(tt_inflate_feed(inf, z, zn + 4, &out), -1);
    tt_inflate_free(inf);

    /* Truncated: not an error while feeding, but the stream is not done. */
    zn = gz("abcdef", 6, z, sizeof(z));
    inf = tt_inflate_new();
    tt_buf_reset(&out);
    ck_assert_int_eq(tt_inflate_feed(inf, z, zn - 5, &out), 0);
    ck_assert_int_eq(tt_inflate_done(inf), 0);
    tt_inflate_free(inf);
    tt_buf_free(&out);
}
END_TEST

Suite *tt_ingest_suite(void)
{
    Suite *s = suite_create("ingest");
    TCase *tc = tcase_create("body");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, ingest_table, 0, sizeof(cases) / sizeof(cases[0]));
    tcase_add_test(tc, ingest_stats_by_type_and_reason);
    tcase_add_test(tc, ingest_error_list_is_capped);
    tcase_add_test(tc, ingest_too_many_events);
    suite_add_tcase(s, tc);
    TCase *tz = tcase_create("inflate");
    tcase_add_test(tz, inflate_roundtrip_in_small_pieces);
    tcase_add_test(tz, inflate_bomb_stops_at_limit);
    tcase_add_test(tz, inflate_rejects_garbage_and_trailing_bytes);
    suite_add_tcase(s, tz);
    return s;
}
