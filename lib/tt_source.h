/* tt_source.h - where the analyzer's events come from: an ordered stream of
 * canonical event bodies with a resumable position. Today the SQLite store
 * (the `events` table, in `seq` order); a Kafka consumer implements the same
 * operations (its position is a partition/offset list). */
#ifndef TT_SOURCE_H
#define TT_SOURCE_H

#include <stddef.h>
#include <stdint.h>

/* Longest position text ("seq:123", or a Kafka offset list). */
#define TT_SOURCE_MAX_POSITION 4096

typedef struct tt_source tt_source;

/* One delivered record: the canonical event body and an arrival ordinal that
 * increases along the stream (the store's seq; for Kafka, a per-run counter). */
typedef int (*tt_source_cb)(void *ctx, const char *body, size_t len, int64_t ord);

typedef struct tt_source_ops {
    const char *kind; /* "sqlite", "kafka" */
    /* Deliver up to max records after the position, advancing it past each
     * record cb accepts (returns 0). A non-zero return from cb stops the poll
     * and leaves that record undelivered. Returns the number accepted
     * (0 = nothing new now), or -1 with err filled. */
    int64_t (*poll)(tt_source *src, size_t max, tt_source_cb cb, void *ctx, char *err,
                    size_t errlen);
    /* The position after everything delivered, as text for a checkpoint. */
    void (*position)(const tt_source *src, char out[TT_SOURCE_MAX_POSITION]);
    /* Continue after a checkpointed position. Returns 0 or -1 with err. */
    int (*seek)(tt_source *src, const char *pos, char *err, size_t errlen);
    /* Records available but not yet delivered (consumer lag); -1 if unknown. */
    int64_t (*lag)(tt_source *src);
    void (*close)(tt_source *src);
} tt_source_ops;

struct tt_source {
    const tt_source_ops *ops;
};

/* The store's `events` table in the SQLite file at path, read on its own
 * connection (WAL lets it read while the collector writes). Returns NULL with
 * err filled (no such file, not a tokentrail database). */
tt_source *tt_source_sqlite_open(const char *path, char *err, size_t errlen);

/* Longest record a prepare hook may ask for (its body is at most 1 MiB). */
#define TT_SOURCE_MAX_RECORD (4 << 20)

/* A per-row hook of the SQLite source: turn one row's body into the record
 * tt_source_cb then receives (as body/len) instead of the body, so work such
 * as parsing runs on the read-ahead thread, in parallel with the callbacks.
 * Write the record to out (cap bytes, 8-byte aligned) and return its length.
 * When it needs more than cap bytes, return the length it needs without
 * relying on out (which may be NULL when cap is 0): the source calls again,
 * for the same body and ord, with at least that much room. The record stays
 * at that address until the callback has run, so it may hold pointers into
 * itself. hurry says the consumer is about to run out of records: the hook
 * should then write one quickly (say, the body as is, leaving the work to
 * the callback) so that the two threads share the work. Must not fail: a
 * body the hook cannot use becomes a record saying so. Runs on the
 * read-ahead thread during tt_source_poll (on the polling thread if no
 * helper thread could start), never concurrently with itself; ctx is
 * touched only there. */
typedef size_t (*tt_source_prepare_fn)(void *ctx, const char *body, size_t len, int64_t ord,
                                       void *out, size_t cap, int hurry);

/* Install (fn != NULL) or remove the prepare hook of an SQLite source; set
 * it between polls. Without a hook the callback receives the bodies. */
void tt_source_sqlite_set_prepare(tt_source *src, tt_source_prepare_fn fn, void *ctx);

/* Convenience wrappers over ops. tt_source_close accepts NULL. */
int64_t tt_source_poll(tt_source *s, size_t max, tt_source_cb cb, void *ctx, char *err,
                       size_t errlen);
void tt_source_position(const tt_source *s, char out[TT_SOURCE_MAX_POSITION]);
int tt_source_seek(tt_source *s, const char *pos, char *err, size_t errlen);
int64_t tt_source_lag(tt_source *s);
void tt_source_close(tt_source *s);

#endif
