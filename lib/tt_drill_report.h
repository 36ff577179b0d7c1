/* tt_drill_report.h - what one drill run observed, the threshold verdicts,
 * and the reports made from it: report.json, JUnit XML and report.html. */
#ifndef TT_DRILL_REPORT_H
#define TT_DRILL_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "tt_event.h"
#include "tt_scenario.h"
#include "tt_threshold.h"

#define TT_DRILL_MAX_RUN_ID 40
#define TT_DRILL_MAX_ERROR 512
#define TT_DRILL_MAX_SCOPE 1024

/* One resource server as seen by one iteration. Times are ns since the run
 * started (monotonic clock); -1 when it did not happen. */
typedef struct tt_drill_rs_obs {
    int64_t first_use_ns;    /* response of the first accepted use */
    long first_status;       /* status of the first use */
    int64_t last_accept_ns;  /* send time of the last probe that was accepted */
    int64_t refused_ns;      /* send time of the first probe that was refused */
    long refused_status;
    int lingering;           /* still accepting at probe_timeout */
    int not_probed;          /* refused the fresh token: no access to end there, so
                              * no propagation to measure (fresh_token_refused) */
    int probes;
    int64_t probe_late_ns;   /* the largest delay of a probe past its grid tick,
                              * catch-ups left out (the loop's own lateness); -1 none */
    int64_t refusal_late_ns; /* the refusing probe's delay past its tick: what the
                              * refusal instant carries beyond the grid's
                              * quantisation; -1 none */
    int busy;                /* engine: a probe is in flight */
} tt_drill_rs_obs;

typedef struct tt_drill_iter {
    int engineer, iteration;
    char incident_id[64];
    char token_id[TT_FINGERPRINT_BUFSZ]; /* "" until issued */
    int64_t opened_ns, token_req_ns, token_ns, end_ns, done_ns;
    int64_t expires_in_s;
    char granted_scope[TT_DRILL_MAX_SCOPE];     /* token response */
    char introspected_scope[TT_DRILL_MAX_SCOPE];/* introspection right after issue */
    int widened;                                /* 1 when granted ⊄ requested */
    int active_after_end;                       /* 1 active, 0 inactive, -1 unknown */
    tt_drill_rs_obs *rs;                        /* n_rs entries */
    char error[TT_DRILL_MAX_ERROR];             /* "" when the iteration completed */
} tt_drill_iter;

typedef struct tt_drill_verdict {
    double value;
    long samples;
    int pass;
    int no_data;             /* no samples for an aggregate that needs some */
} tt_drill_verdict;

typedef struct tt_drill_result {
    char run_id[TT_DRILL_MAX_RUN_ID];
    const tt_scenario *sc;   /* borrowed */
    int64_t started_ms, finished_ms; /* wall clock, epoch ms */
    int64_t mono_base_ns;    /* CLOCK_MONOTONIC at start (for cross-process comparison) */
    tt_drill_iter *it;
    size_t n_it;             /* iterations in the report */
    size_t n_alloc;          /* iterations allocated (the plan): n_it <= n_alloc */
    tt_series_set series;
    tt_drill_verdict verdict[TT_SC_MAX_THRESHOLDS];
    size_t events_sent, events_failed;
    int interrupted;         /* stopped by a signal before every iteration ran */
    /* resolved endpoints, for the report */
    char *token_endpoint, *introspection_endpoint, *revocation_endpoint, *device_endpoint;
} tt_drill_result;

/* Allocate n_it iterations with sc->n_rs servers each, every time -1.
 * Returns NULL on out of memory. */
tt_drill_result *tt_drill_result_new(const tt_scenario *sc, size_t n_it);
void tt_drill_result_free(tt_drill_result *r); /* accepts NULL */

/* Turn the iterations into series (time_to_token_ms, ...) and evaluate every
 * threshold of the scenario. Returns the number of failed thresholds, or -1
 * on out of memory. */
int tt_drill_evaluate(tt_drill_result *r);

/* How precise the run's timings are, from its own records (every server):
 * lateness = how long after its grid tick the probe that found each refusal
 * went out (what the refusal instant carries beyond the grid's quantisation),
 * window = the width of the interval each refusal was located in. behind = 1 when the lateness p99 reached half the probe interval: the
 * harness fell behind its grid and the propagation figures carry that error. */
typedef struct tt_drill_precision {
    long probes;            /* iterations with a probe (0: nothing below is set) */
    double late_p50_ms, late_p99_ms, late_max_ms;
    long windows;           /* refusals located */
    double window_p50_ms, window_p99_ms;
    int behind;
} tt_drill_precision;

/* Fill p from the series of an evaluated result. Returns 0, or -1 on out of
 * memory. */
int tt_drill_get_precision(const tt_drill_result *r, tt_drill_precision *p);

/* The run's outcome, the one source of the exit status, report.json's
 * `result`, the HTML badge, the JUnit error and the textfile's `passed`:
 * ERROR when the run was interrupted or an iteration ended in an error that
 * no threshold on `errors` judges; else FAIL when a threshold failed; else
 * PASS. Values are the exit statuses. After tt_drill_evaluate. */
typedef enum { TT_DRILL_PASS = 0, TT_DRILL_FAIL = 1, TT_DRILL_ERROR = 2 } tt_drill_outcome;
tt_drill_outcome tt_drill_get_outcome(const tt_drill_result *r);
const char *tt_drill_outcome_name(tt_drill_outcome o); /* "pass", "fail", "error" */

/* Keep only the iterations that started (an interrupted run leaves some that
 * never did), in their order; n_it becomes their count. */
void tt_drill_result_drop_unstarted(tt_drill_result *r);

/* Iterations of n_it that ended in an error. */
size_t tt_drill_errors(const tt_drill_result *r);

/* Why the outcome is ERROR, for people ("interrupted by a signal after 2 of
 * 4 iterations", "3 of 4 iterations failed with an error; first: ..."), or ""
 * when it is not. */
void tt_drill_error_text(const tt_drill_result *r, char *out, size_t outlen);

/* "revocation_propagation_ms{rs-nocache} max < 1000" */
void tt_drill_threshold_label(const tt_sc_threshold *t, char *out, size_t outlen);

/* The full report as a JSON object (new reference), or NULL. */
json_t *tt_drill_report_json(const tt_drill_result *r);

/* A report for a run that could not start (discovery or setup failed): the
 * scenario, result "error" with why, no iterations. So a --textfile still
 * says the drill did not pass. New reference, or NULL. */
json_t *tt_drill_report_json_not_started(const tt_scenario *sc, const char *why, int64_t now_ms);

/* Write the JUnit XML / the self-contained HTML report. Return 0 or -1. */
int tt_drill_report_junit(const tt_drill_result *r, FILE *fp);
int tt_drill_report_html(const tt_drill_result *r, FILE *fp);

#endif
