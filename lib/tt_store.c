/* tt_store.c - SQLite event store with a single writer thread doing group
 * commits: request threads enqueue rows and sleep until the commit that
 * holds them has been fsynced, so one fsync covers many requests. */
#include "tt_store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "tt_log.h"
#include "tt_time.h"

/* A caller's pending write, linked into the store's queue. */
typedef struct store_job {
    tt_store_row *rows;
    size_t n;
    int done;
    int rc;
    char err[256];
    struct store_job *next;
} store_job;

struct tt_store {
    sqlite3 *db;
    sqlite3_stmt *ins;
    char *path;
    int readonly;
    tt_histogram commit_hist;

    pthread_mutex_t mu;
    pthread_cond_t work;   /* writer waits for jobs */
    pthread_cond_t done;   /* callers wait for their job */
    store_job *head, *tail;
    int closing;
    int healthy;
    int thread_started;
    pthread_t writer;
    uint64_t commits;
};

static const char *const schema_sql =
    "CREATE TABLE IF NOT EXISTS events ("
    " seq INTEGER PRIMARY KEY,"
    " source TEXT NOT NULL,"
    " id TEXT NOT NULL,"
    " type TEXT NOT NULL,"
    " time_ms INTEGER NOT NULL,"
    " token_id TEXT,"
    " incident_id TEXT,"
    " received_ms INTEGER NOT NULL,"
    " body TEXT NOT NULL,"
    " UNIQUE (source, id));"
    "CREATE INDEX IF NOT EXISTS events_time ON events(time_ms);"
    "CREATE INDEX IF NOT EXISTS events_token ON events(token_id) WHERE token_id IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS events_incident ON events(incident_id)"
    " WHERE incident_id IS NOT NULL;"
    "PRAGMA user_version = 1;";

static int exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "sqlite: %s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static void *writer_main(void *arg);

tt_store *tt_store_open(const char *path, const tt_store_opts *opts, char *err, size_t errlen)
{
    tt_store *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->readonly = opts && opts->readonly;
    s->path = strdup(path);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->done, NULL);

    int flags = s->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    /* FULLMUTEX: a read-only handle may be shared by HTTP threads. */
    flags |= SQLITE_OPEN_FULLMUTEX;
    if (s->path == NULL || sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot open database: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
        tt_store_close(s);
        return NULL;
    }
    sqlite3_busy_timeout(s->db, 10000);
    if (s->readonly) {
        if (exec(s->db, "SELECT 1 FROM events LIMIT 0;", err, errlen) != 0) {
            snprintf(err, errlen, "%s: not a tokentrail database (no events table)", path);
            tt_store_close(s);
            return NULL;
        }
        return s;
    }
    /* WAL + synchronous=FULL: every COMMIT fsyncs the WAL before returning,
     * which is what lets the collector answer 2xx only for durable events. */
    char jm[16] = "";
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL;", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        snprintf(jm, sizeof(jm), "%s", (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    if (strcmp(jm, "wal") != 0) {
        snprintf(err, errlen, "%s: cannot switch the database to WAL mode", path);
        tt_store_close(s);
        return NULL;
    }
    if (exec(s->db, "PRAGMA synchronous=FULL; PRAGMA cache_size=-65536;", err, errlen) != 0 ||
        exec(s->db, schema_sql, err, errlen) != 0) {
        tt_store_close(s);
        return NULL;
    }
    if (sqlite3_prepare_v3(s->db,
                           "INSERT OR IGNORE INTO events(source,id,type,time_ms,token_id,"
                           "incident_id,received_ms,body) VALUES (?,?,?,?,?,?,?,?)",
                           -1, SQLITE_PREPARE_PERSISTENT, &s->ins, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(s->db));
        tt_store_close(s);
        return NULL;
    }
    s->healthy = 1;
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        snprintf(err, errlen, "cannot start the store writer thread");
        tt_store_close(s);
        return NULL;
    }
    s->thread_started = 1;
    return s;
}

/* Insert every row of a group inside one transaction. Returns 0 or -1. */
static int write_group(tt_store *s, store_job *jobs, char *err, size_t errlen)
{
    if (exec(s->db, "BEGIN IMMEDIATE;", err, errlen) != 0) {
        return -1;
    }
    int64_t now = tt_time_now_ms();
    for (store_job *j = jobs; j; j = j->next) {
        for (size_t i = 0; i < j->n; i++) {
            tt_store_row *r = &j->rows[i];
            sqlite3_stmt *st = s->ins;
            sqlite3_bind_text(st, 1, r->source, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, r->id, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, r->type, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 4, r->time_ms);
            if (r->token_id) {
                sqlite3_bind_text(st, 5, r->token_id, -1, SQLITE_STATIC);
            } else {
                sqlite3_bind_null(st, 5);
            }
            if (r->incident_id) {
                sqlite3_bind_text(st, 6, r->incident_id, -1, SQLITE_STATIC);
            } else {
                sqlite3_bind_null(st, 6);
            }
            sqlite3_bind_int64(st, 7, now);
            sqlite3_bind_text(st, 8, r->body, (int)r->body_len, SQLITE_STATIC);
            int rc = sqlite3_step(st);
            sqlite3_reset(st);
            if (rc != SQLITE_DONE) {
                snprintf(err, errlen, "sqlite insert: %s", sqlite3_errmsg(s->db));
                char ignore[8];
                exec(s->db, "ROLLBACK;", ignore, sizeof(ignore));
                return -1;
            }
            r->result = sqlite3_changes(s->db) == 1 ? TT_STORE_INSERTED : TT_STORE_DUPLICATE;
        }
    }
    if (exec(s->db, "COMMIT;", err, errlen) != 0) {
        char ignore[8];
        exec(s->db, "ROLLBACK;", ignore, sizeof(ignore));
        return -1;
    }
    return 0;
}

