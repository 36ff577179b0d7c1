/* config.c - the analyzer's configuration table (YAML keys and defaults). */
#include <stddef.h>

#include "analyzer.h"

#define OFF(f) offsetof(tt_analyze_config, f)
#define DAY_MS INT64_C(86400000)

/* For strings, min 1 means "must not be empty" (see tt_cfg_entry). */

const tt_cfg_entry tt_analyze_config_table[] = {
    {"db", TT_CFG_STRING, "tokentrail.db", 1, 0, OFF(db),
     "SQLite database written by 'tokentrail collect'; findings and checkpoints go here too"},
    {"policy", TT_CFG_STRING, NULL, 1, 0, OFF(policy), "policy file (docs/policy.md); required"},
    {"listen", TT_CFG_STRING, "127.0.0.1:9109", 1, 0, OFF(listen),
     "HOST:PORT for GET /metrics and /healthz (port 0 picks a free port)"},
    {"lateness", TT_CFG_DURATION, "5m", 0, 7 * DAY_MS, OFF(lateness_ms),
     "how late or out of order events may arrive and still be analysed in order"},
    {"format", TT_CFG_STRING, NULL, 0, 0, OFF(format),
     "findings output: table or json (default: table on a terminal, else json)"},
    {"alertmanager", TT_CFG_STRING, NULL, 0, 0, OFF(alertmanager),
     "Alertmanager base URL; new findings are POSTed to <url>/api/v2/alerts"},
    {"alert_timeout", TT_CFG_DURATION, "5s", 100, 60000, OFF(alert_timeout_ms),
     "timeout of one Alertmanager request"},
    {"poll_interval", TT_CFG_DURATION, "250ms", 10, 60000, OFF(poll_interval_ms),
     "how often to look for new events when there were none"},
    {"checkpoint_interval", TT_CFG_DURATION, "1s", 10, 3600000, OFF(checkpoint_interval_ms),
     "how often state and findings are committed while following"},
    {"batch", TT_CFG_INT, "20000", 1, 1000000, OFF(batch), "events read per poll"},
    {"log_level", TT_CFG_LOGLEVEL, "info", 0, 0, OFF(log_level), "error, warn, info or debug"},
    {"port_file", TT_CFG_STRING, NULL, 0, 0, OFF(port_file),
     "write the bound /metrics port to this file once listening"},
    {"kafka.brokers", TT_CFG_STRING, NULL, 0, 0, OFF(kafka_brokers),
     "read events from Kafka (bootstrap servers) instead of the SQLite database"},
    {"kafka.topic", TT_CFG_STRING, "tokentrail.events", 0, 0, OFF(kafka_topic),
     "topic the collector produces events to"},
    {"kafka.group", TT_CFG_STRING, "tokentrail-analyzer", 0, 0, OFF(kafka_group),
     "consumer group; instances of one group share the partitions"},
    {"kafka.findings_topic", TT_CFG_STRING, "tokentrail.findings", 0, 0, OFF(findings_topic),
     "topic new findings are produced to"},
    {"kafka.timeout", TT_CFG_DURATION, "30s", 1000, 600000, OFF(kafka_timeout_ms),
     "--once: give up when no partition assignment or progress for this long"},
    {"state", TT_CFG_STRING, "tokentrail-analyzer.db", 1, 0, OFF(state),
     "with Kafka: SQLite file for the checkpoint and the findings table (created if missing)"},
    {"kafka", TT_CFG_PASSMAP, NULL, 0, 0, OFF(kafka_props),
     "any librdkafka property, e.g. kafka.security.protocol, kafka.sasl.mechanism"},
    {NULL, 0, NULL, 0, 0, 0, NULL},
};
