/* test_store.c - SQLite store: durability settings, dedup, group commit, queries. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "suites.h"
#include "tt_store.h"

static char dbpath[64];

static void fresh_db(void)
{
    snprintf(dbpath, sizeof(dbpath), "/tmp/tt_store_%d.db", (int)getpid());
    unlink(dbpath);
    char side[80];
    snprintf(side, sizeof(side), "%s-wal", dbpath);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", dbpath);
    unlink(side);
}

static tt_store_row row(const char *source, const char *id, int64_t t, const char *body)
{
    return (tt_store_row){.source = source, .id = id, .type = "token.used", .token_id = "tok",
                          .time_ms = t, .body = body, .body_len = strlen(body)};
}

static int collect_cb(void *ctx, const char *body, size_t len)
{
    /* ctx is a 256-byte buffer collecting "body;body;..." */
    char *out = ctx;
    size_t used = strlen(out);
    snprintf(out + used, 256 - used, "%.*s;", (int)len, body);
    return 0;
}

START_TEST(store_wal_and_full_sync)
{
    fresh_db();
    char err[256];
    tt_store *s = tt_store_open(dbpath, NULL, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    tt_store_close(s);
    /* The journal mode is persistent: check it from a separate connection. */
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
}
END_TEST

START_TEST(store_dedups_on_source_and_id)
{
    fresh_db();
    char err[256];
    tt_store *s = tt_store_open(dbpath, NULL, err, sizeof(err));
    ck_assert_ptr_nonnull(s);
    tt_store_row rows[4] = {row("a", "1", 10, "A1"), row("a", "2", 20, "A2"),
                            row("b", "1", 5, "B1"), row("a", "1", 30, "A1-again")};
    ck_assert_int_eq(tt_store_write(s, rows, 4, err, sizeof(err)), 0);
    ck_assert_int_eq(rows[0].result, TT_STORE_INSERTED);
    ck_assert_int_eq(rows[1].result, TT_STORE_INSERTED);
    ck_assert_int_eq(rows[2].result, TT_STORE_INSERTED);
    ck_assert_int_eq(rows[3].result, TT_STORE_DUPLICATE);
    tt_store_row again = row("b", "1", 5, "B1");
    ck_assert_int_eq(tt_store_write(s, &again, 1, err, sizeof(err)), 0);
    ck_assert_int_eq(again.result, TT_STORE_DUPLICATE);
    ck_assert_uint_eq(tt_store_commits(s), 2);
    tt_store_close(s);

    /* Reopen read-only: the events survived, in event-time order. */
    tt_store_opts ro = {.readonly = 1};
    s = tt_store_open(dbpath, &ro, err, sizeof(err));
    ck_assert_ptr_nonnull(s);
    char out[256] = "";
    tt_store_query q = {.since_ms = INT64_MIN, .until_ms = INT64_MAX};
    ck_assert_int_eq(tt_store_query_events(s, &q, collect_cb, out, err, sizeof(err)), 3);
    ck_assert_str_eq(out, "B1;A1;A2;");
    out[0] = '\0';
    q.since_ms = 10;
    q.until_ms = 20;
    ck_assert_int_eq(tt_store_query_events(s, &q, collect_cb, out, err, sizeof(err)), 1);
    ck_assert_str_eq(out, "A1;");
    /* Writes to a read-only store are refused. */
    tt_store_row r = row("c", "1", 1, "C");
    ck_assert_int_eq(tt_store_write(s, &r, 1, err, sizeof(err)), -1);
    tt_store_close(s);
}
END_TEST

/* Rows go in 16 per statement; a statement that skips duplicates must still
 * report exactly which rows were new: earlier-stored keys, keys repeated
 * within one statement, and repeats across statements of one group. */
START_TEST(store_chunk_dedup_is_exact)
{
    fresh_db();
    char err[256];
    tt_store *s = tt_store_open(dbpath, NULL, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    tt_store_row pre[2] = {row("src", "old-3", 1, "{}"), row("src", "old-20", 1, "{}")};
    ck_assert_int_eq(tt_store_write(s, pre, 2, err, sizeof(err)), 0);

    enum { N = 50 };
    static char ids[N][16];
    tt_store_row rows[N];
    int want[N];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "new-%d", i);
        want[i] = TT_STORE_INSERTED;
    }
    /* stored before */
    snprintf(ids[3], sizeof(ids[3]), "old-3");
    snprintf(ids[20], sizeof(ids[20]), "old-20");
    want[3] = want[20] = TT_STORE_DUPLICATE;
    /* repeated inside the first statement (rows 0..15) */
    snprintf(ids[9], sizeof(ids[9]), "new-5");
    want[9] = TT_STORE_DUPLICATE;
    /* repeated in a later statement (rows 16..31) and in the one-by-one tail (48, 49) */
    snprintf(ids[17], sizeof(ids[17]), "new-1");
    snprintf(ids[48], sizeof(ids[48]), "new-21");
    snprintf(ids[49], sizeof(ids[49]), "old-3");
    want[17] = want[48] = want[49] = TT_STORE_DUPLICATE;
    /* a whole statement of duplicates (rows 32..47 repeat 0..15's ids) */
    for (int i = 32; i < 48; i++) {
        memcpy(ids[i], ids[i - 32], sizeof(ids[i]));
        want[i] = TT_STORE_DUPLICATE;
    }
    for (int i = 0; i < N; i++) {
        rows[i] = row("src", ids[i], i, "{}");
        rows[i].result = 0;
    }
    ck_assert_int_eq(tt_store_write(s, rows, N, err, sizeof(err)), 0);
    for (int i = 0; i < N; i++) {
        ck_assert_msg(rows[i].result == want[i], "row %d (%s): %d, want %d", i, ids[i],
                      rows[i].result, want[i]);
    }
    tt_store_close(s);

    /* and the table holds each key once */
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT count(*), count(DISTINCT id) FROM events", -1, &st, NULL);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int inserted = 0;
    for (int i = 0; i < N; i++) {
        inserted += want[i] == TT_STORE_INSERTED;
    }
    ck_assert_int_eq(sqlite3_column_int(st, 0), inserted + 2);
    ck_assert_int_eq(sqlite3_column_int(st, 1), inserted + 2);
    sqlite3_finalize(st);
    sqlite3_close(db);
}
END_TEST

