/* tt_source.c - the SQLite event source (the collector's `events` table). */
#include "tt_source.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

/* Read-ahead: during a poll a helper thread steps the query and copies rows
 * into PF_BLOCKS blocks of about PF_BLOCK_BYTES while the caller's thread
 * runs the callback on the previous block, so reading the store and
 * analysing it use two cores. Rows are framed as [int64 seq][uint64 len]
 * [body][NUL], padded to 8 bytes; with a prepare hook the record it makes
 * replaces the body, so that work moves to the helper thread too. */
#define PF_BLOCKS 4
#define PF_BLOCK_BYTES (64 * 1024)

typedef struct pf_block {
    char *buf;
    size_t cap, len;
    int full; /* filled, owned by the consumer until it clears this */
    int last; /* the producer stopped after this block */
} pf_block;

typedef struct sqlite_source {
    tt_source base; /* first: a tt_source * is a sqlite_source * */
    sqlite3 *db;
    sqlite3_stmt *next;
    sqlite3_stmt *max;
    int64_t after; /* last delivered seq */
    /* read-ahead, used only inside sq_poll */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int sync_ok; /* mu and cv initialised */
    pf_block blk[PF_BLOCKS];
    int stop;                  /* consumer: stop reading */
    int pf_rc;                 /* producer: the last sqlite3_step result (or SQLITE_NOMEM) */
    tt_source_prepare_fn prep; /* optional; runs where the rows are read */
    void *prep_ctx;
} sqlite_source;

/* Grow b (through a temporary) so that need more bytes fit; capacities stay
 * multiples of 8, like the frames. 0 or -1 (out of memory). */
static int pf_grow(pf_block *b, size_t need)
{
    size_t cap = b->len + need > PF_BLOCK_BYTES * 2 ? b->len + need : PF_BLOCK_BYTES * 2;
    cap = (cap + 7) & ~(size_t)7;
    char *nb = realloc(b->buf, cap);
    if (nb == NULL) {
        return -1;
    }
    b->buf = nb;
    b->cap = cap;
    return 0;
}

/* Frame one row into b: its body, or with a prepare hook the record the hook
 * makes of it. Returns 0; 1 when a prepared record does not fit and b already
 * holds records (the caller ends b and puts the row into the next block: b
 * must not move, as prepared records may point into themselves); or -1 (out
 * of memory, or a record longer than TT_SOURCE_MAX_RECORD). */
static int pf_put(sqlite_source *s, pf_block *b, int64_t seq, const char *body, size_t len,
                  int hurry)
{
    if (b->buf == NULL && pf_grow(b, 0) != 0) {
        return -1;
    }
    for (;;) {
        /* cap and len are multiples of 8, so a frame that fits unpadded fits padded */
        size_t room = b->cap - b->len;
        char *o = b->buf + b->len;
        size_t rl;
        int fits;
        if (s->prep != NULL) {
            size_t cap = room > 16 + 1 ? room - 16 - 1 : 0;
            rl = s->prep(s->prep_ctx, body, len, seq, cap ? o + 16 : NULL, cap, hurry);
            if (rl > TT_SOURCE_MAX_RECORD) {
                return -1;
            }
            fits = rl <= cap;
        } else {
            rl = len;
            fits = 16 + len + 1 <= room;
            if (fits && len > 0) {
                memcpy(o + 16, body, len);
            }
        }
        size_t need = (16 + rl + 1 + 7) & ~(size_t)7;
        if (fits) {
            uint64_t l = rl;
            memcpy(o, &seq, 8);
            memcpy(o + 8, &l, 8);
            o[16 + rl] = '\0';
            b->len += need;
            return 0;
        }
        if (s->prep != NULL && b->len > 0) {
            return 1;
        }
        if (pf_grow(b, need) != 0) {
            return -1;
        }
    }
}

/* The helper thread: fill blocks in turn until the query ends, fails, or the
 * consumer says stop. */
