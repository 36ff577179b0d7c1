/* tt_alert.h - push findings to Alertmanager's v2 API (POST /api/v2/alerts)
 * with libcurl. Labels identify the finding, so Alertmanager de-duplicates a
 * finding sent twice (after a restart, or a retried push). */
#ifndef TT_ALERT_H
#define TT_ALERT_H

#include <stddef.h>

#include "tt_anstore.h"

/* Most findings in one POST; more are sent in several. */
#define TT_ALERT_MAX_BATCH 500

/* The JSON array body for rows[0..n): one alert per finding with labels
 * alertname="TokentrailFinding", finding_id, finding_kind, severity,
 * token_id, client_id, subject, incident_id (absent ones omitted),
 * annotations summary (the message) and evidence, startsAt = finding time.
 * Returns 0 or -1 (out over its maximum). */
int tt_alert_body(tt_finding_row *const *rows, size_t n, tt_buf *out);

/* POST rows to <base_url>/api/v2/alerts in batches. Blocks for at most
 * timeout_ms per batch. Returns 0 when every batch got a 2xx, else -1 with
 * err naming the first failure. */
int tt_alert_push(const char *base_url, tt_finding_row *const *rows, size_t n, long timeout_ms,
                  char *err, size_t errlen);

#endif
