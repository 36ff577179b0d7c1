/* test_text.c - tt_text: control characters in event fields shown as visible
 * escapes, never passed to the terminal (regression: `events`/`findings
 * --format table` printed ESC, CR, LF and BEL from fields as they were). */
#include <string.h>

#include "suites.h"
#include "tt_text.h"

static const struct {
    const char *in;
    const char *out;
} text_cases[] = {
    {"", ""},
    {"plain text 123 ~!", "plain text 123 ~!"},
    {"back\\slash", "back\\\\slash"},
    {"tab\tnl\ncr\resc\x1b", "tab\\tnl\\ncr\\resc\\e"},
    {"a\x1b[31mRED", "a\\e[31mRED"},
    {"/\x1b]0;pwned\x07x", "/\\e]0;pwned\\x07x"},
    {"\x01\x1f\x7f", "\\x01\\x1f\\x7f"},
    {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91"},
    /* C1 controls in UTF-8: U+009B is CSI, U+0085 NEL. */
    {"\302\2332J\302\205", "\\u009b2J\\u0085"}, /* octal: \x would eat the 2 */
    {"\xc2\xa0", "\xc2\xa0"},
    /* Not well-formed UTF-8: a raw 0x9b (CSI on 8-bit terminals), a lone
     * continuation, a truncated sequence, an overlong ESC, a surrogate. */
    {"\2332J", "\\x9b2J"},
    {"\xc3", "\\xc3"},
    {"\xe2\x82", "\\xe2\\x82"},
    {"\xc0\x9b", "\\xc0\\x9b"},
    {"\xed\xa0\x80", "\\xed\\xa0\\x80"},
};

START_TEST(text_escapes_controls)
{
    tt_buf b;
    tt_buf_init(&b, 1024);
    ck_assert_int_eq(tt_text_add_escaped(&b, text_cases[_i].in, 0), 0);
    ck_assert_str_eq(b.data, text_cases[_i].out);
    for (size_t i = 0; i < b.len; i++) {
        unsigned char c = (unsigned char)b.data[i];
        ck_assert_msg(c >= 0x20 && c != 0x7f, "control byte 0x%02x in output", c);
    }
    tt_buf_free(&b);
}
END_TEST

START_TEST(text_cut_keeps_escapes_whole)
{
    tt_buf b;
    tt_buf_init(&b, 1024);
    /* "ab\e" is 4 bytes: a 3-byte limit stops before the escape, not in it. */
    ck_assert_int_eq(tt_text_add_escaped(&b, "ab\x1b", 3), 0);
    ck_assert_str_eq(b.data, "ab");
    tt_buf_reset(&b);
    ck_assert_int_eq(tt_text_add_escaped(&b, "a\xc3\xa9", 2), 0);
    ck_assert_str_eq(b.data, "a");
    tt_buf_reset(&b);
    ck_assert_int_eq(tt_text_add_escaped(&b, "abcdef", 4), 0);
    ck_assert_str_eq(b.data, "abcd");
    tt_buf_free(&b);
}
END_TEST

START_TEST(text_cell_pads_and_cuts)
{
    tt_buf b;
    tt_buf_init(&b, 1024);
    ck_assert_int_eq(tt_text_add_cell(&b, "a\nb", 6, 0), 0);
    ck_assert_str_eq(b.data, "a\\nb  ");
    ck_assert_int_eq(tt_text_add_cell(&b, "0123456789", 4, 1), 0);
    ck_assert_str_eq(b.data, "a\\nb  0123");
    ck_assert_int_eq(tt_text_add_cell(&b, "0123456789", 4, 0), 0);
    ck_assert_str_eq(b.data, "a\\nb  01230123456789");
    tt_buf_reset(&b);
    ck_assert_int_eq(tt_text_add_cell(&b, "", 40, 0), 0);
    ck_assert_uint_eq(b.len, 40);
    tt_buf_free(&b);
}
END_TEST

START_TEST(text_over_max_leaves_buffer_unchanged)
{
    tt_buf b;
    tt_buf_init(&b, 8);
    ck_assert_int_eq(tt_buf_adds(&b, "ok:"), 0);
    /* 3 + 4 fits, the \x07 escape would not: nothing of it is kept. */
    ck_assert_int_eq(tt_text_add_escaped(&b, "abcd\x07", 0), -1);
    ck_assert_str_eq(b.data, "ok:");
    ck_assert_int_eq(tt_text_add_cell(&b, "ab", 10, 0), -1);
    ck_assert_str_eq(b.data, "ok:");
    tt_buf_free(&b);
    /* An empty string on an empty buffer still gives printable data. */
    tt_buf_init(&b, 8);
    ck_assert_int_eq(tt_text_add_escaped(&b, "", 0), 0);
    ck_assert_ptr_nonnull(b.data);
    ck_assert_str_eq(b.data, "");
    tt_buf_free(&b);
}
END_TEST

Suite *tt_text_suite(void)
{
    Suite *s = suite_create("text");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, text_escapes_controls, 0, sizeof(text_cases) / sizeof(text_cases[0]));
    tcase_add_test(tc, text_cut_keeps_escapes_whole);
    tcase_add_test(tc, text_cell_pads_and_cuts);
    tcase_add_test(tc, text_over_max_leaves_buffer_unchanged);
    suite_add_tcase(s, tc);
    return s;
}
