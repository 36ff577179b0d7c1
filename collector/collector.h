/* collector.h - the `tokentrail collect` daemon: configuration and server. */
#ifndef TT_COLLECTOR_H
#define TT_COLLECTOR_H

#include <stdint.h>

#include "tt_config.h"

typedef struct tt_collect_config {
    char *listen;                 /* HOST:PORT */
    char *db;                     /* SQLite path */
    int64_t max_body;             /* bytes, after decompression */
    tt_strlist auth_tokens_files; /* files of ingest tokens, one per line */
    tt_strlist auth_fingerprints; /* "sha256:<hex>" of accepted ingest tokens */
    char *tls_cert;
    char *tls_key;
    char *log_level;
    int64_t max_connections;
    int64_t threads;              /* HTTP event-loop threads; 0 = one per CPU */
    int64_t idle_timeout_ms;
    int64_t shutdown_timeout_ms;
    char *port_file;              /* write the bound port here (for port 0) */
    /* Kafka (docs/kafka.md): off unless kafka_brokers is set. */
    char *kafka_brokers;
    char *kafka_topic;
    char *kafka_compression;
    int64_t kafka_outbox_max;     /* undelivered events held before 503 */
    int64_t kafka_flush_timeout_ms;
    tt_strlist kafka_props;       /* every other kafka.* key, "key=value" */
} tt_collect_config;

extern const tt_cfg_entry tt_collect_config_table[];

/* Entry point of `tokentrail collect`; returns the process exit code. */
int tt_cmd_collect(int argc, char **argv);

/* Entry point of `tokentrail events`. */
int tt_cmd_events(int argc, char **argv);

#endif
