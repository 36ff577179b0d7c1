/* tt_evidence_sqlite.c - the evidence source for the SQLite store: events
 * (with the incident / subject / client filters) and findings, read inside
 * one read transaction so both come from the same snapshot. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "tt_evidence.h"

typedef struct sq_src {
    tt_evidence_source pub;
    sqlite3 *db;
    int in_txn;
} sq_src;

/* A token event matches --subject S when its own data.subject is S, or when
 * its token_id belongs to a token that any stored token event ties to S (a
 * token.used usually carries only the token_id). The same holds for
 * --client (data.client_id) and --incident (data.incident_id); incident
 * events match --incident by their incident_id and are never dropped by
 * --subject / --client. The token sets are not limited to the time range: a
 * token issued before --from and used inside it is still alice's. */
static const char *const events_sql =
    "SELECT body FROM events WHERE time_ms >= ?1 AND time_ms < ?2"
    " AND (?3 IS NULL"
    "  OR (type LIKE 'incident.%' AND incident_id = ?3)"
    "  OR (type LIKE 'token.%' AND (incident_id = ?3 OR token_id IN"
    "      (SELECT token_id FROM events WHERE incident_id = ?3 AND token_id IS NOT NULL))))"
    " AND (?4 IS NULL OR type LIKE 'incident.%'"
    "  OR json_extract(body, '$.data.subject') = ?4 OR token_id IN"
    "      (SELECT token_id FROM events WHERE token_id IS NOT NULL"
    "       AND json_extract(body, '$.data.subject') = ?4))"
    " AND (?5 IS NULL OR type LIKE 'incident.%'"
    "  OR json_extract(body, '$.data.client_id') = ?5 OR token_id IN"
    "      (SELECT token_id FROM events WHERE token_id IS NOT NULL"
    "       AND json_extract(body, '$.data.client_id') = ?5))"
    " ORDER BY time_ms, seq";

static int begin_snapshot(sq_src *s, char *err, size_t errlen)
{
    if (s->in_txn) {
        return 0;
    }
    /* A deferred transaction pins the snapshot at its first read, so events
     * and findings come from the same moment even while collect writes. */
    if (sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(s->db));
        return -1;
    }
    s->in_txn = 1;
    return 0;
}

static void bind_opt(sqlite3_stmt *st, int i, const char *v)
{
    if (v) {
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    }
}

/* Step st and hand each row's column 0 to cb. Returns rows or -1. */
static int64_t run(sq_src *s, sqlite3_stmt *st, tt_evidence_item_cb cb, void *ctx, char *err,
                   size_t errlen)
{
    int64_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *body = (const char *)sqlite3_column_text(st, 0);
        size_t len = (size_t)sqlite3_column_bytes(st, 0);
        if (body == NULL) {
            body = "";
        }
        if (cb(ctx, body, len) != 0) {
            snprintf(err, errlen, "stopped at row %lld", (long long)n + 1);
            return -1;
        }
        n++;
    }
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(s->db));
        return -1;
    }
    return n;
}

static int64_t sq_each_event(tt_evidence_source *src, const tt_evidence_query *q,
                             tt_evidence_item_cb cb, void *ctx, char *err, size_t errlen)
{
    sq_src *s = (sq_src *)src;
    sqlite3_stmt *st = NULL;
    if (begin_snapshot(s, err, errlen) != 0) {
        return -1;
    }
    if (sqlite3_prepare_v2(s->db, events_sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(s->db));
        return -1;
    }
    sqlite3_bind_int64(st, 1, q->from_ms);
    sqlite3_bind_int64(st, 2, q->to_ms);
    bind_opt(st, 3, q->incident_id);
    bind_opt(st, 4, q->subject);
    bind_opt(st, 5, q->client_id);
    int64_t n = run(s, st, cb, ctx, err, errlen);
    sqlite3_finalize(st);
    return n;
}

/* 1 when table t has column c. */
static int has_column(sqlite3 *db, const char *t, const char *c)
{
    sqlite3_stmt *st = NULL;
    int found = 0;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, t, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, c, -1, SQLITE_STATIC);
        found = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return found;
}