/* A group's remainder below 16 rows goes in with 8-, 4-, 2- and 1-row
 * statements: 31 rows run 16 + 8 + 4 + 2 + 1. Duplicates inside each of the
 * smaller statements, and one statement of nothing but duplicates, must still
 * be told apart exactly. */
START_TEST(store_remainder_dedup_is_exact)
{
    fresh_db();
    char err[256];
    tt_store *s = tt_store_open(dbpath, NULL, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    tt_store_row pre = row("src", "old", 1, "{}");
    ck_assert_int_eq(tt_store_write(s, &pre, 1, err, sizeof(err)), 0);

    enum { N = 31 };
    static char ids[N][16];
    tt_store_row rows[N];
    int want[N];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "r-%d", i);
        want[i] = TT_STORE_INSERTED;
    }
    /* the 8-row statement (16..23): a repeat within it and a stored key */
    snprintf(ids[19], sizeof(ids[19]), "r-17");
    snprintf(ids[22], sizeof(ids[22]), "old");
    /* the 4-row statement (24..27): a key of the 16-row one */
    snprintf(ids[26], sizeof(ids[26]), "r-2");
    /* the 2-row statement (28, 29): both duplicates */
    snprintf(ids[28], sizeof(ids[28]), "r-25");
    snprintf(ids[29], sizeof(ids[29]), "r-25");
    /* the 1-row statement (30): new */
    want[19] = want[22] = want[26] = want[28] = want[29] = TT_STORE_DUPLICATE;
    for (int i = 0; i < N; i++) {
        rows[i] = row("src", ids[i], i, "{}");
        rows[i].result = 0;
    }
    ck_assert_int_eq(tt_store_write(s, rows, N, err, sizeof(err)), 0);
    for (int i = 0; i < N; i++) {
        ck_assert_msg(rows[i].result == want[i], "row %d (%s): %d, want %d", i, ids[i],
                      rows[i].result, want[i]);
    }
    /* Each size once more, alone: 1, 2, 3 rows (a group of one job each). */
    for (int n = 1; n <= 3; n++) {
        tt_store_row r[3];
        char rid[3][16];
        for (int i = 0; i < n; i++) {
            snprintf(rid[i], sizeof(rid[i]), "s%d-%d", n, i);
            r[i] = row("src", rid[i], i, "{}");
        }
        ck_assert_int_eq(tt_store_write(s, r, (size_t)n, err, sizeof(err)), 0);
        for (int i = 0; i < n; i++) {
            ck_assert_int_eq(r[i].result, TT_STORE_INSERTED);
        }
    }
    tt_store_close(s);
}
END_TEST

