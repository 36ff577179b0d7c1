/* config.c - the collector's configuration table (YAML keys and defaults). */
#include <stddef.h>

#include "collector.h"

#define OFF(f) offsetof(tt_collect_config, f)
#define MiB (INT64_C(1) << 20)

/* For strings, min 1 means "must not be empty" (see tt_cfg_entry). */

const tt_cfg_entry tt_collect_config_table[] = {
    {"listen", TT_CFG_STRING, "127.0.0.1:8088", 1, 0, OFF(listen),
     "HOST:PORT to serve HTTP on (port 0 picks a free port)"},
    {"db", TT_CFG_STRING, "tokentrail.db", 1, 0, OFF(db), "SQLite database file"},
    {"max_body", TT_CFG_SIZE, "8MiB", 1024, 1024 * MiB, OFF(max_body),
     "largest request body, counted after gzip decompression"},
    {"auth.tokens_file", TT_CFG_FILELIST, NULL, 0, 0, OFF(auth_tokens_files),
     "file of accepted ingest tokens, one per line (repeatable, for rotation)"},
    {"auth.token_sha256", TT_CFG_SHA256LIST, NULL, 0, 0, OFF(auth_fingerprints),
     "sha256:<hex> fingerprint of an accepted ingest token (repeatable)"},
    {"tls.cert", TT_CFG_STRING, NULL, 0, 0, OFF(tls_cert), "PEM certificate: serve HTTPS"},
    {"tls.key", TT_CFG_STRING, NULL, 0, 0, OFF(tls_key), "PEM private key for tls.cert"},
    {"log_level", TT_CFG_LOGLEVEL, "info", 0, 0, OFF(log_level), "error, warn, info or debug"},
    {"max_connections", TT_CFG_INT, "1024", 1, 65536, OFF(max_connections),
     "most concurrent client connections"},
    {"threads", TT_CFG_INT, "0", 0, 64, OFF(threads),
     "HTTP event-loop threads (0: one per CPU)"},
    {"idle_timeout", TT_CFG_DURATION, "60s", 1000, 86400000, OFF(idle_timeout_ms),
     "close a connection idle this long"},
    {"shutdown_timeout", TT_CFG_DURATION, "30s", 0, 3600000, OFF(shutdown_timeout_ms),
     "on SIGTERM, wait this long for requests in flight"},
    {"port_file", TT_CFG_STRING, NULL, 0, 0, OFF(port_file),
     "write the bound port to this file once listening"},
    /* The exact kafka.* keys come before the pass-through entry: the first
     * match wins. */
    {"kafka.brokers", TT_CFG_STRING, NULL, 0, 0, OFF(kafka_brokers),
     "Kafka bootstrap servers HOST:PORT[,...]; set to produce every event to Kafka"},
    {"kafka.topic", TT_CFG_STRING, "tokentrail.events", 0, 0, OFF(kafka_topic),
     "Kafka topic for the events"},
    {"kafka.compression", TT_CFG_STRING, "lz4", 0, 0, OFF(kafka_compression),
     "none, gzip, snappy, lz4 or zstd"},
    {"kafka.outbox_max_events", TT_CFG_INT, "1000000", 1, INT64_C(1000000000),
     OFF(kafka_outbox_max), "undelivered events held locally; beyond, ingest answers 503"},
    {"kafka.flush_timeout", TT_CFG_DURATION, "10s", 0, 3600000, OFF(kafka_flush_timeout_ms),
     "on shutdown, keep delivering this long; the rest waits in the outbox"},
    {"kafka", TT_CFG_PASSMAP, NULL, 0, 0, OFF(kafka_props),
     "any librdkafka property, e.g. kafka.security.protocol, kafka.sasl.mechanism"},
    {NULL, 0, NULL, 0, 0, 0, NULL},
};
