/* test_intern.c - string interning (tt_intern): equal bytes get one id and
 * one stored copy, ids are dense in order of first sight, lookups of unknown
 * bytes find nothing, the table survives growth (slot rehash, entry array,
 * new storage chunks) with earlier pointers still valid, strings longer than
 * a storage chunk, empty and binary strings, and the memory accounting. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "tt_intern.h"

static tt_intern *fresh(void)
{
    tt_intern *t = tt_intern_new();
    ck_assert_ptr_nonnull(t);
    return t;
}

static uint32_t get_str(tt_intern *t, const char *s)
{
    return tt_intern_get(t, s, strlen(s));
}

START_TEST(intern_same_bytes_same_id_and_pointer)
{
    tt_intern *t = fresh();
    ck_assert_uint_eq(tt_intern_count(t), 0);
    uint32_t a = get_str(t, "alpha");
    ck_assert_uint_eq(a, 1);
    /* a different buffer with the same bytes */
    char copy[] = "alpha";
    ck_assert_uint_eq(tt_intern_get(t, copy, 5), a);
    ck_assert_uint_eq(tt_intern_find(t, copy, 5), a);
    ck_assert_uint_eq(tt_intern_count(t), 1);
    const char *p = tt_intern_str(t, a);
    ck_assert_str_eq(p, "alpha");
    ck_assert_ptr_ne(p, copy); /* a copy is stored, not the caller's buffer */
    ck_assert_uint_eq(tt_intern_len(t, a), 5);
    ck_assert_ptr_eq(tt_intern_str(t, get_str(t, "alpha")), p);
    tt_intern_free(t);
}
END_TEST

/* Each entry: bytes and length; all distinct from each other. */
static const struct {
    const char *bytes;
    size_t len;
} distinct[] = {
    {"a", 1},    {"b", 1},    {"ab", 2},    {"abc", 3},   {"ABC", 3},  {"abc ", 4},
    {"", 0},     {"\0", 1},   {"\0\0", 2},  {"a\0b", 3},  {"a\0c", 3}, {"abcd", 4},
    {"\xff", 1}, {"\x01", 1}, {"tok-A", 5}, {"tok-B", 5},
};
#define N_DISTINCT (sizeof(distinct) / sizeof(distinct[0]))

START_TEST(intern_distinct_bytes_dense_ids)
{
    tt_intern *t = fresh();
    for (size_t i = 0; i < N_DISTINCT; i++) {
        ck_assert_uint_eq(tt_intern_find(t, distinct[i].bytes, distinct[i].len), 0);
        uint32_t id = tt_intern_get(t, distinct[i].bytes, distinct[i].len);
        ck_assert_msg(id == i + 1, "entry %zu got id %u, want %zu", i, id, i + 1);
    }
    ck_assert_uint_eq(tt_intern_count(t), N_DISTINCT);
    /* again, in reverse: same ids, nothing added; bytes and lengths exact */
    for (size_t k = N_DISTINCT; k-- > 0;) {
        ck_assert_uint_eq(tt_intern_get(t, distinct[k].bytes, distinct[k].len), k + 1);
        ck_assert_uint_eq(tt_intern_find(t, distinct[k].bytes, distinct[k].len), k + 1);
        ck_assert_uint_eq(tt_intern_len(t, (uint32_t)k + 1), distinct[k].len);
        const char *s = tt_intern_str(t, (uint32_t)k + 1);
        ck_assert_int_eq(memcmp(s, distinct[k].bytes, distinct[k].len), 0);
        ck_assert_int_eq(s[distinct[k].len], '\0'); /* NUL-terminated */
    }
    ck_assert_uint_eq(tt_intern_count(t), N_DISTINCT);
    tt_intern_free(t);
}
END_TEST

START_TEST(intern_empty_string)
{
    tt_intern *t = fresh();
    ck_assert_uint_eq(tt_intern_find(t, "", 0), 0);
    uint32_t e = tt_intern_get(t, "", 0);
    ck_assert_uint_eq(e, 1);
    ck_assert_uint_eq(tt_intern_len(t, e), 0);
    ck_assert_str_eq(tt_intern_str(t, e), "");
    /* the empty prefix of another buffer is the same string */
    ck_assert_uint_eq(tt_intern_get(t, "xyz", 0), e);
    ck_assert_uint_eq(tt_intern_find(t, "xyz", 0), e);
    ck_assert_uint_eq(get_str(t, "x"), 2);
    ck_assert_uint_eq(tt_intern_count(t), 2);
    tt_intern_free(t);
}
END_TEST

