/* tt_drill_prom.h - a drill's report.json as Prometheus metrics in the
 * node_exporter textfile-collector format (docs/dashboards.md#drill-metrics). */
#ifndef TT_DRILL_PROM_H
#define TT_DRILL_PROM_H

#include <stddef.h>

#include <jansson.h>

#include "tt_buf.h"

/* Largest textfile read back (to keep other scenarios and the last success)
 * and written. A drill textfile holds a few lines per scenario and server. */
#define TT_DRILL_PROM_MAX_FILE (4 * 1024 * 1024)
/* Largest report.json read. */
#define TT_DRILL_PROM_MAX_REPORT (256 * 1024 * 1024)
/* Longest textfile path. */
#define TT_DRILL_PROM_MAX_PATH 4096

/* Render the metrics of one drill run into `out` (appended; its max should be
 * at least TT_DRILL_PROM_MAX_FILE). `previous` is the current textfile
 * content or NULL: samples of other scenarios are carried over unchanged,
 * and when this run failed its last-success time is taken from there (0 when
 * the scenario never passed). Lines that are not tokentrail_drill_* samples
 * are dropped: the file belongs to this converter.
 * Returns 0, or -1 with err naming the missing or malformed report field
 * ("missing field 'scenario.name'") or "textfile too large"; `out` may then
 * hold a partial rendering. Pure: no I/O, no clock. */
int tt_drill_prom_render(const json_t *report, const char *previous, tt_buf *out, char *err,
                         size_t errlen);

/* Render the report into textfile_path atomically: read the existing file
 * (if any), write a temporary file in the same directory, fsync, chmod 0644,
 * rename over the textfile (node_exporter never sees half a file; it only
 * reads *.prom, and the temporary name does not end so). Returns 0, or -1
 * with err filled ("report: missing field 'result'", "/x/drill.prom: ...").
 * The report stays owned by the caller. */
int tt_drill_prom_write_json(const json_t *report, const char *textfile_path, char *err,
                             size_t errlen);

/* As tt_drill_prom_write_json, reading report.json from report_json_path
 * first; errors name that path ("r.json: missing field 'finished_at'"). */
int tt_drill_prom_write(const char *report_json_path, const char *textfile_path, char *err,
                        size_t errlen);

#endif
