/* analyzer.h - `tokentrail analyze` (lingering tokens and scope drift) and
 * `tokentrail findings`. */
#ifndef TT_ANALYZER_H
#define TT_ANALYZER_H

#include <stdint.h>

#include "tt_config.h"

typedef struct tt_analyze_config {
    char *db;
    char *policy;
    char *listen; /* /metrics; in --once mode only when given */
    int64_t lateness_ms;
    char *format;       /* table | json | NULL = by terminal */
    char *alertmanager; /* base URL or NULL */
    int64_t alert_timeout_ms;
    int64_t poll_interval_ms;
    int64_t checkpoint_interval_ms;
    int64_t batch; /* events read per poll */
    char *log_level;
    char *port_file;
    /* Kafka source (docs/analyze.md#kafka): used when kafka_brokers is set. */
    char *kafka_brokers;
    char *kafka_topic;
    char *kafka_group;
    char *findings_topic;
    char *state; /* SQLite file for checkpoints and findings with Kafka */
    int64_t kafka_timeout_ms;
    tt_strlist kafka_props; /* every other kafka.* key, "key=value" */
} tt_analyze_config;

extern const tt_cfg_entry tt_analyze_config_table[];

/* Entry points; they return the process exit code. */
int tt_cmd_analyze(int argc, char **argv);
int tt_cmd_findings(int argc, char **argv);

/* Print one finding (its JSON) as a table row or as an NDJSON line. */
void tt_findings_print(const char *json, size_t len, int as_json);
void tt_findings_print_header(void);

#endif