/* Checkpoints run on the store's own checkpointer thread: once the WAL holds
 * more than 4000 pages (CKPT_FRAMES), they are copied into the database file
 * while the writer goes on, and nothing is lost. */
START_TEST(store_checkpoints_in_background)
{
    fresh_db();
    char err[256];
    tt_store *s = tt_store_open(dbpath, NULL, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    enum { ROWS = 10000, BATCH = 200, BODY = 8000 };
    static char body[BODY + 1];
    memset(body, 'x', BODY);
    static char ids[BATCH][16];
    for (int b = 0; b < ROWS / BATCH; b++) {
        tt_store_row rows[BATCH];
        for (int i = 0; i < BATCH; i++) {
            snprintf(ids[i], sizeof(ids[i]), "c-%d", b * BATCH + i);
            rows[i] = row("src", ids[i], i, body);
        }
        ck_assert_int_eq(tt_store_write(s, rows, BATCH, err, sizeof(err)), 0);
    }
    /* ~80 MB (~5000 pages) went through the WAL: the database file must have grown. */
    struct stat st = {0};
    for (int i = 0; i < 200 && (stat(dbpath, &st) != 0 || st.st_size < 8 * 1024 * 1024); i++) {
        usleep(20000);
    }
    ck_assert_int_ge(st.st_size, 8 * 1024 * 1024);
    tt_store_close(s);

    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    sqlite3_stmt *q;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM events", -1, &q, NULL);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(q, 0), ROWS);
    sqlite3_finalize(q);
    sqlite3_close(db);
}
END_TEST

START_TEST(store_readonly_rejects_foreign_file)
{
    fresh_db();
    FILE *fp = fopen(dbpath, "w");
    fputs("this is not sqlite", fp);
    fclose(fp);
    char err[256];
    tt_store_opts ro = {.readonly = 1};
    ck_assert_ptr_null(tt_store_open(dbpath, &ro, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, dbpath));
    ck_assert_ptr_null(tt_store_open("/nonexistent/dir/x.db", NULL, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "cannot open database"));
}
END_TEST

#define WRITERS 16
#define PER_WRITER 200

typedef struct writer_arg {
    tt_store *s;
    int n;
    int failures;
} writer_arg;

static void *writer(void *p)
{
    writer_arg *a = p;
    for (int i = 0; i < PER_WRITER; i++) {
        char id[32];
        snprintf(id, sizeof(id), "%d-%d", a->n, i);
        tt_store_row r = row("w", id, i, "{}");
        char err[256];
        if (tt_store_write(a->s, &r, 1, err, sizeof(err)) != 0 || r.result != TT_STORE_INSERTED) {
            a->failures++;
        }
    }
    return NULL;
}

static int count_cb(void *ctx, const char *body, size_t len)
{
    (void)body;
    (void)len;
    (*(int *)ctx)++;
    return 0;
}

START_TEST(store_group_commit_under_concurrency)
{
    fresh_db();
    char err[256];
    tt_store *s = tt_store_open(dbpath, NULL, err, sizeof(err));
    ck_assert_ptr_nonnull(s);
    pthread_t th[WRITERS];
    writer_arg args[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        args[i] = (writer_arg){.s = s, .n = i};
        pthread_create(&th[i], NULL, writer, &args[i]);
    }
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(args[i].failures, 0);
    }
    int n = 0;
    tt_store_query q = {.since_ms = INT64_MIN, .until_ms = INT64_MAX};
    ck_assert_int_eq(tt_store_query_events(s, &q, count_cb, &n, err, sizeof(err)),
                     WRITERS * PER_WRITER);
    ck_assert_int_eq(n, WRITERS * PER_WRITER);
    /* Concurrent single-row writes must have shared commits. */
    ck_assert_uint_lt(tt_store_commits(s), WRITERS * PER_WRITER);
    ck_assert_uint_eq(tt_store_commit_hist(s)->count, tt_store_commits(s));
    ck_assert_int_eq(tt_store_ready(s), 1);
    ck_assert_int_gt(tt_store_size_bytes(s), 0);
    tt_store_close(s);
}
END_TEST

