/* tt_engine.h - the analysis engine behind `tokentrail analyze`: token and
 * incident state, a reorder buffer that puts events back into event-time
 * order behind a watermark, timers for time-based findings, and the checks
 * that produce findings. Pure computation: no I/O, no threads, no clock of
 * its own (the caller says what time it is). See docs/analyze.md.
 *
 * Threading: one thread at a time per engine. */
#ifndef TT_ENGINE_H
#define TT_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "tt_aev.h"
#include "tt_finding.h"
#include "tt_policy.h"

typedef struct tt_engine tt_engine;

/* Called once per finding, synchronously, from offer/advance/flush. The
 * finding and its strings are valid only during the call. */
typedef void (*tt_engine_finding_cb)(void *ctx, const tt_finding *f);

typedef struct tt_engine_stats {
    uint64_t events_offered;   /* everything given to tt_engine_offer */
    uint64_t events_processed; /* released from the reorder buffer and applied */
    uint64_t duplicates;       /* same source/id seen again; dropped */
    uint64_t late;             /* arrived behind the analyzer clock; applied late */
    uint64_t unknown_token;    /* used/revoked for a token never issued (or forgotten) */
    uint64_t findings[TT_FK__COUNT];
    int64_t lingering[TT_FK__COUNT]; /* tokens in a lingering state now (see docs) */
    int64_t max_event_ms;            /* INT64_MIN before the first event */
    int64_t watermark_ms;            /* max_event_ms - lateness */
    int64_t clock_ms;                /* the analyzer clock: time-based checks ran up to here */
    uint64_t tokens;                 /* tokens held (live and recently ended) */
    uint64_t buffered;               /* events waiting in the reorder buffer */
    size_t memory_bytes;             /* state held, approximately */
} tt_engine_stats;

/* A new engine. `policy` is borrowed and must outlive the engine. Returns
 * NULL when out of memory. */
tt_engine *tt_engine_new(const tt_policy *policy, int64_t lateness_ms, tt_engine_finding_cb cb,
                         void *ctx);

/* Accepts NULL. */
void tt_engine_free(tt_engine *e);

/* Queue one event (copied) into the reorder buffer. ev->seq orders events of
 * equal time. Returns 0 when queued, 1 when it is a duplicate of an event
 * still remembered (same source and id) and was dropped, -1 out of memory. */
int tt_engine_offer(tt_engine *e, const tt_aev *ev);

/* max event time seen - lateness; INT64_MIN before the first event. */
int64_t tt_engine_watermark(const tt_engine *e);

/* Apply every buffered event with time <= clock_ms and every timer due
 * before clock_ms, interleaved in time order. The clock never goes back.
 * Returns 0, or -1 when out of memory (state stays consistent; retry later). */
int tt_engine_advance(tt_engine *e, int64_t clock_ms);

/* Apply every buffered event whatever its time, then timers due before
 * max(clock_ms, the last event's time). For --once. Same returns. */
int tt_engine_flush(tt_engine *e, int64_t clock_ms);

void tt_engine_get_stats(const tt_engine *e, tt_engine_stats *st);

/* ---- persistence (checkpoints) ----
 * tt_engine_save writes the state changed since the last save_done (dirty
 * tokens and incidents, new client scope history, events that entered or
 * left the reorder buffer) through these callbacks, each returning 0 or -1. The caller runs it
 * inside one transaction and calls tt_engine_save_done only after that
 * transaction committed, so a failed commit is retried at the next save. */
typedef struct tt_engine_saver {
    int (*token)(void *ctx, const uint8_t key[32], const void *blob,
                 size_t len); /* NULL blob: delete */
    int (*incident)(void *ctx, const char *incident_id, const void *blob, size_t len);
    int (*client_scope)(void *ctx, const char *client_id, const char *scope);
    int (*pending)(void *ctx, int64_t seq, const void *blob, size_t len); /* NULL blob: delete */
    int (*meta)(void *ctx, const char *key, int64_t value);
} tt_engine_saver;

int tt_engine_save(tt_engine *e, const tt_engine_saver *s, void *ctx);
void tt_engine_save_done(tt_engine *e);

/* Restore, before the first offer. Each returns 0, or -1 for a blob it
 * cannot read (corrupt or from another version) or out of memory. */
int tt_engine_load_token(tt_engine *e, const uint8_t key[32], const void *blob, size_t len);
int tt_engine_load_incident(tt_engine *e, const char *incident_id, const void *blob, size_t len);
int tt_engine_load_client_scope(tt_engine *e, const char *client_id, const char *scope);
int tt_engine_load_pending(tt_engine *e, int64_t seq, const void *blob, size_t len);
int tt_engine_load_meta(tt_engine *e, const char *key, int64_t value);

/* ---- partitions (Kafka: a consumer group shares the partitions out) ----
 * With a modulus set, ev->seq % modulus is an event's partition (the Kafka
 * source's ordinals are offset * 1024 + partition), and each token remembers
 * the partition of its token.issued event; all events of a token share one
 * partition (the message key is the token id). Set before the first offer. */
void tt_engine_set_partitions(tt_engine *e, int64_t modulus);

/* Forget the tokens of `part` and its buffered token events, without
 * findings (another group member owns them now); they are deleted from the
 * checkpoint at the next save. `dropped` (may be NULL) gets how many tokens
 * and events went. Returns 0, or -1 when out of memory (partly dropped). */
int tt_engine_drop_partition(tt_engine *e, int32_t part, uint64_t *dropped);

/* Copy every token and buffered token event of `from` into `to`, which holds
 * none of those tokens (drop their partition first); incident state and
 * incident events stay behind (`to` reads incidents itself). The copies are
 * saved at `to`'s next save, and their timers run on `to`'s clock. Counts
 * may be NULL. Returns 0, or -1 (a token `to` holds already, out of memory). */
int tt_engine_transfer(tt_engine *from, tt_engine *to, uint64_t *n_tokens, uint64_t *n_events);

#endif
