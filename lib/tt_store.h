/* tt_store.h - the embedded event store: SQLite in WAL mode, fsync on every
 * commit, with concurrent writers grouped into one commit (group commit). */
#ifndef TT_STORE_H
#define TT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "tt_metrics.h"

typedef struct tt_store tt_store;

/* Most rows one group commit takes; more waiting rows go into the next. */
#define TT_STORE_MAX_GROUP_ROWS 20000

enum { TT_STORE_INSERTED = 1, TT_STORE_DUPLICATE = 2 };

/* One event to persist. Strings are borrowed for the duration of the call. */
typedef struct tt_store_row {
    const char *source;
    const char *id;
    const char *type;
    const char *token_id;     /* may be NULL */
    const char *incident_id;  /* may be NULL */
    int64_t time_ms;
    const char *body;         /* the normalised CloudEvent JSON */
    size_t body_len;
    /* Optional lengths of source, id, token_id and incident_id; 0 = measure
     * the NUL-terminated string. Callers that know them (tt_ingest) pass
     * them, so the single writer thread does not strlen every column. */
    size_t source_len, id_len, token_id_len, incident_id_len;
    int result;               /* out: TT_STORE_INSERTED or TT_STORE_DUPLICATE */
} tt_store_row;

typedef struct tt_store_opts {
    int readonly;               /* open for queries only; no writer thread */
    /* Kafka mode: every inserted event also gets an outbox row in the same
     * transaction, deleted only once Kafka acknowledged it (docs/kafka.md). */
    int outbox;
    int64_t outbox_max;         /* with outbox: writes whose new events would
                                   take the outbox past this fail (see
                                   TT_STORE_OUTBOX_FULL); <= 0 = no cap */
} tt_store_opts;

/* Open (creating the schema when writable) and, when writable, start the
 * writer thread. Returns NULL with err filled on any failure; nothing is left
 * open then. */
tt_store *tt_store_open(const char *path, const tt_store_opts *opts, char *err, size_t errlen);

/* Persist n rows and block until they are durable (committed and fsynced) or
 * the commit failed. Safe from many threads at once: rows of concurrent calls
 * share one transaction. Returns 0 with rows[i].result set, or -1 with err
 * filled, in which case none of these rows were committed. */
int tt_store_write(tt_store *s, tt_store_row *rows, size_t n, char *err, size_t errlen);

/* Called once per tt_store_submit, on the writer thread, without store locks
 * held: rc 0 when the rows are durable (their `result` fields set), -1 with
 * err when the commit failed and none of them were stored. */
typedef void (*tt_store_done_cb)(void *arg, int rc, const char *err);

/* Like tt_store_write, but does not wait: the rows join the next group commit
 * and cb(arg, ...) reports the outcome. rows must stay valid until then.
 * Returns 0 when queued (cb will be called exactly once), or -1 with err
 * filled when refused at once (read-only, closing; cb is not called). The
 * outbox cap is applied at commit: cb then reports -1 with
 * TT_STORE_OUTBOX_FULL or TT_STORE_OUTBOX_TOO_BIG. n must be > 0. */
int tt_store_submit(tt_store *s, tt_store_row *rows, size_t n, tt_store_done_cb cb, void *arg,
                    char *err, size_t errlen);

/* 1 while the writer is healthy (last commit succeeded, not closing). */
int tt_store_ready(tt_store *s);

/* Bytes on disk: database plus WAL. */
int64_t tt_store_size_bytes(const tt_store *s);

/* Commit statistics for metrics: group commits done, and their latency
 * (insert + COMMIT + fsync). The histogram belongs to the store. */
uint64_t tt_store_commits(const tt_store *s);
const tt_histogram *tt_store_commit_hist(const tt_store *s);

typedef struct tt_store_query {
    const char *type;         /* NULL = any */
    const char *token_id;
    const char *incident_id;
    int64_t since_ms;         /* inclusive; INT64_MIN = open */
    int64_t until_ms;         /* exclusive; INT64_MAX = open */
    int64_t limit;            /* <= 0 = no limit */
} tt_store_query;

/* Call cb for each matching event in event-time order (ties by arrival).
 * cb returns 0 to continue, non-zero to stop. Returns the number of rows
 * visited, or -1 with err filled. */
