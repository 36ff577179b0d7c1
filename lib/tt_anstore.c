/* tt_anstore.c - findings and analyzer checkpoints in SQLite. */
#include "tt_anstore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "tt_buf.h"
#include "tt_time.h"

#define ROW_JSON_MAX (256 * 1024)

struct tt_anstore {
    sqlite3 *db;
    int readonly;          /* opened for listing: no write statement prepared */
    sqlite3_stmt *put_tok, *del_tok, *put_inc, *put_hist, *put_pend, *del_pend, *put_meta,
        *put_finding;
};

static const char *const schema_sql =
    "CREATE TABLE IF NOT EXISTS findings ("
    " id TEXT PRIMARY KEY,"
    " kind TEXT NOT NULL,"
    " severity TEXT NOT NULL,"
    " time_ms INTEGER NOT NULL,"
    " token_id TEXT, client_id TEXT, subject TEXT, incident_id TEXT,"
    " message TEXT NOT NULL,"
    " detected_ms INTEGER NOT NULL,"
    " body TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS findings_time ON findings(time_ms);"
    "CREATE TABLE IF NOT EXISTS analyzer_state (key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS analyzer_tokens (key BLOB PRIMARY KEY, state BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS analyzer_incidents (incident_id TEXT PRIMARY KEY, state BLOB NOT "
    "NULL);"
    "CREATE TABLE IF NOT EXISTS analyzer_client_scopes (client_id TEXT NOT NULL, scope TEXT NOT "
    "NULL,"
    " PRIMARY KEY (client_id, scope)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS analyzer_pending (seq INTEGER PRIMARY KEY, event BLOB NOT NULL);";

static char *dup_or_null(const char *s, int *oom)
{
    if (s == NULL) {
        return NULL;
    }
    char *d = strdup(s);
    *oom |= d == NULL;
    return d;
}

tt_finding_row *tt_finding_row_new(const tt_finding *f)
{
    tt_finding_row *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    tt_buf b;
    tt_buf_init(&b, ROW_JSON_MAX);
    int oom = tt_finding_to_json(f, &b) != 0;
    memcpy(r->id, f->id, sizeof(r->id));
    r->kind = f->kind;
    r->severity = f->severity;
    r->time_ms = f->time_ms;
    r->token_id = dup_or_null(f->token_id, &oom);
    r->client_id = dup_or_null(f->client_id, &oom);
    r->subject = dup_or_null(f->subject, &oom);
    r->incident_id = dup_or_null(f->incident_id, &oom);
    r->message = dup_or_null(f->message, &oom);
    r->json = tt_buf_detach(&b);
    if (oom || r->json == NULL) {
        tt_finding_row_free(r);
        return NULL;
    }
    return r;
}

void tt_finding_row_free(tt_finding_row *r)
{
    if (r == NULL) {
        return;
    }
    free(r->token_id);
    free(r->client_id);
    free(r->subject);
    free(r->incident_id);
    free(r->message);
    free(r->json);
    free(r);
}

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

static int prep(tt_anstore *s, const char *sql, sqlite3_stmt **st, char *err, size_t errlen)
{
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(s->db));
        return -1;
    }
    return 0;
}

static tt_anstore *open_with(const char *path, int readonly, int create, char *err, size_t errlen)
{
    tt_anstore *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int flags =
        readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot open database: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
        tt_anstore_close(s);
        return NULL;
    }
    sqlite3_busy_timeout(s->db, 10000);
    s->readonly = readonly;
    if (readonly) {
        return s;
    }
    /* synchronous=NORMAL: a checkpoint lost to a power cut is redone from the
     * previous one, and finding ids are deterministic, so nothing doubles. */
    if (exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", err, errlen) != 0 ||
        exec(s->db, schema_sql, err, errlen) != 0 ||
        prep(s, "INSERT OR REPLACE INTO analyzer_tokens(key, state) VALUES (?1, ?2)", &s->put_tok,
             err, errlen) != 0 ||
        prep(s, "DELETE FROM analyzer_tokens WHERE key = ?1", &s->del_tok, err, errlen) != 0 ||
        prep(s, "INSERT OR REPLACE INTO analyzer_incidents(incident_id, state) VALUES (?1, ?2)",
             &s->put_inc, err, errlen) != 0 ||
        prep(s, "INSERT OR IGNORE INTO analyzer_client_scopes(client_id, scope) VALUES (?1, ?2)",
             &s->put_hist, err, errlen) != 0 ||
        prep(s, "INSERT OR REPLACE INTO analyzer_pending(seq, event) VALUES (?1, ?2)", &s->put_pend,
             err, errlen) != 0 ||
        prep(s, "DELETE FROM analyzer_pending WHERE seq = ?1", &s->del_pend, err, errlen) != 0 ||
        prep(s, "INSERT OR REPLACE INTO analyzer_state(key, value) VALUES (?1, ?2)", &s->put_meta,
             err, errlen) != 0 ||
        prep(s,
             "INSERT OR IGNORE INTO findings(id, kind, severity, time_ms, token_id, client_id,"
             " subject, incident_id, message, detected_ms, body) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
             &s->put_finding, err, errlen) != 0) {
        tt_anstore_close(s);
        return NULL;
    }
    return s;
}

