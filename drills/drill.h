/* drill.h - `tokentrail drill`: fire drills against a real OAuth 2.0
 * authorization server and resource servers (see docs/drills.md). */
#ifndef TT_DRILL_H
#define TT_DRILL_H

/* `tokentrail drill run SCENARIO.yaml [--out DIR] [--junit FILE]`.
 * Returns 0 when every threshold passed, 1 when one failed, 2 on error. */
int tt_cmd_drill(int argc, char **argv);

#endif
