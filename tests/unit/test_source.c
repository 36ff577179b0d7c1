/* test_source.c - the SQLite source: bodies in seq order, the prepare hook
 * (records made on the read-ahead thread, pointing into themselves, larger
 * than a block's room), and a callback that stops mid-block gets that record
 * again, exactly once, at the next poll. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <sqlite3.h>

#include "suites.h"
#include "tt_source.h"

#define NROWS 3000
#define BIG 150000 /* larger than a read-ahead block */

static char dbpath[64];

/* Row i's body: mostly short; every 97th over a block; every 10th invalid. */
static size_t body_of(int i, char *out, size_t cap)
{
    size_t n = i % 97 == 5 ? BIG : (size_t)(20 + i % 300);
    ck_assert_uint_lt(n, cap);
    int h = snprintf(out, cap, "%s%d:", i % 10 == 3 ? "bad" : "ok", i);
    for (size_t k = (size_t)h; k < n; k++) {
        out[k] = (char)('a' + (i + k) % 26);
    }
    out[n] = '\0';
    return n;
}

static void make_db(void)
{
    snprintf(dbpath, sizeof(dbpath), "/tmp/tt_source_%d.db", (int)getpid());
    unlink(dbpath);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db,
                                  "CREATE TABLE events(seq INTEGER PRIMARY KEY, body BLOB);"
                                  "BEGIN",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_stmt *ins;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "INSERT INTO events VALUES (?1, ?2)", -1, &ins, NULL),
                     SQLITE_OK);
    static char body[BIG + 1];
    for (int i = 1; i <= NROWS; i++) {
        size_t n = body_of(i, body, sizeof(body));
        sqlite3_bind_int64(ins, 1, i);
        sqlite3_bind_blob(ins, 2, body, (int)n, SQLITE_STATIC);
        ck_assert_int_eq(sqlite3_step(ins), SQLITE_DONE);
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    ck_assert_int_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* The test's prepared record: a pointer into itself, then a kind and the text. */
typedef struct rec {
    const char *text; /* points at the text below, inside the record */
    int64_t ord;
    int kind; /* 'V' valid, 'E' error, 'R' raw body (hurried) */
    char pad[4];
} rec;

typedef struct prep_ctx {
    int calls, hurried;
} prep_ctx;

static size_t prep(void *ctx, const char *body, size_t len, int64_t ord, void *out, size_t cap,
                   int hurry)
{
    prep_ctx *p = ctx;
    p->calls++;
    p->hurried += hurry;
    int bad = strncmp(body, "bad", 3) == 0;
    const char *text = hurry ? body : bad ? "rejected" : body + 2;
    size_t tl = hurry ? len : bad ? strlen(text) : len - 2;
    size_t need = sizeof(rec) + tl + 1;
    if (need > cap) {
        return need;
    }
    ck_assert_uint_eq((uintptr_t)out % 8, 0);
    rec *r = out;
    r->text = (char *)(r + 1);
    r->ord = ord;
    r->kind = hurry ? 'R' : bad ? 'E' : 'V';
    memcpy(r + 1, text, tl);
    ((char *)(r + 1))[tl] = '\0';
    return need;
}

typedef struct got {
    int64_t next;    /* the ord expected next */
    int64_t stop_at; /* refuse this ord once (then clear) */
    int prepared;
    int valid, invalid, stops;
} got;

static int on_rec(void *ctx, const char *body, size_t len, int64_t ord)
{
    got *g = ctx;
    static char want[BIG + 1];
    ck_assert_int_eq(ord, g->next);
    if (ord == g->stop_at) {
        g->stop_at = 0;
        g->stops++;
        return 1;
    }
    size_t wl = body_of((int)ord, want, sizeof(want));
    int bad = strncmp(want, "bad", 3) == 0;
    if (!g->prepared) {
        ck_assert_uint_eq(len, wl);
        ck_assert(memcmp(body, want, wl) == 0);
    } else {
        const rec *r = (const rec *)(const void *)body;
        ck_assert_ptr_eq(r->text, body + sizeof(rec));
        ck_assert_int_eq(r->ord, ord);
        ck_assert_uint_eq(len, sizeof(rec) + strlen(r->text) + 1);
        if (r->kind == 'R') {
            ck_assert_str_eq(r->text, want); /* hurried: the callback does the work */
        } else if (r->kind == 'E') {
            ck_assert(bad);
            ck_assert_str_eq(r->text, "rejected");
        } else {
            ck_assert_int_eq(r->kind, 'V');
            ck_assert(!bad);
            ck_assert_str_eq(r->text, want + 2);
        }
    }
    if (bad) {
        g->invalid++;
    } else {
        g->valid++;
    }
    g->next++;
    return 0;
}

/* Poll to the end in batches of max, refusing each ord of stops once. */
static void drain(tt_source *s, got *g, size_t max, const int64_t *stops, size_t n_stops)
{
    char err[256], pos[TT_SOURCE_MAX_POSITION];
    size_t k = 0;
    g->stop_at = n_stops ? stops[k++] : 0;
    int64_t total = 0;
    for (int guard = 0; guard < 10000; guard++) {
        int stops_before = g->stops;
        int64_t n = tt_source_poll(s, max, on_rec, g, err, sizeof(err));
        ck_assert_msg(n >= 0, "%s", err);
        ck_assert_uint_le((uint64_t)n, max);
        total += n;
        tt_source_position(s, pos);
        char want[64];
        snprintf(want, sizeof(want), "seq:%lld", (long long)(g->next - 1));
        ck_assert_str_eq(pos, want);
        if (g->stop_at == 0 && k < n_stops) {
            g->stop_at = stops[k++];
        }
        if (n == 0 && g->stops == stops_before) {
            break;
        }
    }
    ck_assert_int_eq(total, NROWS);
    ck_assert_int_eq(g->next, NROWS + 1);
    ck_assert_int_eq(g->stops, (int)n_stops);
    ck_assert_int_eq(g->valid + g->invalid, NROWS);
    ck_assert_int_eq(g->invalid, NROWS / 10);
    ck_assert_int_eq(tt_source_lag(s), 0);
}

/* Early in a block, twice in a row, right after a record larger than a
 * block, and the last row. */
static const int64_t stops[] = {7, 8, 103, 1500, 1501, 2000, NROWS};

START_TEST(source_bodies_in_order)
{
    make_db();
    char err[256];
    tt_source *s = tt_source_sqlite_open(dbpath, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_str_eq(s->ops->kind, "sqlite");
    got g = {.next = 1};
    drain(s, &g, 700, stops, sizeof(stops) / sizeof(stops[0]));
    tt_source_close(s);
    unlink(dbpath);
}
END_TEST

START_TEST(source_prepare_hook)
{
    make_db();
    char err[256];
    tt_source *s = tt_source_sqlite_open(dbpath, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    prep_ctx p = {0};
    tt_source_sqlite_set_prepare(s, prep, &p);
    got g = {.next = 1, .prepared = 1};
    drain(s, &g, 700, stops, sizeof(stops) / sizeof(stops[0]));
    /* every row at least once; refused and oversized ones again */
    ck_assert_int_ge(p.calls, NROWS);
    tt_source_close(s);
    unlink(dbpath);
}
END_TEST

START_TEST(source_prepare_then_seek)
{
    make_db();
    char err[256];
    tt_source *s = tt_source_sqlite_open(dbpath, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    prep_ctx p = {0};
    tt_source_sqlite_set_prepare(s, prep, &p);
    ck_assert_int_eq(tt_source_seek(s, "seq:2500", err, sizeof(err)), 0);
    got g = {.next = 2501, .prepared = 1};
    int64_t n = tt_source_poll(s, 100000, on_rec, &g, err, sizeof(err));
    ck_assert_int_eq(n, NROWS - 2500);
    ck_assert_int_eq(tt_source_poll(s, 100000, on_rec, &g, err, sizeof(err)), 0);
    /* removing the hook gives bodies again */
    tt_source_sqlite_set_prepare(s, NULL, NULL);
    ck_assert_int_eq(tt_source_seek(s, "seq:2990", err, sizeof(err)), 0);
    got raw = {.next = 2991};
    ck_assert_int_eq(tt_source_poll(s, 100000, on_rec, &raw, err, sizeof(err)), 10);
    tt_source_close(s);
    unlink(dbpath);
}
END_TEST

Suite *tt_source_suite(void)
{
    Suite *s = suite_create("tt_source");
    TCase *tc = tcase_create("sqlite");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, source_bodies_in_order);
    tcase_add_test(tc, source_prepare_hook);
    tcase_add_test(tc, source_prepare_then_seek);
    suite_add_tcase(s, tc);
    return s;
}
