/* tt_anstore.h - the analyzer's tables in the SQLite file: `findings`, and
 * the checkpoint (`analyzer_state`, `analyzer_tokens`, `analyzer_incidents`,
 * `analyzer_client_scopes`, `analyzer_pending`) written in one transaction
 * with the findings it produced, so a restart neither loses nor repeats one. */
#ifndef TT_ANSTORE_H
#define TT_ANSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "tt_engine.h"
#include "tt_finding.h"
#include "tt_source.h"

typedef struct tt_anstore tt_anstore;

/* A finding copied for storage and output; owns its strings. */
typedef struct tt_finding_row {
    char id[TT_FINDING_ID_BUFSZ];
    tt_finding_kind kind;
    tt_severity severity;
    int64_t time_ms;
    char *token_id, *client_id, *subject, *incident_id, *message;
    char *json; /* tt_finding_to_json */
    int is_new; /* set by tt_anstore_checkpoint: 0 = this id was already stored */
} tt_finding_row;

/* NULL when out of memory. */
tt_finding_row *tt_finding_row_new(const tt_finding *f);
void tt_finding_row_free(tt_finding_row *r); /* accepts NULL */

/* Open the file read-write and create the analyzer tables if missing (WAL,
 * busy_timeout 10 s: the collector may be writing). `readonly` opens for
 * `tokentrail findings` and creates nothing. NULL with err filled on failure. */
tt_anstore *tt_anstore_open(const char *path, int readonly, char *err, size_t errlen);

/* Like tt_anstore_open(path, 0, ...), creating the file if it does not exist:
 * the analyzer's own state file when it reads from Kafka (--state). */
tt_anstore *tt_anstore_create(const char *path, char *err, size_t errlen);
void tt_anstore_close(tt_anstore *s); /* accepts NULL */

/* Restore a checkpoint into a fresh engine and position the source after it.
 * Returns 1 when a checkpoint was found, 0 when there was none, -1 with err. */
int tt_anstore_restore(tt_anstore *s, tt_engine *e, tt_source *src, char *err, size_t errlen);

/* One transaction: INSERT OR IGNORE the rows (setting is_new), save the
 * engine's changed state and the source position. On success calls
 * tt_engine_save_done and returns 0; on failure rolls back and returns -1
 * with err (the caller keeps its rows and tries again later). */
int tt_anstore_checkpoint(tt_anstore *s, tt_engine *e, const tt_source *src, tt_finding_row **rows,
                          size_t n, char *err, size_t errlen);

typedef struct tt_findings_query {
    const char *kind; /* NULL = any */
    int64_t since_ms; /* finding time >= since; INT64_MIN = open */
} tt_findings_query;

/* Call cb with the JSON of each matching finding, in (time, id) order.
 * Returns the count, or -1 with err (also when the file has no findings table). */
int64_t tt_anstore_findings(tt_anstore *s, const tt_findings_query *q,
                            int (*cb)(void *ctx, const char *json, size_t len), void *ctx,
                            char *err, size_t errlen);

#endif
