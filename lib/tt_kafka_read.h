/* tt_kafka_read.h - read a topic back once, for `tokentrail events`: every
 * partition from a start time (offsets-for-times) up to the high watermark
 * seen at the start, without a consumer group and without committing. */
#ifndef TT_KAFKA_READ_H
#define TT_KAFKA_READ_H

#include <stddef.h>
#include <stdint.h>

#include "tt_config.h"

/* Most partitions of a topic we read. */
#define TT_KAFKA_READ_MAX_PARTITIONS 1024

typedef struct tt_kafka_read_opts {
    const char *brokers;
    const char *topic;
    const tt_strlist *props;   /* extra librdkafka "key=value" (TLS, SASL); may be NULL */
    int64_t since_ms;          /* start at the first message with timestamp >= since_ms;
                                  INT64_MIN = from the beginning */
    int64_t timeout_ms;        /* for metadata and for a partition to make progress */
} tt_kafka_read_opts;

typedef struct tt_kafka_msg {
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms;      /* -1 when the message has none */
    const char *key;           /* not NUL-terminated; may be NULL */
    size_t key_len;
    const char *value;         /* not NUL-terminated */
    size_t len;
} tt_kafka_msg;

/* Call cb for every message in range, partition by partition interleaved as
 * they arrive (per partition in offset order). cb returns 0 to go on,
 * non-zero to stop. Returns the messages visited, or -1 with err filled
 * (unknown topic, unreachable cluster, bad property naming its key). */
int64_t tt_kafka_read(const tt_kafka_read_opts *o, int (*cb)(void *ctx, const tt_kafka_msg *m),
                      void *ctx, char *err, size_t errlen);

#endif
