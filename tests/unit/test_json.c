/* test_json.c - tt_json_dump must produce exactly jansson's compact output. */
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "tt_json.h"

static const char *const docs[] = {
    "{}",
    "[]",
    "{\"a\":1,\"b\":[1,2,3],\"c\":{\"d\":null,\"e\":true,\"f\":false}}",
    "{\"s\":\"quote \\\" back \\\\ slash / nl \\n cr \\r tab \\t bs \\b ff \\f\"}",
    "{\"ctl\":\"\\u0001\\u001f\\u007f\",\"utf8\":\"caf\\u00e9 \\u2028 \\ud83d\\ude00\"}",
    "[1.5,-0.0,1e300,1e-7,1.5e-300,2.0,100000000000000000000.0,3.14159265358979,-9223372036854775808]",
    "{\"specversion\":\"1.0\",\"data\":{\"scopes\":[\"a\",\"b\"],\"status\":200}}",
    "\"\"",
    "[0,-0,7,-1,10,-10,9223372036854775807,-9223372036854775807,1000000]",
    "{\"plain\":\"no escapes at all\",\"tail\":\"ends with an escape\\n\",\"\\t\":\"key\"}",
};

START_TEST(json_dump_matches_jansson)
{
    json_error_t e;
    json_t *v = json_loads(docs[_i], JSON_DECODE_ANY, &e);
    ck_assert_msg(v != NULL, "bad fixture %d: %s", _i, e.text);
    char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    tt_buf got;
    tt_buf_init(&got, 1 << 20);
    ck_assert_int_eq(tt_json_dump(v, &got), 0);
    ck_assert_str_eq(got.data, want);
    free(want);
    tt_buf_free(&got);
    json_decref(v);
}
END_TEST

START_TEST(json_dump_respects_buffer_max_and_depth)
{
    json_t *v = json_pack("{s:s}", "k", "0123456789");
    tt_buf small;
    tt_buf_init(&small, 8);
    ck_assert_int_eq(tt_json_dump(v, &small), -1);
    tt_buf_free(&small);
    json_decref(v);

    json_t *deep = json_array();
    json_t *cur = deep;
    for (int i = 0; i < 100; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    tt_buf b;
    tt_buf_init(&b, 1 << 20);
    ck_assert_int_eq(tt_json_dump(deep, &b), -1);
    tt_buf_free(&b);
    json_decref(deep);
}
END_TEST

Suite *tt_json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("dump");
    tcase_add_loop_test(tc, json_dump_matches_jansson, 0, sizeof(docs) / sizeof(docs[0]));
    tcase_add_test(tc, json_dump_respects_buffer_max_and_depth);
    suite_add_tcase(s, tc);
    return s;
}
