/* tt_kafka.h - the Kafka relay: produces the store's outbox to a topic with
 * librdkafka (idempotent, acks=all) and lets an event leave the outbox only
 * when its delivery report says the broker has it. See docs/kafka.md. */
#ifndef TT_KAFKA_H
#define TT_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "tt_buf.h"
#include "tt_config.h"
#include "tt_store.h"

#define TT_KAFKA_DEFAULT_TOPIC "tokentrail.events"
/* Most events produced but not yet deleted from the outbox (in librdkafka's
 * queue, in flight, or acknowledged but not committed). It bounds the memory
 * librdkafka holds and the duplicates a crash can cause. */
#define TT_KAFKA_MAX_UNACKED 20000
/* Outbox rows read per SQLite query. */
#define TT_KAFKA_READ_BATCH 2000
/* /readyz says "degraded" once the oldest undelivered event is this old. */
#define TT_KAFKA_DEGRADED_AGE_MS 5000
/* Kafka's limit on topic names (legal characters: a-z A-Z 0-9 . _ -). */
#define TT_KAFKA_MAX_TOPIC_LEN 249
/* Distinct delivery error codes counted by name; the rest count as "other". */
#define TT_KAFKA_MAX_ERROR_CODES 32

typedef struct tt_kafka tt_kafka;

typedef struct tt_kafka_opts {
    const char *brokers;       /* bootstrap.servers; required */
    const char *topic;         /* NULL = TT_KAFKA_DEFAULT_TOPIC */
    const char *compression;   /* compression.type; NULL = lz4 */
    const tt_strlist *props;   /* "key=value" pairs for librdkafka (kafka.*) */
} tt_kafka_opts;

typedef enum { TT_KAFKA_CONNECTING = 0, TT_KAFKA_UP, TT_KAFKA_DOWN } tt_kafka_link;

typedef struct tt_kafka_status {
    tt_kafka_link link;
    int failed;                /* a fatal error: the collector must stop */
    int64_t outbox_events;     /* undelivered events */
    int64_t oldest_age_ms;     /* of the oldest undelivered event; 0 if none */
    int outbox_full;
} tt_kafka_status;

/* rd_kafka_conf_set with tokentrail's error text: returns 0, or -1 with
 * err = "kafka.KEY: why", naming the key as it is written in a config file. */
int tt_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err,
                      size_t errlen);

/* 0 if topic is a legal Kafka topic name (1..TT_KAFKA_MAX_TOPIC_LEN of
 * [a-zA-Z0-9._-], not "." or ".."), else -1 with err = "kafka.topic: why". */
int tt_kafka_topic_check(const char *topic, char *err, size_t errlen);

/* The start-up checks of tt_kafka_start, without starting anything: no
 * kafka.* alias of a key tokentrail sets itself (kafka.bootstrap.servers,
 * kafka.metadata.broker.list beside kafka.brokers; kafka.compression.type,
 * kafka.compression.codec beside kafka.compression), a non-empty broker
 * list, a legal topic, and no kafka.acks, kafka.enable.idempotence or
 * kafka.partitioner that contradicts what the guarantee needs. With
 * opts->brokers NULL (Kafka off) only the aliases are checked: a
 * kafka.bootstrap.servers without kafka.brokers would leave Kafka silently
 * off. Returns 0, or -1 with err naming the key(s). Any thread. */
int tt_kafka_check_opts(const tt_kafka_opts *opts, char *err, size_t errlen);

/* 1 if a delivery (or produce) error condemns the message itself and no
 * retry can fix it (MSG_SIZE_TOO_LARGE, INVALID_TIMESTAMP, INVALID_RECORD,
 * INVALID_MSG = Kafka's CORRUPT_MESSAGE, RECORD_LIST_TOO_LARGE):
 * such an event becomes a dead letter instead of blocking the outbox. */
int tt_kafka_err_is_per_message(rd_kafka_resp_err_t err);

/* A librdkafka configuration: bootstrap.servers = brokers, then every
 * "key=value" of props, with log_cb routed into tt_log. Returns NULL with err
 * naming the offending key ("kafka.<key>: <why>") on a bad property. The
 * caller owns the result until it hands it to rd_kafka_new. Any thread. */
rd_kafka_conf_t *tt_kafka_conf_new(const char *brokers, const tt_strlist *props, char *err,
                                   size_t errlen);

/* Create the producer (validating every property) and start the relay
 * thread, which produces undelivered events from `store` (opened with an
 * outbox) in seq order, beginning with what a previous run left. Nothing is
 * sent synchronously: an unreachable cluster is not a start-up error.
 * Returns NULL with err filled, with nothing left running. */
tt_kafka *tt_kafka_start(const tt_kafka_opts *opts, tt_store *store, char *err, size_t errlen);

/* Health for /readyz. Any thread. */
void tt_kafka_get_status(tt_kafka *k, tt_kafka_status *st);

/* 1 after a fatal error (e.g. the idempotent producer lost its guarantee);
 * then `why` holds librdkafka's reason. The relay stops producing; the caller
 * stops accepting, calls tt_kafka_stop and exits non-zero. Any thread. */
int tt_kafka_failed(tt_kafka *k, char *why, size_t n);

/* Append the Kafka and outbox metric families (Prometheus text). */
void tt_kafka_render_metrics(tt_kafka *k, tt_buf *b);

/* Stop: keep delivering for up to timeout_ms (until the outbox is empty),
 * flush, commit the last deliveries, check rd_kafka_outq_len, destroy.
 * Events not delivered stay in the outbox for the next start. Call after the
 * HTTP server stopped and before the store closes. Returns the events left
 * undelivered. Accepts NULL (returns 0). */
int64_t tt_kafka_stop(tt_kafka *k, int64_t timeout_ms);

/* The librdkafka handle, for tests (mock cluster fault injection). */
rd_kafka_t *tt_kafka_handle(tt_kafka *k);

#endif