int64_t tt_store_query_events(tt_store *s, const tt_store_query *q,
                              int (*cb)(void *ctx, const char *body, size_t len), void *ctx,
                              char *err, size_t errlen);

/* ---- The Kafka outbox (only with opts.outbox) ----
 *
 * The writer inserts an outbox row for each newly inserted event in the same
 * transaction, so an event a client got a 2xx for is durable *and* queued for
 * Kafka. The relay (tt_kafka) reads undelivered rows in seq order and hands
 * back the seqs Kafka acknowledged; the writer deletes them in its next group
 * commit. */

/* Messages the write functions put at the start of err when the outbox cap
 * refuses a write. Only new events count against the cap (duplicates of
 * stored events do not), so a write of duplicates only is never refused.
 * FULL: the outbox has no room for the write's new events now (retry later;
 * HTTP 503). TOO_BIG: the write holds more new events than
 * kafka.outbox_max_events, so no retry can succeed (HTTP 413). */
#define TT_STORE_OUTBOX_FULL "outbox full"
#define TT_STORE_OUTBOX_TOO_BIG "too many new events for the outbox"

/* One undelivered event, as the relay produces it. Strings are borrowed for
 * the duration of the callback. */
typedef struct tt_outbox_row {
    int64_t seq;              /* arrival order; the outbox key */
    const char *type;
    const char *source;
    const char *id;
    const char *key;          /* token_id, else incident_id; may be NULL */
    int64_t time_ms;          /* event time */
    const char *body;
    size_t body_len;
} tt_outbox_row;

/* Call cb for up to max undelivered events with seq > after_seq, in seq
 * order; cb returns 0 to go on, non-zero to stop (that row counts as not
 * visited). Returns the number of rows visited or -1 with err filled. Uses the
 * store's own read connection; call from one thread at a time (the relay). */
int64_t tt_store_outbox_read(tt_store *s, int64_t after_seq, int64_t max,
                             int (*cb)(void *ctx, const tt_outbox_row *r), void *ctx,
                             char *err, size_t errlen);

/* Highest outbox seq committed so far (0 when none ever was). */
int64_t tt_store_outbox_last_seq(tt_store *s);

/* Block until an outbox row with seq > after_seq is committed, the store is
 * closing, or timeout_ms passed. Returns 1 if there is such a row, else 0. */
int tt_store_outbox_wait(tt_store *s, int64_t after_seq, int64_t timeout_ms);

/* Mark events delivered: their outbox rows are deleted in the writer's next
 * commit (not fsync-critical: a lost deletion only means a redelivery). seqs
 * is sorted in place. With wait, blocks until that commit is done. Returns 0,
 * or -1 when the store is closing or out of memory (rows stay undelivered). */
int tt_store_outbox_ack(tt_store *s, int64_t *seqs, size_t n, int wait);

/* Kafka rejected the event with this seq for good (a per-message error no
 * retry can fix): in the writer's next commit its outbox row moves to the
 * table outbox_dead (seq, error, failed_at epoch ms), so it blocks nothing;
 * the event stays in events. error is the librdkafka error name (copied,
 * truncated to 63 bytes). Counts in tt_store_outbox_acks_pending until
 * committed, so tt_store_outbox_ack(..., wait) waits for it too. Returns 0,
 * or -1 when the store is closing or out of memory (the row stays in the
 * outbox and is produced again at the next start). Relay thread. */
int tt_store_outbox_dead(tt_store *s, int64_t seq, const char *error);

/* Rows in outbox_dead (dead letters), kept in memory. */
int64_t tt_store_outbox_dead_count(tt_store *s);

/* Acknowledged seqs whose deletion is not committed yet. */
int64_t tt_store_outbox_acks_pending(tt_store *s);

/* Undelivered events (committed outbox rows), kept in memory. */
int64_t tt_store_outbox_depth(tt_store *s);

/* 1 when the outbox is at its cap (new events are refused; duplicates of
 * stored events are still answered). */
int tt_store_outbox_full(tt_store *s);

/* Commit time (epoch ms) of the oldest undelivered event, or 0 when none. */
int64_t tt_store_outbox_oldest_ms(tt_store *s);

/* Drain queued writes, stop the writer and close. Accepts NULL. */
void tt_store_close(tt_store *s);

#endif