START_TEST(intern_find_unknown)
{
    tt_intern *t = fresh();
    ck_assert_uint_eq(tt_intern_find(t, "nope", 4), 0); /* empty table */
    ck_assert_uint_eq(get_str(t, "scope:read"), 1);
    ck_assert_uint_eq(tt_intern_find(t, "scope:rea", 9), 0);    /* prefix */
    ck_assert_uint_eq(tt_intern_find(t, "scope:read!", 11), 0); /* extension */
    ck_assert_uint_eq(tt_intern_find(t, "scope:reaD", 10), 0);  /* one byte off */
    ck_assert_uint_eq(tt_intern_find(t, "scope:read", 10), 1);
    ck_assert_uint_eq(tt_intern_count(t), 1); /* find never adds */
    tt_intern_free(t);
}
END_TEST

#define MANY 100000

static size_t key_of(uint32_t i, char *out, size_t cap)
{
    int n = snprintf(out, cap, "client-%u/scope-%u", i, i * 2654435761u);
    ck_assert_int_gt(n, 0);
    return (size_t)n;
}

/* Enough strings to rehash the slots many times, regrow the entry array and
 * fill several 64 KiB storage chunks: ids stay dense, every string is found
 * again, and pointers handed out early still point at the same bytes. */
START_TEST(intern_many_strings_growth)
{
    tt_intern *t = fresh();
    const char **early = calloc(64, sizeof(*early));
    ck_assert_ptr_nonnull(early);
    size_t total = 0, prev_bytes = tt_intern_bytes(t);
    char k[64];
    for (uint32_t i = 0; i < MANY; i++) {
        size_t n = key_of(i, k, sizeof(k));
        total += n;
        ck_assert_uint_eq(tt_intern_get(t, k, n), i + 1);
        if (i < 64) {
            early[i] = tt_intern_str(t, i + 1);
        }
        size_t b = tt_intern_bytes(t);
        ck_assert_uint_ge(b, prev_bytes); /* never shrinks while adding */
        prev_bytes = b;
    }
    ck_assert_uint_eq(tt_intern_count(t), MANY);
    for (uint32_t i = 0; i < MANY; i++) {
        size_t n = key_of(i, k, sizeof(k));
        ck_assert_uint_eq(tt_intern_find(t, k, n), i + 1);
        ck_assert_uint_eq(tt_intern_get(t, k, n), i + 1);
        ck_assert_uint_eq(tt_intern_len(t, i + 1), n);
        ck_assert_int_eq(memcmp(tt_intern_str(t, i + 1), k, n + 1), 0);
    }
    for (uint32_t i = 0; i < 64; i++) {
        ck_assert_ptr_eq(tt_intern_str(t, i + 1), early[i]);
        size_t n = key_of(i, k, sizeof(k));
        ck_assert_int_eq(memcmp(early[i], k, n + 1), 0);
    }
    ck_assert_uint_eq(tt_intern_count(t), MANY); /* re-getting added nothing */
    ck_assert_uint_eq(tt_intern_find(t, "client-100000/", 14), 0);
    /* the bytes, their NULs, one 4-byte slot and an entry each, at least */
    ck_assert_uint_ge(tt_intern_bytes(t), total + MANY + (size_t)MANY * 4 * 2);
    free(early);
    tt_intern_free(t);
}
END_TEST

/* Lengths around and over the 64 KiB storage chunk: a string that does not
 * fit the current chunk starts a new one, one larger than a chunk gets its
 * own, and the strings before and after are unharmed. */
static const size_t long_lens[] = {1000, 65535, 65536, 65537, 200000, 3, 70000, 1};

START_TEST(intern_long_strings)
{
    tt_intern *t = fresh();
    size_t n = sizeof(long_lens) / sizeof(long_lens[0]);
    char *bufs[sizeof(long_lens) / sizeof(long_lens[0])];
    for (size_t i = 0; i < n; i++) {
        bufs[i] = malloc(long_lens[i]);
        ck_assert_ptr_nonnull(bufs[i]);
        for (size_t j = 0; j < long_lens[i]; j++) {
            bufs[i][j] = (char)('a' + (i * 7 + j) % 26);
        }
        size_t before = tt_intern_bytes(t);
        ck_assert_uint_eq(tt_intern_get(t, bufs[i], long_lens[i]), i + 1);
        if (long_lens[i] >= 65536) { /* cannot share a chunk: a new one, counted */
            ck_assert_uint_ge(tt_intern_bytes(t), before + long_lens[i] + 1);
        }
    }
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_eq(tt_intern_find(t, bufs[i], long_lens[i]), i + 1);
        ck_assert_uint_eq(tt_intern_len(t, (uint32_t)i + 1), long_lens[i]);
        const char *s = tt_intern_str(t, (uint32_t)i + 1);
        ck_assert_int_eq(memcmp(s, bufs[i], long_lens[i]), 0);
        ck_assert_int_eq(s[long_lens[i]], '\0');
        /* one byte shorter is another string */
        ck_assert_uint_eq(tt_intern_find(t, bufs[i], long_lens[i] - 1), 0);
    }
    ck_assert_uint_eq(tt_intern_count(t), n);
    for (size_t i = 0; i < n; i++) {
        free(bufs[i]);
    }
    tt_intern_free(t);
}
END_TEST