/* Callers may pass the string lengths (tt_ingest does, to keep strlen off the
 * writer thread): the stored columns are the same as when the store measures
 * them, so a row with lengths and one without dedup against each other. */
START_TEST(store_explicit_lengths_match_measured)
{
    fresh_db();
    char err[256];
    tt_store *s = tt_store_open(dbpath, NULL, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    tt_store_row a = row("src-a", "id-1", 1, "{}");
    a.incident_id = "INC-7";
    a.source_len = 5;
    a.id_len = 4;
    a.token_id_len = 3;
    a.incident_id_len = 5;
    tt_store_row b = row("src-a", "id-1", 2, "{}");  /* no lengths: measured */
    ck_assert_int_eq(tt_store_write(s, &a, 1, err, sizeof(err)), 0);
    ck_assert_int_eq(tt_store_write(s, &b, 1, err, sizeof(err)), 0);
    ck_assert_int_eq(a.result, TT_STORE_INSERTED);
    ck_assert_int_eq(b.result, TT_STORE_DUPLICATE);
    tt_store_close(s);

    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    sqlite3_stmt *q;
    sqlite3_prepare_v2(db, "SELECT source, id, token_id, incident_id FROM events", -1, &q, NULL);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(q, 0), "src-a");
    ck_assert_str_eq((const char *)sqlite3_column_text(q, 1), "id-1");
    ck_assert_str_eq((const char *)sqlite3_column_text(q, 2), "tok");
    ck_assert_str_eq((const char *)sqlite3_column_text(q, 3), "INC-7");
    ck_assert_int_eq(sqlite3_step(q), SQLITE_DONE);
    sqlite3_finalize(q);
    sqlite3_close(db);
}
END_TEST

/* Writes ids "<prefix>0".."<prefix>(n-1)" in one call; returns its rc. */
static int write_ids(tt_store *s, const char *prefix, int from, int n, char *err, size_t errlen,
                     int *inserted)
{
    static char ids[400][24];
    static tt_store_row rows[400];
    ck_assert_int_le(n, 400);
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%s%d", prefix, from + i);
        rows[i] = row("src", ids[i], 1700000000000 + i, "{}");
    }
    int rc = tt_store_write(s, rows, (size_t)n, err, errlen);
    *inserted = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        *inserted += rows[i].result == TT_STORE_INSERTED;
    }
    return rc;
}

/* Regression: the outbox cap counted every row of a write, duplicates
 * included, so a retry of stored events got 503 forever at the cap, and 200
 * stored + 150 new was refused under a cap of 300 with an empty outbox. Only
 * new events count; more new events than the cap can ever hold is its own
 * error (413 at the HTTP layer). */