static void *pf_main(void *arg)
{
    sqlite_source *s = arg;
    int carry = 0;
    for (size_t i = 0;; i = (i + 1) % PF_BLOCKS) {
        pf_block *b = &s->blk[i];
        pthread_mutex_lock(&s->mu);
        while (b->full && !s->stop) {
            pthread_cond_wait(&s->cv, &s->mu);
        }
        int stop = s->stop;
        /* Little queued for the consumer (besides the block it is on): it
         * will soon wait for this one, so ask the hook to hurry (leave its
         * work to the callback) rather than let the two threads take turns.
         * This balances the work between them block by block. */
        int queued = 0;
        for (size_t j = 0; j < PF_BLOCKS; j++) {
            queued += s->blk[j].full;
        }
        int hurry = queued <= 2;
        pthread_mutex_unlock(&s->mu);
        if (stop) {
            return NULL;
        }
        b->len = 0;
        int rc = SQLITE_ROW;
        while (b->len < PF_BLOCK_BYTES) {
            if (!carry) {
                rc = sqlite3_step(s->next);
                if (rc != SQLITE_ROW) {
                    break;
                }
            }
            /* blob, not text: the bytes as stored, no conversion; NULL reads as "" */
            const char *body = sqlite3_column_blob(s->next, 1);
            size_t len = (size_t)sqlite3_column_bytes(s->next, 1);
            int put = pf_put(s, b, sqlite3_column_int64(s->next, 0), body ? body : "",
                             body ? len : 0, hurry);
            if (put < 0) {
                rc = SQLITE_NOMEM;
                break;
            }
            /* did not fit: the row (still current) starts the next block */
            carry = put > 0;
            if (carry) {
                break;
            }
        }
        pthread_mutex_lock(&s->mu);
        b->full = 1;
        b->last = rc != SQLITE_ROW;
        s->pf_rc = rc;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        if (rc != SQLITE_ROW) {
            return NULL;
        }
    }
}

/* sq_poll with read-ahead. Returns the count, -2 when a failed row copy
 * (out of memory) ended it, or -3 when the helper thread could not start
 * (nothing read: the caller reads directly). *rc gets the last step result. */
static int64_t pf_poll(sqlite_source *s, tt_source_cb cb, void *ctx, int *rc)
{
    for (int i = 0; i < PF_BLOCKS; i++) {
        s->blk[i].full = s->blk[i].last = 0;
    }
    s->stop = 0;
    s->pf_rc = SQLITE_DONE;
    pthread_t th;
    if (pthread_create(&th, NULL, pf_main, s) != 0) {
        return -3;
    }
    int64_t n = 0;
    int stopped = 0;
    for (size_t i = 0;; i = (i + 1) % PF_BLOCKS) {
        pf_block *b = &s->blk[i];
        pthread_mutex_lock(&s->mu);
        while (!b->full) {
            pthread_cond_wait(&s->cv, &s->mu);
        }
        pthread_mutex_unlock(&s->mu);
        for (size_t off = 0; off < b->len;) {
            int64_t seq;
            uint64_t len;
            memcpy(&seq, b->buf + off, 8);
            memcpy(&len, b->buf + off + 8, 8);
            if (cb(ctx, b->buf + off + 16, (size_t)len, seq) != 0) {
                stopped = 1;
                break;
            }
            s->after = seq;
            n++;
            off += (16 + (size_t)len + 1 + 7) & ~(size_t)7;
        }
        int last = b->last;
        pthread_mutex_lock(&s->mu);
        b->full = 0;
        s->stop = stopped;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        if (stopped || last) {
            break;
        }
    }
    pthread_join(th, NULL);
    *rc = stopped ? SQLITE_DONE : s->pf_rc;
    return *rc == SQLITE_NOMEM ? -2 : n;
}

static int64_t sq_poll(tt_source *src, size_t max, tt_source_cb cb, void *ctx, char *err,
                       size_t errlen)
{
    sqlite_source *s = (sqlite_source *)src;
    sqlite3_bind_int64(s->next, 1, s->after);
    sqlite3_bind_int64(s->next, 2, (sqlite3_int64)max);
    int rc;
    int64_t n = s->sync_ok ? pf_poll(s, cb, ctx, &rc) : -3;
    if (n == -2) {
        snprintf(err, errlen, "reading events: out of memory");
        sqlite3_reset(s->next);
        return -1;
    }
    if (n >= 0) {
        goto done;
    }
    n = 0;
    for (;;) {
        rc = sqlite3_step(s->next);
        if (rc != SQLITE_ROW) {
            break;
        }
        int64_t seq = sqlite3_column_int64(s->next, 0);
        const char *body = (const char *)sqlite3_column_text(s->next, 1);
        size_t len = (size_t)sqlite3_column_bytes(s->next, 1);
        body = body ? body : "";
        if (s->prep != NULL) {
            /* prepared here, into the first block (unused without the helper) */
            pf_block *b = &s->blk[0];
            b->len = 0;
            if (pf_put(s, b, seq, body, len, 0) != 0) {
                snprintf(err, errlen, "reading events: out of memory");
                sqlite3_reset(s->next);
                return -1;
            }
            uint64_t l;
            memcpy(&l, b->buf + 8, 8);
            len = (size_t)l;
            body = b->buf + 16;
        }
        if (cb(ctx, body, len, seq) != 0) {
            rc = SQLITE_DONE;
            break;
        }
        s->after = seq;
        n++;
    }
done:
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "reading events: %s", sqlite3_errmsg(s->db));
        n = -1;
    }
    /* reset ends the read transaction, so the WAL can be checkpointed */
    sqlite3_reset(s->next);
    return n;
}

