/* test_buf.c - tt_buf: bounded growth, escaping, wipe. */
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "tt_buf.h"

START_TEST(buf_grows_to_max_and_refuses_beyond)
{
    tt_buf b;
    tt_buf_init(&b, 1000);
    char chunk[100];
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(tt_buf_add(&b, chunk, sizeof(chunk)), 0);
    }
    ck_assert_uint_eq(b.len, 1000);
    /* One byte more is an error and leaves the buffer untouched. */
    ck_assert_int_eq(tt_buf_add(&b, "y", 1), -1);
    ck_assert_uint_eq(b.len, 1000);
    ck_assert_int_eq(b.data[1000], '\0');
    tt_buf_free(&b);
    ck_assert_ptr_null(b.data);
}
END_TEST

START_TEST(buf_printf_respects_max)
{
    tt_buf b;
    tt_buf_init(&b, 10);
    ck_assert_int_eq(tt_buf_printf(&b, "%d-%s", 42, "abc"), 0);
    ck_assert_str_eq(b.data, "42-abc");
    ck_assert_int_eq(tt_buf_printf(&b, "%s", "12345"), -1);
    ck_assert_str_eq(b.data, "42-abc");
    tt_buf_free(&b);
}
END_TEST

static const struct {
    const char *in;
    const char *out;
} escape_cases[] = {
    {"plain", "plain"},
    {"q\"uote", "q\\\"uote"},
    {"back\\slash", "back\\\\slash"},
    {"nl\nret\rtab\t", "nl\\nret\\rtab\\t"},
    {"\x01\x1f", "\\u0001\\u001f"},
    {"caf\xc3\xa9", "caf\xc3\xa9"},
};

START_TEST(buf_json_escape)
{
    tt_buf b;
    tt_buf_init(&b, 1024);
    ck_assert_int_eq(tt_buf_add_json_escaped(&b, escape_cases[_i].in), 0);
    ck_assert_str_eq(b.data, escape_cases[_i].out);
    tt_buf_free(&b);
}
END_TEST

START_TEST(buf_detach_and_reset)
{
    tt_buf b;
    tt_buf_init(&b, 64);
    tt_buf_adds(&b, "hello");
    tt_buf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_str_eq(b.data, "");
    tt_buf_adds(&b, "bye");
    char *p = tt_buf_detach(&b);
    ck_assert_str_eq(p, "bye");
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.max, 64);
    free(p);
    tt_buf_free_wipe(&b); /* on an empty buffer: must not crash */
}
END_TEST

Suite *tt_buf_suite(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, buf_grows_to_max_and_refuses_beyond);
    tcase_add_test(tc, buf_printf_respects_max);
    tcase_add_loop_test(tc, buf_json_escape, 0, sizeof(escape_cases) / sizeof(escape_cases[0]));
    tcase_add_test(tc, buf_detach_and_reset);
    suite_add_tcase(s, tc);
    return s;
}
