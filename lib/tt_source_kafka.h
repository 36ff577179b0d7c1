/* tt_source_kafka.h - the analyzer's event source on a Kafka topic: a
 * consumer in a group (manual commits), its position the per-partition
 * offsets after what was delivered. See docs/analyze.md#kafka. */
#ifndef TT_SOURCE_KAFKA_H
#define TT_SOURCE_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include "tt_config.h"
#include "tt_source.h"

#define TT_SOURCE_KAFKA_DEFAULT_GROUP "tokentrail-analyzer"
/* Most partitions of the topic the source tracks. */
#define TT_SOURCE_KAFKA_MAX_PARTITIONS 1024

/* One partition's change of hands, for the on_assign callback. */
typedef struct tt_source_kafka_handover {
    int32_t partition;
    int drop;          /* the caller's state for it must go (not ours now, or stale) */
    int restore;       /* rebuild its state up to `committed` (tt_source_kafka_replay) */
    int64_t committed; /* the group's committed offset: reading continues there */
    int64_t clock_ms;  /* the analyzer clock the committer checkpointed with it
                          (INT64_MIN: not recorded) */
} tt_source_kafka_handover;

typedef struct tt_source_kafka_opts {
    const char *brokers;     /* bootstrap.servers; required */
    const char *topic;       /* NULL = tokentrail.events */
    const char *group;       /* NULL = TT_SOURCE_KAFKA_DEFAULT_GROUP */
    const tt_strlist *props; /* extra librdkafka "key=value"; may be NULL */
    int once;                /* poll returns 0 only once every assigned partition
                                reached the high watermark seen at assignment */
    int64_t timeout_ms;      /* --once: error when no assignment/progress this long */
    /* Also read the incident events (ce_type incident.*) of every partition
     * with a second, group-less consumer, so incident state is complete in
     * every group member; the group consumer then skips them. */
    int all_incidents;
    /* Called from inside tt_source_poll when partitions are about to be
     * revoked (a rebalance, or closing): the caller must checkpoint what it
     * has; the source then commits the delivered offsets. Returns 0 or -1
     * (then nothing is committed for them). May be NULL. */
    int (*on_revoke)(void *ctx);
    /* Called from inside tt_source_poll when an assignment arrives and the
     * caller's state must change with it: partitions it held that went to
     * another member (drop), and partitions another member moved on
     * (restore: the caller rebuilds their state up to the committed offset,
     * e.g. with tt_source_kafka_replay, before reading continues there).
     * Returns 0 or -1 (logged; reading continues). May be NULL. */
    int (*on_assign)(void *ctx, tt_source *src, const tt_source_kafka_handover *h, size_t n);
    void *ctx;
} tt_source_kafka_opts;

/* Create the consumer(s) and subscribe; the group is joined during the
 * first polls; the incident reader is assigned after the first assignment. Ordinals (tt_source_cb's
 * ord) are offset * 1024 + partition, so they are unique across runs and increase along each
 * partition. Returns NULL with err filled (bad property naming its key). */
tt_source *tt_source_kafka_open(const tt_source_kafka_opts *o, char *err, size_t errlen);

/* Commit the offsets after everything delivered on the assigned partitions
 * (synchronously). Call only after the state and findings for those events
 * are durably stored. Returns 0 or -1 with err. */
int tt_source_kafka_commit(tt_source *src, char *err, size_t errlen);

/* The analyzer clock of the state being checkpointed; committed with the
 * offsets (as commit metadata "clock=MS") for a member that takes over. */
void tt_source_kafka_set_clock(tt_source *src, int64_t clock_ms);

/* 1 while an assignment is in force (0 between a revocation and the next
 * assignment: the caller should not advance time-based state then). */
int tt_source_kafka_assigned(const tt_source *src);

/* While reading a backlog, partitions hold events of different times: a clock
 * set from the newest time seen anywhere would run past events another
 * partition (or the incident reader) has not delivered yet, and they would
 * count as late. This is the oldest of the newest message times (CreateTime,
 * the event's `time`) read from each input that still has a backlog:
 * INT64_MAX when none has one, INT64_MIN when one has delivered nothing yet
 * or the assignment is not known. Main thread. */
int64_t tt_source_kafka_backlog_time(tt_source *src);

/* For a hand-over: read the topic from its start on a separate, group-less
 * consumer up to the high watermarks of now, delivering the token events of
 * partition p below until[p] (until[p] < 0 or p >= n_until: none) and the
 * incident events of every partition; ordinals as in tt_source_poll. A
 * non-zero return from cb stops it. Blocks (up to the source's timeout
 * without progress). Returns the records delivered, or -1 with err. */
int64_t tt_source_kafka_replay(tt_source *src, const int64_t *until, size_t n_until,
                               tt_source_cb cb, void *ctx, char *err, size_t errlen);

/* Leave the group: revoke (calling on_revoke, committing), close. Call before
 * tt_source_close when the caller can still checkpoint. */
void tt_source_kafka_leave(tt_source *src);

/* The partitions assigned now, as "0,2" (empty when none). */
void tt_source_kafka_assignment(const tt_source *src, char *out, size_t n);

#endif
