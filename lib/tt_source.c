/* tt_source.c - the SQLite event source (the collector's `events` table). */
#include "tt_source.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

typedef struct sqlite_source {
    tt_source base; /* first: a tt_source * is a sqlite_source * */
    sqlite3 *db;
    sqlite3_stmt *next;
    sqlite3_stmt *max;
    int64_t after; /* last delivered seq */
} sqlite_source;

static int64_t sq_poll(tt_source *src, size_t max, tt_source_cb cb, void *ctx, char *err,
                       size_t errlen)
{
    sqlite_source *s = (sqlite_source *)src;
    sqlite3_bind_int64(s->next, 1, s->after);
    sqlite3_bind_int64(s->next, 2, (sqlite3_int64)max);
    int64_t n = 0;
    int rc;
    for (;;) {
        rc = sqlite3_step(s->next);
        if (rc != SQLITE_ROW) {
            break;
        }
        int64_t seq = sqlite3_column_int64(s->next, 0);
        const char *body = (const char *)sqlite3_column_text(s->next, 1);
        size_t len = (size_t)sqlite3_column_bytes(s->next, 1);
        if (cb(ctx, body ? body : "", len, seq) != 0) {
            rc = SQLITE_DONE;
            break;
        }
        s->after = seq;
        n++;
    }
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
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
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