static int64_t sq_each_finding(tt_evidence_source *src, const tt_evidence_query *q,
                               tt_evidence_item_cb cb, void *ctx, char *note, size_t notelen,
                               char *err, size_t errlen)
{
    sq_src *s = (sq_src *)src;
    if (begin_snapshot(s, err, errlen) != 0) {
        return -1;
    }
    /* The analyzer owns the findings table. We need its event time and the
     * finding's JSON; without them there is nothing we can export faithfully. */
    const char *json_col = has_column(s->db, "findings", "body")   ? "body"
                           : has_column(s->db, "findings", "json") ? "json"
                                                                   : NULL;
    if (!has_column(s->db, "findings", "time_ms") || json_col == NULL) {
        snprintf(note, notelen, "%s",
                 has_column(s->db, "findings", "time_ms") || has_column(s->db, "findings", "id")
                     ? "the store's findings table has no time_ms and body columns; not exported"
                     : "the store has no findings table (no analyzer has run on it)");
        return 0;
    }
    /* The analyzer's table (lib/tt_anstore.c) has the finding's token_id,
     * client_id, subject and incident_id: the filters mean what they mean
     * for events. Order as `tokentrail findings` lists them: time, then id. */
    int full = has_column(s->db, "findings", "token_id") &&
               has_column(s->db, "findings", "incident_id") &&
               has_column(s->db, "findings", "subject") &&
               has_column(s->db, "findings", "client_id");
    if (!full && (q->incident_id || q->subject || q->client_id)) {
        snprintf(note, notelen, "the store's findings table has no token, subject, client and "
                                "incident columns to filter on; not exported");
        return 0;
    }
    char sql[1400];
    snprintf(sql, sizeof(sql),
             "SELECT %s FROM findings WHERE time_ms >= ?1 AND time_ms < ?2%s ORDER BY time_ms, %s",
             json_col,
             full ? " AND (?3 IS NULL OR incident_id = ?3 OR token_id IN"
                    "  (SELECT token_id FROM events WHERE incident_id = ?3 AND token_id IS NOT NULL))"
                    " AND (?4 IS NULL OR subject = ?4 OR token_id IN"
                    "  (SELECT token_id FROM events WHERE token_id IS NOT NULL"
                    "   AND json_extract(body, '$.data.subject') = ?4))"
                    " AND (?5 IS NULL OR client_id = ?5 OR token_id IN"
                    "  (SELECT token_id FROM events WHERE token_id IS NOT NULL"
                    "   AND json_extract(body, '$.data.client_id') = ?5))"
                  : "",
             has_column(s->db, "findings", "id") ? "id" : "rowid");
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "sqlite: %s", sqlite3_errmsg(s->db));
        return -1;
    }
    if (full) {
        bind_opt(st, 3, q->incident_id);
        bind_opt(st, 4, q->subject);
        bind_opt(st, 5, q->client_id);
    }
    sqlite3_bind_int64(st, 1, q->from_ms);
    sqlite3_bind_int64(st, 2, q->to_ms);
    int64_t n = run(s, st, cb, ctx, err, errlen);
    sqlite3_finalize(st);
    return n;
}

static void sq_close(tt_evidence_source *src)
{
    sq_src *s = (sq_src *)src;
    if (s == NULL) {
        return;
    }
    if (s->db) {
        if (s->in_txn) {
            sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
        }
        sqlite3_close(s->db);
    }
    free(s);
}

tt_evidence_source *tt_evidence_source_sqlite(const char *path, char *err, size_t errlen)
{
    sq_src *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->pub.kind = "sqlite";
    s->pub.location = path;
    s->pub.each_event = sq_each_event;
    s->pub.each_finding = sq_each_finding;
    s->pub.close = sq_close;
    s->pub.impl = s;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot open database: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
        sq_close(&s->pub);
        return NULL;
    }
    sqlite3_busy_timeout(s->db, 10000);
    if (sqlite3_exec(s->db, "SELECT 1 FROM events LIMIT 0", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: not a tokentrail database (no events table)", path);
        sq_close(&s->pub);
        return NULL;
    }
    return &s->pub;
}