static void *writer_main(void *arg)
{
    tt_store *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->head == NULL && !s->closing) {
            pthread_cond_wait(&s->work, &s->mu);
        }
        if (s->head == NULL) {
            break; /* closing and drained */
        }
        /* Take a group: whole jobs, up to the row cap (always at least one). */
        store_job *group = s->head, *last = s->head;
        size_t rows = last->n;
        while (last->next && rows + last->next->n <= TT_STORE_MAX_GROUP_ROWS) {
            last = last->next;
            rows += last->n;
        }
        s->head = last->next;
        if (s->head == NULL) {
            s->tail = NULL;
        }
        last->next = NULL;
        pthread_mutex_unlock(&s->mu);

        char err[256] = "";
        int64_t t0 = tt_time_mono_ns();
        int rc = write_group(s, group, err, sizeof(err));
        tt_hist_observe_ns(&s->commit_hist, tt_time_mono_ns() - t0);
        if (rc != 0) {
            tt_error("store commit of %zu events failed: %s", rows, err);
        }

        pthread_mutex_lock(&s->mu);
        s->healthy = rc == 0;
        if (rc == 0) {
            __atomic_fetch_add(&s->commits, 1, __ATOMIC_RELAXED);
        }
        for (store_job *j = group, *next; j; j = next) {
            next = j->next;
            j->rc = rc;
            snprintf(j->err, sizeof(j->err), "%s", err);
            j->done = 1;
        }
        pthread_cond_broadcast(&s->done);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int tt_store_write(tt_store *s, tt_store_row *rows, size_t n, char *err, size_t errlen)
{
    if (n == 0) {
        return 0;
    }
    if (s->readonly) {
        snprintf(err, errlen, "store opened read-only");
        return -1;
    }
    store_job job = {.rows = rows, .n = n};
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        pthread_mutex_unlock(&s->mu);
        snprintf(err, errlen, "store is shutting down");
        return -1;
    }
    if (s->tail) {
        s->tail->next = &job;
    } else {
        s->head = &job;
    }
    s->tail = &job;
    pthread_cond_signal(&s->work);
    while (!job.done) {
        pthread_cond_wait(&s->done, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    if (job.rc != 0) {
        snprintf(err, errlen, "%s", job.err);
        return -1;
    }
    return 0;
}

int tt_store_ready(tt_store *s)
{
    pthread_mutex_lock(&s->mu);
    int ok = s->healthy && !s->closing;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

uint64_t tt_store_commits(const tt_store *s)
{
    return __atomic_load_n(&s->commits, __ATOMIC_RELAXED);
}

const tt_histogram *tt_store_commit_hist(const tt_store *s)
{
    return &s->commit_hist;
}

int64_t tt_store_size_bytes(const tt_store *s)
{
    int64_t total = 0;
    struct stat st;
    char wal[4096];
    if (stat(s->path, &st) == 0) {
        total += st.st_size;
    }
    snprintf(wal, sizeof(wal), "%s-wal", s->path);
    if (stat(wal, &st) == 0) {
        total += st.st_size;
    }
    return total;
}

int64_t tt_store_query_events(tt_store *s, const tt_store_query *q,
                              int (*cb)(void *ctx, const char *body, size_t len), void *ctx,
                              char *err, size_t errlen)
{
    const char *sql = "SELECT body FROM events WHERE time_ms >= ?1 AND time_ms < ?2"
                      " AND (?3 IS NULL OR type = ?3)"
                      " AND (?4 IS NULL OR token_id = ?4)"
                      " AND (?5 IS NULL OR incident_id = ?5)"
                      " ORDER BY time_ms, seq LIMIT ?6";
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(s->db));
        return -1;
    }
    sqlite3_bind_int64(st, 1, q->since_ms);
    sqlite3_bind_int64(st, 2, q->until_ms);
    if (q->type) {
        sqlite3_bind_text(st, 3, q->type, -1, SQLITE_STATIC);
    }
    if (q->token_id) {
        sqlite3_bind_text(st, 4, q->token_id, -1, SQLITE_STATIC);
    }
    if (q->incident_id) {
        sqlite3_bind_text(st, 5, q->incident_id, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(st, 6, q->limit > 0 ? q->limit : -1);
    int64_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        n++;
        if (cb(ctx, (const char *)sqlite3_column_text(st, 0),
               (size_t)sqlite3_column_bytes(st, 0)) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(s->db));
        n = -1;
    }
    sqlite3_finalize(st);
    return n;
}

void tt_store_close(tt_store *s)
{
    if (s == NULL) {
        return;
    }
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->closing = 1;
        pthread_cond_signal(&s->work);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->writer, NULL);
    }
    sqlite3_finalize(s->ins);
    if (s->db) {
        sqlite3_close(s->db);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->done);
    free(s->path);
    free(s);
}
