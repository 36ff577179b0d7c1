/* findings_out.h - new findings to the Kafka topic `tokentrail.findings`
 * (idempotent producer, acks=all; key = token_id or incident_id). */
#ifndef TT_FINDINGS_OUT_H
#define TT_FINDINGS_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "tt_anstore.h"
#include "tt_config.h"

#define TT_FINDINGS_DEFAULT_TOPIC "tokentrail.findings"

typedef struct tt_findings_out tt_findings_out;

/* Create the producer. NULL with err filled (a bad property names its key).
 * Not thread-safe: use from one thread. */
tt_findings_out *tt_findings_out_new(const char *brokers, const char *topic,
                                     const tt_strlist *props, char *err, size_t errlen);

/* Queue rows[0..n) (their JSON), then wait up to timeout_ms until every
 * queued finding has a delivery report. Returns 0 when all were delivered,
 * -1 with err (delivery failures, timeout, fatal producer error). */
int tt_findings_out_send(tt_findings_out *o, tt_finding_row **rows, size_t n, int64_t timeout_ms,
                         char *err, size_t errlen);

/* Delivered / failed counts since start. */
void tt_findings_out_counts(const tt_findings_out *o, uint64_t *delivered, uint64_t *failed);

/* Flush (up to timeout_ms), check rd_kafka_outq_len, destroy. Returns the
 * messages left undelivered. Accepts NULL. */
int tt_findings_out_close(tt_findings_out *o, int64_t timeout_ms);

#endif
