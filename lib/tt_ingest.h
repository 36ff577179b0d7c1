/* tt_ingest.h - turn a request body (one JSON event, a JSON array, or NDJSON,
 * optionally gzip-compressed) into validated events, persist the valid ones
 * and build the per-event JSON response. HTTP-free so it is unit-testable. */
#ifndef TT_INGEST_H
#define TT_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "tt_buf.h"
#include "tt_event.h"
#include "tt_store.h"

/* Most events one request may carry. */
#define TT_INGEST_MAX_EVENTS 100000
/* Most per-event errors listed in one response (the counts stay exact). */
#define TT_INGEST_MAX_ERRORS 1000

/* JSON: one event or an array of events; BATCH: an array of events only
 * (application/cloudevents-batch+json); NDJSON: one event per line. */
typedef enum { TT_BODY_JSON = 0, TT_BODY_NDJSON, TT_BODY_BATCH } tt_body_format;

/* Per-type and per-reason tallies of one request, for metrics. */
typedef struct tt_ingest_stats {
    uint64_t accepted[TT_EV__COUNT];
    uint64_t duplicates[TT_EV__COUNT];
    uint64_t rejected[TT_EV__COUNT][TT_REJ__COUNT];
    size_t n_accepted, n_duplicates, n_rejected;
} tt_ingest_stats;

typedef enum {
    TT_INGEST_OK = 0,        /* response built: 200 if anything accepted/dup, else 400 */
    TT_INGEST_TOO_MANY,      /* more than TT_INGEST_MAX_EVENTS: 413 */
    TT_INGEST_EMPTY,         /* no event in the body: 400 */
    TT_INGEST_NOT_ARRAY,     /* a batch body that is not a JSON array: 400 */
    TT_INGEST_STORE_FAILED,  /* the commit failed; nothing acknowledged: 503 */
} tt_ingest_status;

/* Process `len` bytes of `body`. Raw tokens inside are fingerprinted; the
 * caller should still wipe `body` afterwards. On TT_INGEST_OK the JSON
 * response {"accepted":..,"duplicates":..,"rejected":..,"errors":[..]} is
 * appended to `resp`; otherwise `resp` gets {"error":"..."}. */
tt_ingest_status tt_ingest_body(tt_store *store, const char *body, size_t len, tt_body_format fmt,
                                tt_buf *resp, tt_ingest_stats *stats);

/* The same in three steps, for servers that must not block a thread on the
 * commit: tt_ingest_prepare parses and validates (NULL only when out of
 * memory); tt_ingest_rows gives the rows to store (0: none, answer at once);
 * after the store reported (store_rc 0 with results set, or -1 and
 * store_err), tt_ingest_finish tallies stats and fills resp, returning the
 * status as tt_ingest_body would. The rows live until tt_ingest_free. */
typedef struct tt_ingest tt_ingest;

tt_ingest *tt_ingest_prepare(const char *body, size_t len, tt_body_format fmt,
                             tt_ingest_stats *stats);
size_t tt_ingest_rows(tt_ingest *in, tt_store_row **rows);
tt_ingest_status tt_ingest_finish(tt_ingest *in, int store_rc, const char *store_err,
                                  tt_buf *resp);
void tt_ingest_free(tt_ingest *in);  /* accepts NULL */

/* Streaming gzip/zlib decoder with an output cap (zip-bomb safe). */
typedef struct tt_inflate tt_inflate;

tt_inflate *tt_inflate_new(void);  /* NULL when out of memory */

/* Decompress in[0..n) onto out. Returns 0, -1 on corrupt data, -2 when out
 * would grow past out->max (the caller answers 413). */
int tt_inflate_feed(tt_inflate *z, const void *in, size_t n, tt_buf *out);

/* 1 when the compressed stream reached its end. */
int tt_inflate_done(const tt_inflate *z);

void tt_inflate_free(tt_inflate *z);  /* accepts NULL */

#endif