/* Binary keys as the engine uses them (arrays of 4-byte ids, zeros inside). */
START_TEST(intern_binary_keys)
{
    tt_intern *t = fresh();
    uint32_t a[3] = {1, 0, 2}, b[3] = {1, 0, 3}, c[2] = {1, 0};
    uint32_t ia = tt_intern_get(t, a, sizeof(a));
    uint32_t ib = tt_intern_get(t, b, sizeof(b));
    uint32_t ic = tt_intern_get(t, c, sizeof(c));
    ck_assert_uint_eq(ia, 1);
    ck_assert_uint_eq(ib, 2);
    ck_assert_uint_eq(ic, 3);
    uint32_t a2[3] = {1, 0, 2};
    ck_assert_uint_eq(tt_intern_get(t, a2, sizeof(a2)), ia);
    ck_assert_uint_eq(tt_intern_len(t, ia), sizeof(a));
    ck_assert_int_eq(memcmp(tt_intern_str(t, ib), b, sizeof(b)), 0);
    tt_intern_free(t);
}
END_TEST

START_TEST(intern_bytes_accounting)
{
    tt_intern *t = fresh();
    size_t empty = tt_intern_bytes(t);
    ck_assert_uint_ge(empty, 64 * sizeof(uint32_t)); /* the initial slots at least */
    ck_assert_uint_eq(get_str(t, "x"), 1);
    size_t one = tt_intern_bytes(t);
    ck_assert_uint_gt(one, empty); /* first chunk and entries */
    /* a string already held costs nothing */
    ck_assert_uint_eq(get_str(t, "x"), 1);
    ck_assert_uint_eq(tt_intern_bytes(t), one);
    ck_assert_uint_eq(get_str(t, "y"), 2);
    size_t two = tt_intern_bytes(t);
    /* a failed lookup costs nothing either */
    ck_assert_uint_eq(tt_intern_find(t, "zzz", 3), 0);
    ck_assert_uint_eq(tt_intern_bytes(t), two);
    tt_intern_free(t);
}
END_TEST

/* The figure tracks what the heap really gave: within 10% of glibc's count
 * of bytes in use (arena and mmapped) after many strings (slots rehashed, entries regrown,
 * chunks added). Skipped where the allocator does not keep that count
 * (ASan's allocator reports 0). */
START_TEST(intern_bytes_match_heap)
{
    struct mallinfo2 m0 = mallinfo2();
    tt_intern *t = fresh();
    char k[64];
    for (uint32_t i = 0; i < MANY; i++) {
        size_t n = key_of(i, k, sizeof(k));
        ck_assert_uint_eq(tt_intern_get(t, k, n), i + 1);
    }
    struct mallinfo2 m1 = mallinfo2();
    /* in use: small blocks from the arenas plus mmapped large ones */
    size_t used0 = m0.uordblks + m0.hblkhd, used1 = m1.uordblks + m1.hblkhd;
    if (used1 > used0) {
        double heap = (double)(used1 - used0);
        double said = (double)tt_intern_bytes(t);
        ck_assert_msg(said >= heap * 0.9 && said <= heap * 1.1,
                      "tt_intern_bytes %.0f, heap grew by %.0f", said, heap);
    }
    tt_intern_free(t);
}
END_TEST

START_TEST(intern_free_null)
{
    tt_intern_free(NULL);
    /* an empty table frees cleanly too (ASan checks for leaks) */
    tt_intern_free(fresh());
}
END_TEST

START_TEST(intern_hash64)
{
    char a[] = "token", b[] = "token";
    ck_assert_uint_eq(tt_hash64(a, 5), tt_hash64(b, 5));
    ck_assert_uint_ne(tt_hash64("token", 5), tt_hash64("tokeN", 5));
    ck_assert_uint_ne(tt_hash64("token", 5), tt_hash64("token", 4));
    ck_assert_uint_ne(tt_hash64("", 0), tt_hash64("\0", 1));
    ck_assert_uint_eq(tt_hash64("", 0), tt_hash64("ignored", 0));
}
END_TEST

Suite *tt_intern_suite(void)
{
    Suite *s = suite_create("intern");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, intern_same_bytes_same_id_and_pointer);
    tcase_add_test(tc, intern_distinct_bytes_dense_ids);
    tcase_add_test(tc, intern_empty_string);
    tcase_add_test(tc, intern_find_unknown);
    tcase_add_test(tc, intern_many_strings_growth);
    tcase_add_test(tc, intern_long_strings);
    tcase_add_test(tc, intern_binary_keys);
    tcase_add_test(tc, intern_bytes_accounting);
    tcase_add_test(tc, intern_bytes_match_heap);
    tcase_add_test(tc, intern_free_null);
    tcase_add_test(tc, intern_hash64);
    suite_add_tcase(s, tc);
    return s;
}
