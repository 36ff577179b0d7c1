/* tt_store.c - SQLite event store with a single writer thread doing group
 * commits: request threads enqueue rows and sleep until the commit that
 * holds them has been fsynced, so one fsync covers many requests. In Kafka
 * mode the same commit also queues each new event in the outbox table, and
 * the relay's acknowledgements are deleted in later commits. */
#include "tt_store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "tt_log.h"
#include "tt_time.h"

/* Rows per multi-row INSERT. One statement per row spends about half its time
 * opening and closing the five B-tree cursors (table + 4 indexes) and running
 * the statement machinery; 16 rows a statement roughly halve the writer's CPU
 * per event, which is what bounds ingest throughput (one writer). A group's
 * remainder goes in with the 8-, 4-, 2- and 1-row statements, so a commit of
 * 19 single-event requests runs 3 statements, not 4 (a lone row costs ~1.7x
 * the CPU of a row in a 16-row statement). */
#define CHUNK_ROWS 16
#define INS_SIZES 5 /* 1, 2, 4, 8, 16 rows */

/* A caller's pending write, linked into the store's queue. */
typedef struct store_job {
    tt_store_row *rows;
    size_t n;
    /* Asynchronous jobs (tt_store_submit) are heap-allocated and report
     * through cb; synchronous ones (tt_store_write) wait on cv. */
    tt_store_done_cb cb;
    void *cb_arg;
    /* Its own condition variable: a commit wakes only the callers whose rows
     * it holds, not every waiting connection thread (with 64 single-event
     * clients a shared one woke ~64 threads per commit to find nothing). */
    pthread_cond_t cv;
    int done;
    int rc;
    int refused;          /* writer: left out of the group by the outbox cap */
    char err[256];
    struct store_job *next;
} store_job;

/* Seqs seq_lo..seq_hi (inclusive) were delivered. */
typedef struct ack_range {
    int64_t lo, hi;
} ack_range;

/* Kafka rejected the event with this seq for good: move it to outbox_dead. */
typedef struct dead_entry {
    int64_t seq;
    char error[64];           /* librdkafka error name */
} dead_entry;

struct tt_store {
    sqlite3 *db;
    sqlite3_stmt *ins[INS_SIZES];  /* ins[k] inserts 2^k rows */
    sqlite3_stmt *begin;      /* BEGIN IMMEDIATE */
    sqlite3_stmt *commit;     /* COMMIT */
    sqlite3_stmt *rollback;   /* ROLLBACK */
    sqlite3_stmt *lookup;     /* seq of a stored (source, id) */
    char *path;
    int readonly;
    tt_histogram commit_hist;

    pthread_mutex_t mu;
    pthread_cond_t work;   /* writer waits for jobs */
    store_job *head, *tail;
    int closing;
    int healthy;
    int thread_started;
    pthread_t writer;
    uint64_t commits;

    /* The outbox (Kafka mode). Fields marked (mu) are guarded by mu. */
    int outbox;
    int64_t outbox_max;
    sqlite3_stmt *ob_fill;    /* queue every event inserted by this group */
    sqlite3_stmt *ob_del;     /* delete a delivered range */
    sqlite3_stmt *ob_bury;    /* copy an outbox row into outbox_dead */
    sqlite3_stmt *ob_dead_n;  /* count outbox_dead */
    int64_t max_seq;          /* writer thread only: highest events.seq */
    int64_t ob_last;          /* (mu) highest outbox seq committed */
    int64_t ob_depth;         /* (mu) outbox rows committed */
    pthread_cond_t ob_cv;     /* (mu) ob_last grew, or closing */
    ack_range *acks;          /* (mu) delivered ranges waiting for a commit */
    size_t n_acks, cap_acks;
    dead_entry *dead;         /* (mu) rejected events waiting for a commit */
    size_t n_dead, cap_dead;
    int64_t ob_dead;          /* (mu) rows in outbox_dead */
    int64_t acks_pending;     /* (mu) seqs in acks and dead, plus those being
                                 committed */
    pthread_cond_t ack_cv;    /* (mu) a commit with deletions finished */
    /* A read connection of its own for the relay and the outbox gauges, so
     * they never wait for the writer (WAL readers see the last commit). */
    sqlite3 *rdb;
    pthread_mutex_t rmu;      /* guards rdb and its statements */
    sqlite3_stmt *ob_read;
    sqlite3_stmt *ob_oldest;

    /* Checkpoints (copying the WAL back into the database) run on a thread
     * and connection of their own, so the writer does not stop committing
     * while they read, write and fsync. */
    sqlite3 *cdb;
    pthread_t ckpt_thread;
    int ckpt_started;
    int ckpt_wanted;          /* (mu) the WAL passed CKPT_FRAMES */
    int ckpt_asked_at;        /* writer thread only: WAL frames at the last request */
    pthread_cond_t ckpt_cv;   /* (mu) ckpt_wanted or closing */
};

/* WAL frames (pages) after which the checkpointer is asked to run. Its
 * passive checkpoints never block the writer, but under a steady write load
 * they may never catch up with the WAL's end, and only a fully copied WAL is
 * started over; so past CKPT_FRAMES_INLINE the writer checkpoints itself
 * between two commits, as SQLite would, which bounds the WAL (16 KiB pages:
 * 64 MiB normally, 256 MiB at most). Why 4000 and not SQLite's 1000: a
 * checkpoint copies each page once however often the WAL holds it, and small
 * commits rewrite the same hot pages (table tail, index leaves) every time;
 * with single-event requests the checkpointer's CPU per event fell from ~17
 * to ~10-13 us (docs/performance.md). */