static void sq_position(const tt_source *src, char out[TT_SOURCE_MAX_POSITION])
{
    const sqlite_source *s = (const sqlite_source *)src;
    snprintf(out, TT_SOURCE_MAX_POSITION, "seq:%" PRId64, s->after);
}

static int sq_seek(tt_source *src, const char *pos, char *err, size_t errlen)
{
    sqlite_source *s = (sqlite_source *)src;
    char *end;
    if (strncmp(pos, "seq:", 4) != 0) {
        snprintf(err, errlen, "checkpoint position '%.64s' is not from an SQLite source", pos);
        return -1;
    }
    long long v = strtoll(pos + 4, &end, 10);
    if (*end != '\0' || v < 0) {
        snprintf(err, errlen, "checkpoint position '%.64s' is malformed", pos);
        return -1;
    }
    s->after = v;
    return 0;
}

static int64_t sq_lag(tt_source *src)
{
    sqlite_source *s = (sqlite_source *)src;
    int64_t lag = -1;
    if (sqlite3_step(s->max) == SQLITE_ROW) {
        lag = sqlite3_column_int64(s->max, 0) - s->after;
        lag = lag < 0 ? 0 : lag;
    }
    sqlite3_reset(s->max);
    return lag;
}

static void sq_close(tt_source *src)
{
    sqlite_source *s = (sqlite_source *)src;
    sqlite3_finalize(s->next);
    sqlite3_finalize(s->max);
    sqlite3_close(s->db);
    for (int i = 0; i < PF_BLOCKS; i++) {
        free(s->blk[i].buf);
    }
    if (s->sync_ok) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
    }
    free(s);
}

static const tt_source_ops sqlite_ops = {"sqlite", sq_poll, sq_position, sq_seek, sq_lag, sq_close};

tt_source *tt_source_sqlite_open(const char *path, char *err, size_t errlen)
{
    sqlite_source *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base.ops = &sqlite_ops;
    if (pthread_mutex_init(&s->mu, NULL) == 0) {
        if (pthread_cond_init(&s->cv, NULL) == 0) {
            s->sync_ok = 1; /* else polls read on the caller's thread */
        } else {
            pthread_mutex_destroy(&s->mu);
        }
    }
    /* NOMUTEX: the connection is used by one thread at a time (during a poll
     * only the read-ahead thread touches it, and sq_poll joins that thread
     * before anything else does), so SQLite's per-call locking is pure cost. */
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot open database: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
        sq_close(&s->base);
        return NULL;
    }
    sqlite3_busy_timeout(s->db, 10000);
    if (sqlite3_prepare_v3(s->db,
                           "SELECT seq, body FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2", -1,
                           SQLITE_PREPARE_PERSISTENT, &s->next, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(s->db, "SELECT coalesce(max(seq), 0) FROM events", -1,
                           SQLITE_PREPARE_PERSISTENT, &s->max, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: not a tokentrail database (%s)", path, sqlite3_errmsg(s->db));
        sq_close(&s->base);
        return NULL;
    }
    return &s->base;
}

void tt_source_sqlite_set_prepare(tt_source *src, tt_source_prepare_fn fn, void *ctx)
{
    if (src->ops != &sqlite_ops) {
        return; /* the hook is the SQLite source's */
    }
    sqlite_source *s = (sqlite_source *)src;
    s->prep = fn;
    s->prep_ctx = fn ? ctx : NULL;
}

int64_t tt_source_poll(tt_source *s, size_t max, tt_source_cb cb, void *ctx, char *err,
                       size_t errlen)
{
    return s->ops->poll(s, max, cb, ctx, err, errlen);
}

void tt_source_position(const tt_source *s, char out[TT_SOURCE_MAX_POSITION])
{
    s->ops->position(s, out);
}

int tt_source_seek(tt_source *s, const char *pos, char *err, size_t errlen)
{
    return s->ops->seek(s, pos, err, errlen);
}

int64_t tt_source_lag(tt_source *s)
{
    return s->ops->lag(s);
}

void tt_source_close(tt_source *s)
{
    if (s != NULL) {
        s->ops->close(s);
    }
}
