/* suites.h - every Check suite of the unit test runner (one per lib module). */
#ifndef TT_SUITES_H
#define TT_SUITES_H

#include <check.h>

Suite *tt_time_suite(void);
Suite *tt_event_suite(void);
Suite *tt_buf_suite(void);
Suite *tt_text_suite(void);
Suite *tt_config_suite(void);
Suite *tt_store_suite(void);
Suite *tt_ingest_suite(void);
Suite *tt_metrics_suite(void);
Suite *tt_json_suite(void);
Suite *tt_policy_suite(void);
Suite *tt_engine_suite(void);
Suite *tt_evidence_suite(void);
Suite *tt_kafka_suite(void);
Suite *tt_source_suite(void);
Suite *tt_source_kafka_suite(void);

Suite *tt_threshold_suite(void);
Suite *tt_scenario_suite(void);
Suite *tt_drill_report_suite(void);
Suite *tt_drill_prom_suite(void);
Suite *tt_redact_suite(void);
Suite *tt_intern_suite(void);
Suite *tt_anstore_suite(void);
Suite *tt_yaml_suite(void);

#endif