#define CKPT_FRAMES 4000
#define CKPT_FRAMES_INLINE 16000
/* Once past CKPT_FRAMES the WAL rarely starts over before the inline limit,
 * so the checkpointer is asked again only after this many new frames, not
 * after every commit: each of its runs fsyncs the WAL and the database, and
 * back to back they compete with the writer's own fsync; spaced out they
 * copy the same pages, a hot page once per run rather than once per commit
 * (single events: ~1 instead of ~1.5-2 us of checkpointer CPU each). */
#define CKPT_STEP_FRAMES 1000

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
    /* Kafka mode: one row per event not yet acknowledged by Kafka. Created
     * in every database so that switching modes needs no migration. */
    "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY);"
    /* Events Kafka rejected for good (docs/kafka.md, dead letters): out of
     * the outbox so they block nothing; the event stays in events. */
    "CREATE TABLE IF NOT EXISTS outbox_dead (seq INTEGER PRIMARY KEY,"
    " error TEXT NOT NULL, failed_at INTEGER NOT NULL);"
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

#define INSERT_HEAD                                                                  \
    "INSERT OR IGNORE INTO events(source,id,type,time_ms,token_id,incident_id,"     \
    "received_ms,body) VALUES "
#define INSERT_TUPLE "(?,?,?,?,?,?,?,?)"
#define COLS_PER_ROW 8

