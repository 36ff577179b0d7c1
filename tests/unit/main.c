/* main.c - runs every unit suite; exit status is the number of failures (capped). */
#include <stdlib.h>

#include "suites.h"

int main(void)
{
    SRunner *sr = srunner_create(tt_time_suite());
    srunner_add_suite(sr, tt_event_suite());
    srunner_add_suite(sr, tt_buf_suite());
    srunner_add_suite(sr, tt_text_suite());
    srunner_add_suite(sr, tt_config_suite());
    srunner_add_suite(sr, tt_store_suite());
    srunner_add_suite(sr, tt_ingest_suite());
    srunner_add_suite(sr, tt_metrics_suite());
    srunner_add_suite(sr, tt_json_suite());
    srunner_add_suite(sr, tt_policy_suite());
    srunner_add_suite(sr, tt_engine_suite());
    srunner_add_suite(sr, tt_evidence_suite());
    srunner_add_suite(sr, tt_kafka_suite());
    srunner_add_suite(sr, tt_source_suite());
    srunner_add_suite(sr, tt_source_kafka_suite());
    srunner_add_suite(sr, tt_threshold_suite());
    srunner_add_suite(sr, tt_scenario_suite());
    srunner_add_suite(sr, tt_drill_report_suite());
    srunner_add_suite(sr, tt_drill_prom_suite());
    srunner_add_suite(sr, tt_redact_suite());
    srunner_add_suite(sr, tt_intern_suite());
    srunner_add_suite(sr, tt_anstore_suite());
    srunner_add_suite(sr, tt_yaml_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