tt_anstore *tt_anstore_open(const char *path, int readonly, char *err, size_t errlen)
{
    return open_with(path, readonly, 0, err, errlen);
}

tt_anstore *tt_anstore_create(const char *path, char *err, size_t errlen)
{
    return open_with(path, 0, 1, err, errlen);
}

void tt_anstore_close(tt_anstore *s)
{
    if (s == NULL) {
        return;
    }
    sqlite3_finalize(s->put_tok);
    sqlite3_finalize(s->del_tok);
    sqlite3_finalize(s->put_inc);
    sqlite3_finalize(s->put_hist);
    sqlite3_finalize(s->put_pend);
    sqlite3_finalize(s->del_pend);
    sqlite3_finalize(s->put_meta);
    sqlite3_finalize(s->put_finding);
    sqlite3_close(s->db);
    free(s);
}

static int step_reset(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- saver callbacks ---- */

static int sv_token(void *ctx, const uint8_t key[32], const void *blob, size_t len)
{
    tt_anstore *s = ctx;
    sqlite3_stmt *st = blob ? s->put_tok : s->del_tok;
    sqlite3_bind_blob(st, 1, key, 32, SQLITE_STATIC);
    if (blob) {
        sqlite3_bind_blob(st, 2, blob, (int)len, SQLITE_STATIC);
    }
    return step_reset(st);
}

static int sv_incident(void *ctx, const char *id, const void *blob, size_t len)
{
    tt_anstore *s = ctx;
    sqlite3_bind_text(s->put_inc, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s->put_inc, 2, blob, (int)len, SQLITE_STATIC);
    return step_reset(s->put_inc);
}

static int sv_client_scope(void *ctx, const char *client, const char *scope)
{
    tt_anstore *s = ctx;
    sqlite3_bind_text(s->put_hist, 1, client, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->put_hist, 2, scope, -1, SQLITE_STATIC);
    return step_reset(s->put_hist);
}

static int sv_pending(void *ctx, int64_t seq, const void *blob, size_t len)
{
    tt_anstore *s = ctx;
    sqlite3_stmt *st = blob ? s->put_pend : s->del_pend;
    sqlite3_bind_int64(st, 1, seq);
    if (blob) {
        sqlite3_bind_blob(st, 2, blob, (int)len, SQLITE_STATIC);
    }
    return step_reset(st);
}

static int sv_meta(void *ctx, const char *key, int64_t value)
{
    tt_anstore *s = ctx;
    sqlite3_bind_text(s->put_meta, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->put_meta, 2, value);
    return step_reset(s->put_meta);
}

static const tt_engine_saver saver = {sv_token, sv_incident, sv_client_scope, sv_pending, sv_meta};

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *v)
{
    if (v) {
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, i);
    }
}

int tt_anstore_checkpoint(tt_anstore *s, tt_engine *e, const tt_source *src, tt_finding_row **rows,
                          size_t n, char *err, size_t errlen)
{
    if (s->readonly) {
        snprintf(err, errlen, "the analyzer state was opened read-only: no checkpoint");
        return -1;
    }
    if (exec(s->db, "BEGIN IMMEDIATE;", err, errlen) != 0) {
        return -1;
    }
    int64_t now = tt_time_now_ms();
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        tt_finding_row *r = rows[i];
        sqlite3_stmt *st = s->put_finding;
        sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, tt_finding_kind_name(r->kind), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, tt_severity_name(r->severity), -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, r->time_ms);
        bind_text_or_null(st, 5, r->token_id);
        bind_text_or_null(st, 6, r->client_id);
        bind_text_or_null(st, 7, r->subject);
        bind_text_or_null(st, 8, r->incident_id);
        sqlite3_bind_text(st, 9, r->message, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 10, now);
        sqlite3_bind_text(st, 11, r->json, -1, SQLITE_STATIC);
        rc = step_reset(st);
        r->is_new = sqlite3_changes(s->db) == 1;
    }
    if (rc == 0) {
        rc = tt_engine_save(e, &saver, s);
    }
    if (rc == 0) {
        char pos[TT_SOURCE_MAX_POSITION];
        tt_source_position(src, pos);
        sqlite3_bind_text(s->put_meta, 1, "position", -1, SQLITE_STATIC);
        sqlite3_bind_text(s->put_meta, 2, pos, -1, SQLITE_TRANSIENT);
        rc = step_reset(s->put_meta);
    }
    if (rc != 0) {
        snprintf(err, errlen, "checkpoint: sqlite: %s", sqlite3_errmsg(s->db));
    }
    if (rc == 0 && exec(s->db, "COMMIT;", err, errlen) != 0) {
        rc = -1;
    }
    if (rc != 0) {
        char ignore[256];
        exec(s->db, "ROLLBACK;", ignore, sizeof(ignore));
        return -1;
    }
    tt_engine_save_done(e);
    return 0;
}