static int prepare_statements(tt_store *s)
{
    for (int k = 0; k < INS_SIZES; k++) {
        char sql[sizeof(INSERT_HEAD) + CHUNK_ROWS * sizeof("," INSERT_TUPLE)];
        size_t n = sizeof(INSERT_HEAD) - 1;
        memcpy(sql, INSERT_HEAD, n);
        for (int i = 0; i < (1 << k); i++) {
            if (i > 0) {
                sql[n++] = ',';
            }
            memcpy(sql + n, INSERT_TUPLE, sizeof(INSERT_TUPLE) - 1);
            n += sizeof(INSERT_TUPLE) - 1;
        }
        sql[n] = '\0';
        if (sqlite3_prepare_v3(s->db, sql, (int)n, SQLITE_PREPARE_PERSISTENT, &s->ins[k], NULL) !=
            SQLITE_OK) {
            return -1;
        }
    }
    /* Prepared once: sqlite3_exec would compile them again for every commit. */
    if (sqlite3_prepare_v3(s->db, "BEGIN IMMEDIATE", -1, SQLITE_PREPARE_PERSISTENT, &s->begin,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(s->db, "COMMIT", -1, SQLITE_PREPARE_PERSISTENT, &s->commit, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v3(s->db, "ROLLBACK", -1, SQLITE_PREPARE_PERSISTENT, &s->rollback,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(s->db, "SELECT seq FROM events WHERE source=?1 AND id=?2", -1,
                           SQLITE_PREPARE_PERSISTENT, &s->lookup, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(s->db,
                           "INSERT INTO outbox(seq) SELECT seq FROM events WHERE seq > ?1"
                           " ORDER BY seq", -1, SQLITE_PREPARE_PERSISTENT, &s->ob_fill,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(s->db, "DELETE FROM outbox WHERE seq BETWEEN ?1 AND ?2", -1,
                           SQLITE_PREPARE_PERSISTENT, &s->ob_del, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(s->db,
                           "INSERT OR REPLACE INTO outbox_dead(seq, error, failed_at)"
                           " SELECT seq, ?2, ?3 FROM outbox WHERE seq = ?1", -1,
                           SQLITE_PREPARE_PERSISTENT, &s->ob_bury, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(s->db, "SELECT count(*) FROM outbox_dead", -1,
                           SQLITE_PREPARE_PERSISTENT, &s->ob_dead_n, NULL) != SQLITE_OK) {
        return -1;
    }
    return 0;
}

static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

/* Outbox start-up: counters from the table, and the relay's read connection. */
static int open_outbox(tt_store *s, char *err, size_t errlen)
{
    s->max_seq = query_int(s->db, "SELECT coalesce(max(seq),0) FROM events");
    s->ob_depth = query_int(s->db, "SELECT count(*) FROM outbox");
    s->ob_last = query_int(s->db, "SELECT coalesce(max(seq),0) FROM outbox");
    s->ob_dead = query_int(s->db, "SELECT count(*) FROM outbox_dead");
    if (s->max_seq < 0 || s->ob_depth < 0 || s->ob_last < 0 || s->ob_dead < 0) {
        snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(s->db));
        return -1;
    }
    if (!s->outbox) {
        if (s->ob_depth > 0) {
            tt_warn("%s: %lld events in the outbox were never delivered to Kafka; start the "
                    "collector with kafka.brokers to deliver them", s->path,
                    (long long)s->ob_depth);
        }
        return 0;
    }
    if (sqlite3_open_v2(s->path, &s->rdb, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v3(s->rdb,
                           "SELECT o.seq, e.type, e.source, e.id,"
                           " coalesce(e.token_id, e.incident_id), e.time_ms, e.body"
                           " FROM outbox o CROSS JOIN events e ON e.seq = o.seq"
                           " WHERE o.seq > ?1 ORDER BY o.seq LIMIT ?2",
                           -1, SQLITE_PREPARE_PERSISTENT, &s->ob_read, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(s->rdb,
                           "SELECT e.received_ms FROM outbox o CROSS JOIN events e"
                           " ON e.seq = o.seq ORDER BY o.seq LIMIT 1",
                           -1, SQLITE_PREPARE_PERSISTENT, &s->ob_oldest, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: outbox reader: %s", s->path,
                 s->rdb ? sqlite3_errmsg(s->rdb) : "out of memory");
        return -1;
    }
    sqlite3_busy_timeout(s->rdb, 10000);
    return 0;
}

/* SQLite keeps allocation statistics under a global mutex, taken on every
 * malloc and free, unless told otherwise before it initialises. We never read
 * them, and the writer allocates per row. Once per process, before our first
 * open; if something else initialised SQLite first, this is a no-op. */
static pthread_once_t sqlite_tuned = PTHREAD_ONCE_INIT;

static void tune_sqlite(void)
{
    if (sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) != SQLITE_OK) {
        tt_debug("sqlite already initialised; allocation statistics stay on");
    }
}

/* SQLite calls this on the writer thread after each commit, with the WAL's
 * size in frames. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    tt_store *s = arg;
    if (frames < s->ckpt_asked_at) {
        s->ckpt_asked_at = 0; /* the WAL started over */
    }
    if (frames >= CKPT_FRAMES_INLINE) {
        /* The checkpointer does not keep up: copy the rest here, so the next
         * commit can start the WAL over. A busy result (the checkpointer is
         * running) is fine. */
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    } else if (frames >= CKPT_FRAMES && frames - s->ckpt_asked_at >= CKPT_STEP_FRAMES) {
        s->ckpt_asked_at = frames;
        pthread_mutex_lock(&s->mu);
        if (!s->ckpt_wanted) {
            s->ckpt_wanted = 1;
            pthread_cond_signal(&s->ckpt_cv);
        }
        pthread_mutex_unlock(&s->mu);
    }
    return SQLITE_OK;
}

static void *ckpt_main(void *arg)
{
    tt_store *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->ckpt_wanted && !s->closing) {
            pthread_cond_wait(&s->ckpt_cv, &s->mu);
        }
        if (s->closing) {
            break;
        }
        s->ckpt_wanted = 0;
        pthread_mutex_unlock(&s->mu);
        int log = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(s->cdb, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
            tt_warn("%s: checkpoint: %s", s->path, sqlite3_errmsg(s->cdb));
        }
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* The checkpointer's connection and thread; the writer's own automatic
 * checkpoints are replaced by wal_hook. 0 or -1 with err. */
static int start_checkpointer(tt_store *s, char *err, size_t errlen)
{
    if (sqlite3_open_v2(s->path, &s->cdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "%s: checkpointer: %s", s->path,
                 s->cdb ? sqlite3_errmsg(s->cdb) : "out of memory");
        return -1;
    }
    /* FULL: the checkpoint fsyncs the WAL before copying it and the database
     * before the WAL may be started over. */
    if (exec(s->cdb, "PRAGMA synchronous=FULL;", err, errlen) != 0) {
        return -1;
    }
    sqlite3_busy_timeout(s->cdb, 1000);
    sqlite3_wal_hook(s->db, wal_hook, s);
    if (pthread_create(&s->ckpt_thread, NULL, ckpt_main, s) != 0) {
        sqlite3_wal_autocheckpoint(s->db, CKPT_FRAMES);
        snprintf(err, errlen, "cannot start the store checkpoint thread");
        return -1;
    }
    s->ckpt_started = 1;
    return 0;
}

/* Refuse a file that is not SQLite, or a SQLite database of another
 * application: the collector would add its tables to it. A new file, or one
 * with tokentrail's tables (the collector's or the analyzer's), is fine. */
static int check_file(sqlite3 *db, const char *path, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT count(*), count(CASE WHEN name IN ('events', 'outbox', "
                                "'findings', 'analyzer_state') THEN 1 END) FROM sqlite_master "
                                "WHERE type = 'table'",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_ROW) {
        int code = sqlite3_errcode(db);
        if (code == SQLITE_NOTADB) {
            snprintf(err, errlen, "%s: not a SQLite database", path);
        } else {
            snprintf(err, errlen, "%s: cannot read the database: %s", path, sqlite3_errmsg(db));
        }
        sqlite3_finalize(st);
        return -1;
    }
    int tables = sqlite3_column_int(st, 0), ours = sqlite3_column_int(st, 1);
    sqlite3_finalize(st);
    if (tables > 0 && ours == 0) {
        snprintf(err, errlen, "%s: a SQLite database of another application (%d table%s, "
                              "none of tokentrail's): give tokentrail a file of its own", path,
                 tables, tables == 1 ? "" : "s");
        return -1;
    }
    return 0;
}

tt_store *tt_store_open(const char *path, const tt_store_opts *opts, char *err, size_t errlen)
{
    tt_store *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->readonly = opts && opts->readonly;
    s->outbox = opts && opts->outbox && !s->readonly;
    s->outbox_max = opts ? opts->outbox_max : 0;
    s->path = strdup(path);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->ob_cv, NULL);
    pthread_cond_init(&s->ack_cv, NULL);
    pthread_cond_init(&s->ckpt_cv, NULL);
    pthread_mutex_init(&s->rmu, NULL);

    pthread_once(&sqlite_tuned, tune_sqlite);
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "%s: is a directory, not a database file", path);
        tt_store_close(s);
        return NULL;
    }
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
    if (check_file(s->db, path, err, errlen) != 0) {
        tt_store_close(s);
        return NULL;
    }
    if (s->readonly) {
        if (exec(s->db, "SELECT 1 FROM events LIMIT 0;", err, errlen) != 0) {
            snprintf(err, errlen, "%s: not a tokentrail database (no events table)", path);
            tt_store_close(s);
            return NULL;
        }
        return s;
    }
    /* 16 KiB pages instead of 4 KiB: an event row is ~0.7 KB, so a group
     * commit writes a quarter as many WAL frames (two write() calls each) and
     * the B-trees are shallower; measured ~25% less writer CPU per event.
     * Only takes effect when the file is new; must precede journal_mode. */
    if (exec(s->db, "PRAGMA page_size=16384;", err, errlen) != 0) {
        tt_store_close(s);
        return NULL;
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
    if (prepare_statements(s) != 0) {
        snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(s->db));
        tt_store_close(s);
        return NULL;
    }
    if (open_outbox(s, err, errlen) != 0 || start_checkpointer(s, err, errlen) != 0) {
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

/* A known length as SQLite takes it; 0 (unknown) lets SQLite measure. The
 * ingest path caps events far below INT_MAX, so the cast cannot wrap. */
static int text_len(size_t n)
{
    return n ? (int)n : -1;
}

/* Binds row r as the off-th row of statement st. */
static void bind_row(sqlite3_stmt *st, int off, const tt_store_row *r, int64_t now)
{
    int b = off * COLS_PER_ROW;
    sqlite3_bind_text(st, b + 1, r->source, text_len(r->source_len), SQLITE_STATIC);
    sqlite3_bind_text(st, b + 2, r->id, text_len(r->id_len), SQLITE_STATIC);
    sqlite3_bind_text(st, b + 3, r->type, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, b + 4, r->time_ms);
    if (r->token_id) {
        sqlite3_bind_text(st, b + 5, r->token_id, text_len(r->token_id_len), SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, b + 5);
    }
    if (r->incident_id) {
        sqlite3_bind_text(st, b + 6, r->incident_id, text_len(r->incident_id_len),
                          SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, b + 6);
    }
    sqlite3_bind_int64(st, b + 7, now);
    sqlite3_bind_text(st, b + 8, r->body, (int)r->body_len, SQLITE_STATIC);
}

static int step_done(tt_store *s, sqlite3_stmt *st, char *err, size_t errlen)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        int tx = st == s->begin || st == s->commit;
        snprintf(err, errlen, "sqlite %s: %s", tx ? sqlite3_sql(st) : "insert",
                 sqlite3_errmsg(s->db));
        return -1;
    }
    return 0;
}

/* After a chunk insert that skipped some rows, says which rows went in.
 * Rows without an explicit rowid get max(seq)+1, and this connection is the
 * only writer, so the `changes` rows just inserted hold exactly the seq values
 * (last - changes, last]; a row was inserted iff its stored seq is in that
 * range, counting only the first of rows that repeat a (source, id). Anything
 * else (the rowid space exhausted, so SQLite picked random ones) fails the
 * group rather than misreport. */
static int attribute_chunk(tt_store *s, tt_store_row **rows, int n, char *err, size_t errlen)
{
    int64_t changes = sqlite3_changes(s->db);
    int64_t last = sqlite3_last_insert_rowid(s->db);
    int64_t seqs[CHUNK_ROWS];
    int64_t found = 0;
    for (int i = 0; i < n; i++) {
        rows[i]->result = TT_STORE_DUPLICATE;
        if (changes == 0) {
            continue;
        }
        sqlite3_bind_text(s->lookup, 1, rows[i]->source, -1, SQLITE_STATIC);
        sqlite3_bind_text(s->lookup, 2, rows[i]->id, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s->lookup);
        seqs[i] = rc == SQLITE_ROW ? sqlite3_column_int64(s->lookup, 0) : INT64_MIN;
        sqlite3_reset(s->lookup);
        if (rc != SQLITE_ROW) {
            snprintf(err, errlen, "sqlite lookup: %s",
                     rc == SQLITE_DONE ? "stored row not found" : sqlite3_errmsg(s->db));
            return -1;
        }
        int first = 1;
        for (int k = 0; k < i; k++) {
            first &= seqs[k] != seqs[i];
        }
        if (first && seqs[i] > last - changes && seqs[i] <= last) {
            rows[i]->result = TT_STORE_INSERTED;
            found++;
        }
    }
    if (found != changes) {
        snprintf(err, errlen, "cannot tell inserted from duplicate rows (rowids exhausted?)");
        return -1;
    }
    return 0;
}

/* What one group transaction did to the outbox. */
typedef struct group_result {
    int64_t added, deleted, new_max;
    int64_t dead_total;       /* rows in outbox_dead after it; -1: unchanged */
} group_result;

/* The outbox work a group commit carries besides its events. */
typedef struct outbox_work {
    const ack_range *acks;    /* delivered: delete */
    size_t n_acks;
    const dead_entry *dead;   /* rejected for good: move to outbox_dead */
    size_t n_dead;
} outbox_work;

/* The outbox part of a group's transaction: queue every event this group
 * inserted (they are exactly the rows above max_seq: this connection is the
 * only writer and new rowids are max+1), delete delivered ranges and move
 * rejected events to outbox_dead. Returns 0 or -1; gr says what changed. */
static int outbox_group(tt_store *s, const outbox_work *w, group_result *gr, int64_t now,
                        char *err, size_t errlen)
{
    int64_t *added = &gr->added, *deleted = &gr->deleted, *new_max = &gr->new_max;
    const ack_range *acks = w->acks;
    size_t n_acks = w->n_acks;
    *added = 0;
    *deleted = 0;
    *new_max = s->max_seq;
    gr->dead_total = -1;
    if (s->outbox) {
        sqlite3_bind_int64(s->ob_fill, 1, s->max_seq);
        if (step_done(s, s->ob_fill, err, errlen) != 0) {
            return -1;
        }
        *added = sqlite3_changes(s->db);
        if (*added > 0) {
            *new_max = sqlite3_last_insert_rowid(s->db);
        }
    }
    for (size_t i = 0; i < n_acks; i++) {
        sqlite3_bind_int64(s->ob_del, 1, acks[i].lo);
        sqlite3_bind_int64(s->ob_del, 2, acks[i].hi);
        if (step_done(s, s->ob_del, err, errlen) != 0) {
            return -1;
        }
        *deleted += sqlite3_changes(s->db);
    }
    for (size_t i = 0; i < w->n_dead; i++) {
        sqlite3_bind_int64(s->ob_bury, 1, w->dead[i].seq);
        sqlite3_bind_text(s->ob_bury, 2, w->dead[i].error, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->ob_bury, 3, now);
        sqlite3_bind_int64(s->ob_del, 1, w->dead[i].seq);
        sqlite3_bind_int64(s->ob_del, 2, w->dead[i].seq);
        if (step_done(s, s->ob_bury, err, errlen) != 0 ||
            step_done(s, s->ob_del, err, errlen) != 0) {
            return -1;
        }
        *deleted += sqlite3_changes(s->db);
    }
    if (w->n_dead > 0) {
        int rc = sqlite3_step(s->ob_dead_n);
        gr->dead_total = rc == SQLITE_ROW ? sqlite3_column_int64(s->ob_dead_n, 0) : -1;
        sqlite3_reset(s->ob_dead_n);
    }
    return 0;
}

/* Inserts rows[0 .. 2^k) with the statement ins[k] and sets their results. */
static int insert_rows(tt_store *s, int k, tt_store_row **rows, int64_t now, char *err,
                       size_t errlen)
{
    int n = 1 << k;
    for (int i = 0; i < n; i++) {
        bind_row(s->ins[k], i, rows[i], now);
    }
    if (step_done(s, s->ins[k], err, errlen) != 0) {
        return -1;
    }
    if (sqlite3_changes(s->db) == n) {
        for (int i = 0; i < n; i++) {
            rows[i]->result = TT_STORE_INSERTED;
        }
        return 0;
    }
    return attribute_chunk(s, rows, n, err, errlen);
}

/* The outbox cap, counted on new events only. Inside the group's
 * transaction, after its inserts, a job's TT_STORE_INSERTED rows are exactly
 * the events it adds to the outbox; duplicates add nothing. When the group
 * would take the outbox past outbox_max, jobs are refused whole, in queue
 * order, until the rest fits: TT_STORE_OUTBOX_FULL (retry later), or
 * TT_STORE_OUTBOX_TOO_BIG for a job with more new events than the cap could
 * ever hold. A job of duplicates only always passes: a client's retry of
 * stored events gets its answer however full the outbox is. Deliveries
 * committed in this same group are not counted as room (conservative: they
 * make room for the next group). Returns 1 when a job was refused (the
 * caller rolls back and writes the group again without it), else 0. Writer
 * thread (the only one that changes ob_depth, so it reads it unlocked). */
static int admit_jobs(tt_store *s, store_job *jobs)
{
    if (!s->outbox || s->outbox_max <= 0) {
        return 0;
    }
    int64_t total = 0;
    for (store_job *j = jobs; j; j = j->next) {
        for (size_t i = 0; !j->refused && i < j->n; i++) {
            total += j->rows[i].result == TT_STORE_INSERTED;
        }
    }
    int64_t room = s->outbox_max - s->ob_depth;
    if (total <= room) {
        return 0;
    }
    int64_t used = 0;
    int refused = 0;
    for (store_job *j = jobs; j; j = j->next) {
        int64_t fresh = 0;
        for (size_t i = 0; !j->refused && i < j->n; i++) {
            fresh += j->rows[i].result == TT_STORE_INSERTED;
        }
        if (fresh == 0) {
            continue;
        }
        if (fresh > s->outbox_max) {
            snprintf(j->err, sizeof(j->err),
                     TT_STORE_OUTBOX_TOO_BIG ": %lld new events in one request, more than "
                     "kafka.outbox_max_events (%lld) can ever hold; send them in smaller "
                     "requests", (long long)fresh, (long long)s->outbox_max);
        } else if (used + fresh > room) {
            snprintf(j->err, sizeof(j->err),
                     TT_STORE_OUTBOX_FULL ": %lld events wait for Kafka "
                     "(kafka.outbox_max_events %lld)", (long long)s->ob_depth,
                     (long long)s->outbox_max);
        } else {
            used += fresh;
            continue;
        }
        j->refused = 1;
        refused = 1;
    }
    return refused;
}

/* Insert every row of a group (but its refused jobs) inside one
 * transaction, CHUNK_ROWS rows per statement and the remainder one by one,
 * plus the outbox work. Returns 0, -1 (then nothing of it was committed), or
 * 1 when admit_jobs refused a job: rolled back, write the group again. */
static int write_group(tt_store *s, store_job *jobs, const outbox_work *w, group_result *gr,
                       char *err, size_t errlen)
{
    if (step_done(s, s->begin, err, errlen) != 0) {
        return -1;
    }
    int64_t now = tt_time_now_ms();
    tt_store_row *chunk[CHUNK_ROWS];
    int n = 0;
    int rc = 0;
    for (store_job *j = jobs; j && rc == 0; j = j->next) {
        for (size_t i = 0; !j->refused && i < j->n && rc == 0; i++) {
            chunk[n++] = &j->rows[i];
            if (n < CHUNK_ROWS) {
                continue;
            }
            rc = insert_rows(s, INS_SIZES - 1, chunk, now, err, errlen);
            n = 0;
        }
    }
    /* The remainder, largest power of two first. */
    int done = 0;
    for (int k = INS_SIZES - 2; k >= 0 && rc == 0; k--) {
        if (n & (1 << k)) {
            rc = insert_rows(s, k, chunk + done, now, err, errlen);
            done += 1 << k;
        }
    }
    int refused = rc == 0 && admit_jobs(s, jobs);
    if (rc == 0 && !refused) {
        rc = outbox_group(s, w, gr, now, err, errlen);
    }
    if (rc == 0 && !refused) {
        rc = step_done(s, s->commit, err, errlen);
    }
    if (rc != 0 || refused) {
        sqlite3_step(s->rollback);
        sqlite3_reset(s->rollback);
        return rc != 0 ? -1 : 1;
    }
    return 0;
}

static void *writer_main(void *arg)
{
    tt_store *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->head == NULL && s->n_acks == 0 && s->n_dead == 0 && !s->closing) {
            pthread_cond_wait(&s->work, &s->mu);
        }
        if (s->head == NULL && s->n_acks == 0 && s->n_dead == 0) {
            break; /* closing and drained */
        }
        /* Take a group: whole jobs, up to the row cap (always at least one),
         * and every delivered range waiting (possibly only those). */
        store_job *group = s->head, *last = s->head;
        size_t rows = 0;
        if (group) {
            rows = last->n;
            while (last->next && rows + last->next->n <= TT_STORE_MAX_GROUP_ROWS) {
                last = last->next;
                rows += last->n;
            }
            s->head = last->next;
            if (s->head == NULL) {
                s->tail = NULL;
            }
            last->next = NULL;
        }
        ack_range *acks = s->acks;
        size_t n_acks = s->n_acks;
        s->acks = NULL;
        s->n_acks = s->cap_acks = 0;
        dead_entry *dead = s->dead;
        size_t n_dead = s->n_dead;
        s->dead = NULL;
        s->n_dead = s->cap_dead = 0;
        pthread_mutex_unlock(&s->mu);

        char err[256] = "";
        group_result gr = {0, 0, 0, -1};
        outbox_work w = {acks, n_acks, dead, n_dead};
        int64_t t0 = tt_time_mono_ns();
        int rc;
        do {
            /* Each pass refuses at least one more job, so this ends. */
            rc = write_group(s, group, &w, &gr, err, sizeof(err));
        } while (rc == 1);
        tt_hist_observe_ns(&s->commit_hist, tt_time_mono_ns() - t0);
        if (rc != 0) {
            tt_error("store commit of %zu events failed: %s", rows, err);
        }

        pthread_mutex_lock(&s->mu);
        s->healthy = rc == 0;
        if (rc == 0) {
            __atomic_fetch_add(&s->commits, 1, __ATOMIC_RELAXED);
            s->max_seq = gr.new_max;
            s->ob_depth += gr.added - gr.deleted;
            if (gr.dead_total >= 0) {
                s->ob_dead = gr.dead_total;
            }
            s->acks_pending -= (int64_t)n_dead;
            free(dead);
            dead = NULL;
            if (gr.added > 0) {
                s->ob_last = gr.new_max;
                pthread_cond_broadcast(&s->ob_cv);
            }
            for (size_t i = 0; i < n_acks; i++) {
                s->acks_pending -= acks[i].hi - acks[i].lo + 1;
            }
            free(acks);
        } else if (n_acks > 0 && !s->closing) {
            /* Put the deletions back for the next commit. */
            ack_range *merged = realloc(acks, (n_acks + s->n_acks) * sizeof(*merged));
            if (merged) {
                if (s->n_acks) {
                    memcpy(merged + n_acks, s->acks, s->n_acks * sizeof(*merged));
                }
                free(s->acks);
                s->acks = merged;
                s->n_acks = s->cap_acks = n_acks + s->n_acks;
            } else {
                free(acks);
            }
        } else {
            /* Closing: the rows stay in the outbox and are delivered again. */
            for (size_t i = 0; i < n_acks; i++) {
                s->acks_pending -= acks[i].hi - acks[i].lo + 1;
            }
            free(acks);
        }
        if (dead != NULL && !s->closing) {
            /* Failed commit: put the rejected events back for the next one. */
            dead_entry *merged = realloc(dead, (n_dead + s->n_dead) * sizeof(*merged));
            if (merged) {
                if (s->n_dead) {
                    memcpy(merged + n_dead, s->dead, s->n_dead * sizeof(*merged));
                }
                free(s->dead);
                s->dead = merged;
                s->n_dead = s->cap_dead = n_dead + s->n_dead;
                dead = NULL;
            }
        }
        if (dead != NULL) {
            /* Closing (or out of memory): they stay in the outbox and are
             * produced again at the next start. */
            s->acks_pending -= (int64_t)n_dead;
            free(dead);
        }
        if (n_acks > 0 || n_dead > 0) {
            pthread_cond_broadcast(&s->ack_cv);
        }
        store_job *async_jobs = NULL;
        for (store_job *j = group, *next; j; j = next) {
            next = j->next;
            /* A refused job has its own error (admit_jobs). */
            j->rc = j->refused ? -1 : rc;
            if (!j->refused) {
                snprintf(j->err, sizeof(j->err), "%s", err);
            }
            if (j->cb) {
                j->next = async_jobs;
                async_jobs = j;
            } else {
                j->done = 1;
                pthread_cond_signal(&j->cv);
            }
        }
        if (async_jobs) {
            /* Callbacks run outside the lock: they resume HTTP connections,
             * which takes libmicrohttpd's own locks. */
            pthread_mutex_unlock(&s->mu);
            for (store_job *j = async_jobs, *next; j; j = next) {
                next = j->next;
                j->cb(j->cb_arg, j->rc, j->rc ? j->err : NULL);
                free(j);
            }
            pthread_mutex_lock(&s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Queue a job for the writer. Called with s->mu held; returns 0, or -1 with
 * err filled when the store refuses it (read-only, closing). */
static int enqueue_locked(tt_store *s, store_job *job, char *err, size_t errlen)
{
    if (s->readonly) {
        snprintf(err, errlen, "store opened read-only");
        return -1;
    }
    if (s->closing) {
        snprintf(err, errlen, "store is shutting down");
        return -1;
    }
    /* No outbox cap check here: only new events count against it, and which
     * rows are new (not duplicates) is known only once the writer inserted
     * them (admit_jobs). */
    if (s->tail) {
        s->tail->next = job;
    } else {
        s->head = job;
    }
    s->tail = job;
    pthread_cond_signal(&s->work);
    return 0;
}

int tt_store_write(tt_store *s, tt_store_row *rows, size_t n, char *err, size_t errlen)
{
    if (n == 0) {
        return 0;
    }
    store_job job = {.rows = rows, .n = n};
    pthread_cond_init(&job.cv, NULL);
    pthread_mutex_lock(&s->mu);
    int rc = enqueue_locked(s, &job, err, errlen);
    while (rc == 0 && !job.done) {
        pthread_cond_wait(&job.cv, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    pthread_cond_destroy(&job.cv);
    if (rc == 0 && job.rc != 0) {
        snprintf(err, errlen, "%s", job.err);
        rc = -1;
    }
    return rc;
}

int tt_store_submit(tt_store *s, tt_store_row *rows, size_t n, tt_store_done_cb cb, void *arg,
                    char *err, size_t errlen)
{
    store_job *job = calloc(1, sizeof(*job));
    if (job == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    job->rows = rows;
    job->n = n;
    job->cb = cb;
    job->cb_arg = arg;
    pthread_mutex_lock(&s->mu);
    int rc = enqueue_locked(s, job, err, errlen);
    pthread_mutex_unlock(&s->mu);
    if (rc != 0) {
        free(job);
    }
    return rc;
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
        pthread_cond_broadcast(&s->ob_cv);
        pthread_cond_broadcast(&s->ack_cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->writer, NULL);
    }
    if (s->ckpt_started) {
        pthread_mutex_lock(&s->mu);
        s->closing = 1;
        pthread_cond_signal(&s->ckpt_cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->ckpt_thread, NULL);
    }
    if (s->cdb) {
        sqlite3_close(s->cdb);
    }
    for (int k = 0; k < INS_SIZES; k++) {
        sqlite3_finalize(s->ins[k]);
    }
    sqlite3_finalize(s->begin);
    sqlite3_finalize(s->commit);
    sqlite3_finalize(s->rollback);
    sqlite3_finalize(s->lookup);
    sqlite3_finalize(s->ob_fill);
    sqlite3_finalize(s->ob_del);
    sqlite3_finalize(s->ob_bury);
    sqlite3_finalize(s->ob_dead_n);
    sqlite3_finalize(s->ob_read);
    sqlite3_finalize(s->ob_oldest);
    if (s->rdb) {
        sqlite3_close(s->rdb);
    }
    if (s->db) {
        sqlite3_close(s->db);
    }
    free(s->acks);
    free(s->dead);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->rmu);
    pthread_cond_destroy(&s->ob_cv);
    pthread_cond_destroy(&s->ack_cv);
    pthread_cond_destroy(&s->ckpt_cv);
    pthread_cond_destroy(&s->work);
    free(s->path);
    free(s);
}

/* ---- outbox ---- */

int64_t tt_store_outbox_read(tt_store *s, int64_t after_seq, int64_t max,
                             int (*cb)(void *ctx, const tt_outbox_row *r), void *ctx,
                             char *err, size_t errlen)
{
    if (s->rdb == NULL) {
        snprintf(err, errlen, "store opened without an outbox");
        return -1;
    }
    pthread_mutex_lock(&s->rmu);
    sqlite3_stmt *st = s->ob_read;
    sqlite3_bind_int64(st, 1, after_seq);
    sqlite3_bind_int64(st, 2, max);
    int64_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        tt_outbox_row r = {
            .seq = sqlite3_column_int64(st, 0),
            .type = (const char *)sqlite3_column_text(st, 1),
            .source = (const char *)sqlite3_column_text(st, 2),
            .id = (const char *)sqlite3_column_text(st, 3),
            .key = (const char *)sqlite3_column_text(st, 4),
            .time_ms = sqlite3_column_int64(st, 5),
            .body = (const char *)sqlite3_column_text(st, 6),
            .body_len = (size_t)sqlite3_column_bytes(st, 6),
        };
        if (cb(ctx, &r) != 0) {
            rc = SQLITE_DONE;
            break;
        }
        n++;
    }
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "sqlite outbox read: %s", sqlite3_errmsg(s->rdb));
        n = -1;
    }
    /* Reset ends the read transaction, so the WAL can be checkpointed. */
    sqlite3_reset(st);
    pthread_mutex_unlock(&s->rmu);
    return n;
}

int64_t tt_store_outbox_last_seq(tt_store *s)
{
    pthread_mutex_lock(&s->mu);
    int64_t v = s->ob_last;
    pthread_mutex_unlock(&s->mu);
    return v;
}

int tt_store_outbox_wait(tt_store *s, int64_t after_seq, int64_t timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + (timeout_ms % 1000) * 1000000;
    ts.tv_sec += (time_t)(timeout_ms / 1000 + ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    pthread_mutex_lock(&s->mu);
    while (s->ob_last <= after_seq && !s->closing) {
        if (pthread_cond_timedwait(&s->ob_cv, &s->mu, &ts) != 0) {
            break;
        }
    }
    int more = s->ob_last > after_seq;
    pthread_mutex_unlock(&s->mu);
    return more;
}

static int cmp_seq(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int tt_store_outbox_ack(tt_store *s, int64_t *seqs, size_t n, int wait)
{
    if (n == 0 && !wait) {
        return 0;
    }
    /* Delivery reports come per partition, so seqs are nearly sorted and
     * coalesce into few ranges: one DELETE per range instead of per event. */
    if (n > 0) {
        qsort(seqs, n, sizeof(*seqs), cmp_seq);
    }
    pthread_mutex_lock(&s->mu);
    if (s->closing || !s->thread_started) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j + 1 < n && seqs[j + 1] <= seqs[j] + 1) {
            j++;
        }
        if (s->n_acks == s->cap_acks) {
            size_t cap = s->cap_acks ? s->cap_acks * 2 : 64;
            ack_range *a = realloc(s->acks, cap * sizeof(*a));
            if (a == NULL) {
                pthread_mutex_unlock(&s->mu);
                return -1;
            }
            s->acks = a;
            s->cap_acks = cap;
        }
        s->acks[s->n_acks++] = (ack_range){seqs[i], seqs[j]};
        s->acks_pending += seqs[j] - seqs[i] + 1;
        i = j + 1;
    }
    pthread_cond_signal(&s->work);
    /* The relay is the only caller, so "mine are committed" is "none left". */
    while (wait && s->acks_pending > 0 && !s->closing) {
        pthread_cond_wait(&s->ack_cv, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int tt_store_outbox_dead(tt_store *s, int64_t seq, const char *error)
{
    pthread_mutex_lock(&s->mu);
    if (s->closing || !s->thread_started || !s->outbox) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    if (s->n_dead == s->cap_dead) {
        size_t cap = s->cap_dead ? s->cap_dead * 2 : 16;
        dead_entry *d = realloc(s->dead, cap * sizeof(*d));
        if (d == NULL) {
            pthread_mutex_unlock(&s->mu);
            return -1;
        }
        s->dead = d;
        s->cap_dead = cap;
    }
    dead_entry *e = &s->dead[s->n_dead++];
    e->seq = seq;
    snprintf(e->error, sizeof(e->error), "%s", error ? error : "unknown");
    s->acks_pending++;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int64_t tt_store_outbox_dead_count(tt_store *s)
{
    pthread_mutex_lock(&s->mu);
    int64_t v = s->ob_dead;
    pthread_mutex_unlock(&s->mu);
    return v;
}

int64_t tt_store_outbox_acks_pending(tt_store *s)
{
    pthread_mutex_lock(&s->mu);
    int64_t v = s->acks_pending;
    pthread_mutex_unlock(&s->mu);
    return v;
}

int64_t tt_store_outbox_depth(tt_store *s)
{
    pthread_mutex_lock(&s->mu);
    int64_t v = s->ob_depth;
    pthread_mutex_unlock(&s->mu);
    return v;
}

int tt_store_outbox_full(tt_store *s)
{
    pthread_mutex_lock(&s->mu);
    int full = s->outbox && s->outbox_max > 0 && s->ob_depth >= s->outbox_max;
    pthread_mutex_unlock(&s->mu);
    return full;
}

int64_t tt_store_outbox_oldest_ms(tt_store *s)
{
    if (s->rdb == NULL) {
        return 0;
    }
    pthread_mutex_lock(&s->rmu);
    int64_t v = 0;
    if (sqlite3_step(s->ob_oldest) == SQLITE_ROW) {
        v = sqlite3_column_int64(s->ob_oldest, 0);
    }
    sqlite3_reset(s->ob_oldest);
    pthread_mutex_unlock(&s->rmu);
    return v;
}
