/* tt_aev.h - the analyzer's view of one stored event: the few fields the
 * analyzers need, read straight from the canonical compact JSON body
 * (tt_json_dump output) by a specialised scanner, several times faster than
 * building a jansson tree. */
#ifndef TT_AEV_H
#define TT_AEV_H

#include <stddef.h>
#include <stdint.h>

#include "tt_event.h"

/* Largest body the scanner takes (a maximal event is far smaller). */
#define TT_AEV_MAX_BODY (1 << 20)

/* "absent" for the optional timestamps below. */
#define TT_AEV_NO_TIME INT64_MIN

typedef struct tt_aev {
    tt_event_type type;
    int64_t seq;     /* the source's arrival ordinal; ties broken by it */
    int64_t time_ms; /* CloudEvent time */
    const char *source;
    const char *id;
    const char *token_id; /* token events */
    const char *client_id;
    const char *subject; /* data.subject */
    const char *incident_id;
    int refresh;    /* data.token_type == "refresh" */
    int has_scopes; /* data.scopes was present (uses: which scopes it needed) */
    int64_t issued_at, expires_at, resolved_at;
    const char **scopes; /* sorted, unique (canonical form) */
    size_t n_scopes;
    const char **services; /* incident.opened */
    size_t n_services;
    int saved;     /* tt_engine's: this buffered event is in the checkpoint */
    int pooled;    /* tt_engine's: the copy is a block of its free list */
    uint64_t hash; /* tt_engine's: hash of (source, id) for duplicate detection */
} tt_aev;

/* Reusable scratch memory for tt_aev_scan; zero-initialise, free with
 * tt_aev_scratch_free. */
typedef struct tt_aev_scratch {
    char *arena;
    size_t cap;
    const char *list[2][TT_EV_MAX_LIST];
} tt_aev_scratch;

/* Scan one canonical event body. On success returns 0 and fills *ev, whose
 * strings point into `sc` (valid until the next scan with it); ev->seq is
 * left 0 for the caller. Returns -1 with err filled when the body is not a
 * well-formed event of a known type with id, source and time. */
int tt_aev_scan(const char *body, size_t len, tt_aev *ev, tt_aev_scratch *sc, char *err,
                size_t errlen);

void tt_aev_scratch_free(tt_aev_scratch *sc);

/* A self-contained copy in one allocation (free with free()). NULL when out of memory. */
tt_aev *tt_aev_clone(const tt_aev *ev);

/* Bytes a self-contained copy of ev takes. */
size_t tt_aev_clone_size(const tt_aev *ev);

/* Write that copy into mem (cap bytes, aligned for tt_aev), setting its
 * `pooled` field, in one pass; returns mem as a tt_aev, or NULL when the copy
 * needs more than cap bytes (mem then holds garbage). */
tt_aev *tt_aev_clone_into(const tt_aev *ev, void *mem, size_t cap, int pooled);

/* Write "source/id" into out (evidence references). */
void tt_aev_ref(const tt_aev *ev, char *out, size_t outlen);

#endif