int tt_anstore_restore(tt_anstore *s, tt_engine *e, tt_source *src, char *err, size_t errlen)
{
    static const char *const queries[] = {
        "SELECT key, value FROM analyzer_state",
        "SELECT incident_id, state FROM analyzer_incidents",
        "SELECT key, state FROM analyzer_tokens",
        "SELECT client_id, scope FROM analyzer_client_scopes",
        "SELECT seq, event FROM analyzer_pending",
    };
    static const char *const tables[] = {"analyzer_state", "analyzer_incidents", "analyzer_tokens",
                                         "analyzer_client_scopes", "analyzer_pending"};
    int found = 0;
    for (size_t q = 0; q < sizeof(queries) / sizeof(queries[0]); q++) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(s->db, queries[q], -1, &st, NULL) != SQLITE_OK) {
            snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(s->db));
            return -1;
        }
        int rc = SQLITE_DONE, bad = 0;
        while (!bad) {
            rc = sqlite3_step(st);
            if (rc != SQLITE_ROW) {
                break;
            }
            const char *k = (const char *)sqlite3_column_text(st, 0);
            const void *blob = sqlite3_column_blob(st, 1);
            size_t len = (size_t)sqlite3_column_bytes(st, 1);
            switch (q) {
            case 0:
                if (strcmp(k, "position") == 0) {
                    found = 1;
                    bad = tt_source_seek(src, (const char *)sqlite3_column_text(st, 1), err,
                                         errlen) != 0;
                } else {
                    tt_engine_load_meta(e, k, sqlite3_column_int64(st, 1));
                }
                break;
            case 1: bad = tt_engine_load_incident(e, k, blob, len) != 0; break;
            case 2:
                bad = sqlite3_column_bytes(st, 0) != 32 ||
                      tt_engine_load_token(e, sqlite3_column_blob(st, 0), blob, len) != 0;
                break;
            case 3:
                bad = tt_engine_load_client_scope(e, k, (const char *)sqlite3_column_text(st, 1)) !=
                      0;
                break;
            default: bad = tt_engine_load_pending(e, sqlite3_column_int64(st, 0), blob, len) != 0;
            }
        }
        if (bad) {
            if (q != 0) {
                snprintf(err, errlen,
                         "checkpoint: unreadable row in %s (corrupt, or written by "
                         "another version)",
                         tables[q]);
            }
            sqlite3_finalize(st);
            return -1;
        }
        if (rc != SQLITE_DONE) {
            snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(s->db));
            sqlite3_finalize(st);
            return -1;
        }
        sqlite3_finalize(st);
    }
    return found;
}

int64_t tt_anstore_findings(tt_anstore *s, const tt_findings_query *q,
                            int (*cb)(void *ctx, const char *json, size_t len), void *ctx,
                            char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(
            s->db,
            "SELECT body FROM findings WHERE time_ms >= ?1 AND (?2 IS NULL OR kind = ?2)"
            " ORDER BY time_ms, id",
            -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "no findings in this database (%s); run 'tokentrail analyze' first",
                 sqlite3_errmsg(s->db));
        return -1;
    }
    sqlite3_bind_int64(st, 1, q->since_ms);
    if (q->kind) {
        sqlite3_bind_text(st, 2, q->kind, -1, SQLITE_STATIC);
    }
    int64_t n = 0;
    int rc;
    for (;;) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
            break;
        }
        n++;
        if (cb(ctx, (const char *)sqlite3_column_text(st, 0),
               (size_t)sqlite3_column_bytes(st, 0))) {
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
