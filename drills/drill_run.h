/* drill_run.h - the drill engine: simulated engineers as state machines
 * driven by one event loop (epoll + timerfd + libcurl's multi socket API). */
#ifndef TT_DRILL_RUN_H
#define TT_DRILL_RUN_H

#include <stddef.h>

#include "tt_drill_report.h"
#include "tt_scenario.h"

/* Largest HTTP response body read (token, introspection, discovery, RS). */
#define TT_DRILL_MAX_RESPONSE (1024 * 1024)
/* Largest request body built (forms, events). */
#define TT_DRILL_MAX_REQUEST (64 * 1024)

typedef struct tt_drill_opts {
    int progress_tty;        /* 1: one updating line on stderr; 0: a line every 5 s */
    int quiet;               /* no progress at all */
    volatile int *stop;      /* set non-zero (e.g. by a signal handler) to stop early */
} tt_drill_opts;

/* Run the scenario: discovery, then every engineer's iterations.
 * On success returns 0 and *out holds every observation (the caller frees it
 * with tt_drill_result_free); iterations that failed carry their error.
 * Returns -1 with err filled ("discovery: GET <url>: HTTP 404 ...") when the
 * drill could not run at all; *out is then NULL. Single-threaded. */
int tt_drill_run(const tt_scenario *sc, const tt_drill_opts *opts, tt_drill_result **out,
                 char *err, size_t errlen);

#endif