START_TEST(store_outbox_cap_counts_new_events_only)
{
    fresh_db();
    char err[256];
    int ins = 0;
    tt_store_opts so = {.outbox = 1, .outbox_max = 300};
    tt_store *s = tt_store_open(dbpath, &so, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);

    /* 200 stored, then delivered (acked): the outbox is empty. */
    ck_assert_int_eq(write_ids(s, "a", 0, 200, err, sizeof(err), &ins), 0);
    ck_assert_int_eq(ins, 200);
    int64_t acks[200];
    for (int i = 0; i < 200; i++) {
        acks[i] = i + 1;
    }
    ck_assert_int_eq(tt_store_outbox_ack(s, acks, 200, 1), 0);
    ck_assert_int_eq(tt_store_outbox_depth(s), 0);

    /* 200 already stored + 150 new: 150 count, not 350. */
    static char ids[350][24];
    static tt_store_row rows[350];
    for (int i = 0; i < 350; i++) {
        snprintf(ids[i], sizeof(ids[i]), i < 200 ? "a%d" : "b%d", i < 200 ? i : i - 200);
        rows[i] = row("src", ids[i], 1700000000000 + i, "{}");
    }
    ck_assert_msg(tt_store_write(s, rows, 350, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(tt_store_outbox_depth(s), 150);

    /* 350 pure duplicates: stored already, always answered. */
    ck_assert_msg(tt_store_write(s, rows, 350, err, sizeof(err)) == 0, "%s", err);
    for (int i = 0; i < 350; i++) {
        ck_assert_int_eq(rows[i].result, TT_STORE_DUPLICATE);
    }

    /* Fill to the cap; at the cap duplicates still pass, new events not. */
    ck_assert_int_eq(write_ids(s, "c", 0, 150, err, sizeof(err), &ins), 0);
    ck_assert_int_eq(tt_store_outbox_depth(s), 300);
    ck_assert(tt_store_outbox_full(s));
    ck_assert_msg(write_ids(s, "c", 0, 150, err, sizeof(err), &ins) == 0, "%s", err);
    ck_assert_int_eq(ins, 0);
    ck_assert_int_eq(write_ids(s, "c", 140, 11, err, sizeof(err), &ins), -1);
    ck_assert_msg(strncmp(err, TT_STORE_OUTBOX_FULL, strlen(TT_STORE_OUTBOX_FULL)) == 0, "%s",
                  err);
    /* Refused whole: c150 was not stored. */
    ck_assert_int_eq(tt_store_outbox_depth(s), 300);
    ck_assert_int_eq(write_ids(s, "c", 150, 1, err, sizeof(err), &ins), -1);

    /* More new events than the cap could ever hold: a permanent error. */
    ck_assert_int_eq(write_ids(s, "d", 0, 301, err, sizeof(err), &ins), -1);
    ck_assert_msg(strncmp(err, TT_STORE_OUTBOX_TOO_BIG, strlen(TT_STORE_OUTBOX_TOO_BIG)) == 0,
                  "%s", err);
    ck_assert_msg(strstr(err, "300") != NULL, "names the cap: %s", err);
    tt_store_close(s);

    /* On an empty outbox, 301 new events under a cap of 300 are TOO_BIG, 300
     * fit. */
    fresh_db();
    s = tt_store_open(dbpath, &so, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_int_eq(write_ids(s, "e", 0, 301, err, sizeof(err), &ins), -1);
    ck_assert_msg(strncmp(err, TT_STORE_OUTBOX_TOO_BIG, strlen(TT_STORE_OUTBOX_TOO_BIG)) == 0,
                  "%s", err);
    ck_assert_int_eq(tt_store_outbox_depth(s), 0);
    ck_assert_msg(write_ids(s, "e", 0, 300, err, sizeof(err), &ins) == 0, "%s", err);
    ck_assert_int_eq(ins, 300);
    tt_store_close(s);
    unlink(dbpath);
}
END_TEST

typedef struct submit_result {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, rc;
    char err[256];
} submit_result;

static void on_submitted(void *arg, int rc, const char *err)
{
    submit_result *r = arg;
    pthread_mutex_lock(&r->mu);
    r->rc = rc;
    snprintf(r->err, sizeof(r->err), "%s", err ? err : "");
    r->done = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Jobs that share one group commit: the cap refuses only the jobs that do not
 * fit, in queue order; the others (and duplicates-only jobs) are committed. */
START_TEST(store_outbox_cap_refuses_only_jobs_that_do_not_fit)
{
    fresh_db();
    char err[256];
    tt_store_opts so = {.outbox = 1, .outbox_max = 10};
    tt_store *s = tt_store_open(dbpath, &so, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    int ins = 0;
    ck_assert_int_eq(write_ids(s, "x", 0, 4, err, sizeof(err), &ins), 0);
    /* Four jobs submitted back to back (most likely one group): 4 new, 3 new
     * (does not fit: 4 + 4 + 3 > 10), 2 duplicates, 2 new. */
    enum { J = 4 };
    static char ids[J][4][24];
    static tt_store_row rows[J][4];
    const char *pfx[J] = {"y", "z", "x", "w"};
    int n[J] = {4, 3, 2, 2};
    submit_result res[J];
    for (int j = 0; j < J; j++) {
        for (int i = 0; i < n[j]; i++) {
            snprintf(ids[j][i], sizeof(ids[j][i]), "%s%d", pfx[j], i);
            rows[j][i] = row("src", ids[j][i], 1700000000000 + i, "{}");
        }
        pthread_mutex_init(&res[j].mu, NULL);
        pthread_cond_init(&res[j].cv, NULL);
        res[j].done = 0;
    }
    for (int j = 0; j < J; j++) {
        ck_assert_int_eq(tt_store_submit(s, rows[j], (size_t)n[j], on_submitted, &res[j], err,
                                         sizeof(err)), 0);
    }
    for (int j = 0; j < J; j++) {
        pthread_mutex_lock(&res[j].mu);
        while (!res[j].done) {
            pthread_cond_wait(&res[j].cv, &res[j].mu);
        }
        pthread_mutex_unlock(&res[j].mu);
    }
    ck_assert_msg(res[0].rc == 0, "%s", res[0].err);
    ck_assert_int_eq(res[1].rc, -1);
    ck_assert_msg(strncmp(res[1].err, TT_STORE_OUTBOX_FULL, strlen(TT_STORE_OUTBOX_FULL)) == 0,
                  "%s", res[1].err);
    ck_assert_msg(res[2].rc == 0, "%s", res[2].err);
    ck_assert_int_eq(rows[2][0].result, TT_STORE_DUPLICATE);
    ck_assert_msg(res[3].rc == 0, "%s", res[3].err);
    ck_assert_int_eq(rows[3][0].result, TT_STORE_INSERTED);
    ck_assert_int_eq(tt_store_outbox_depth(s), 10);
    for (int j = 0; j < J; j++) {
        pthread_mutex_destroy(&res[j].mu);
        pthread_cond_destroy(&res[j].cv);
    }
    tt_store_close(s);
    unlink(dbpath);
}
END_TEST

/* Dead letters: a rejected event leaves the outbox for outbox_dead, the event
 * itself stays, and the count survives a reopen. */
START_TEST(store_outbox_dead_moves_row)
{
    fresh_db();
    char err[256];
    int ins = 0;
    tt_store_opts so = {.outbox = 1, .outbox_max = 100};
    tt_store *s = tt_store_open(dbpath, &so, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_int_eq(write_ids(s, "a", 0, 5, err, sizeof(err), &ins), 0);
    ck_assert_int_eq(tt_store_outbox_dead_count(s), 0);
    ck_assert_int_eq(tt_store_outbox_dead(s, 3, "INVALID_TIMESTAMP"), 0);
    ck_assert_int_eq(tt_store_outbox_acks_pending(s), 1);
    ck_assert_int_eq(tt_store_outbox_ack(s, NULL, 0, 1), 0); /* waits for the commit */
    ck_assert_int_eq(tt_store_outbox_acks_pending(s), 0);
    ck_assert_int_eq(tt_store_outbox_depth(s), 4);
    ck_assert_int_eq(tt_store_outbox_dead_count(s), 1);
    tt_store_close(s);

    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db,
                                        "SELECT d.seq, d.error, d.failed_at > 0, e.id,"
                                        " (SELECT count(*) FROM outbox WHERE seq = 3)"
                                        " FROM outbox_dead d JOIN events e ON e.seq = d.seq",
                                        -1, &st, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 3);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 1), "INVALID_TIMESTAMP");
    ck_assert_int_eq(sqlite3_column_int(st, 2), 1);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 3), "a2");
    ck_assert_int_eq(sqlite3_column_int(st, 4), 0);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);

    s = tt_store_open(dbpath, &so, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_int_eq(tt_store_outbox_depth(s), 4);
    ck_assert_int_eq(tt_store_outbox_dead_count(s), 1);
    tt_store_close(s);
    unlink(dbpath);
}
END_TEST

Suite *tt_store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("sqlite");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, store_wal_and_full_sync);
    tcase_add_test(tc, store_dedups_on_source_and_id);
    tcase_add_test(tc, store_explicit_lengths_match_measured);
    tcase_add_test(tc, store_chunk_dedup_is_exact);
    tcase_add_test(tc, store_remainder_dedup_is_exact);
    tcase_add_test(tc, store_checkpoints_in_background);
    tcase_add_test(tc, store_readonly_rejects_foreign_file);
    tcase_add_test(tc, store_group_commit_under_concurrency);
    tcase_add_test(tc, store_outbox_cap_counts_new_events_only);
    tcase_add_test(tc, store_outbox_cap_refuses_only_jobs_that_do_not_fit);
    tcase_add_test(tc, store_outbox_dead_moves_row);
    suite_add_tcase(s, tc);
    return s;
}
