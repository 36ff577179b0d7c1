/* tt_json.h - fast compact JSON serialisation onto a tt_buf. Produces the
 * same bytes as jansson's json_dumps(v, JSON_COMPACT) at several times its
 * speed (no per-character callbacks), for the ingest hot path. */
#ifndef TT_JSON_H
#define TT_JSON_H

#include <jansson.h>

#include "tt_buf.h"

/* Append v to out. Returns 0, or -1 when out would exceed its maximum or
 * nesting is deeper than 64 (out is then partly written). */
int tt_json_dump(const json_t *v, tt_buf *out);

#endif
