/* tt_text.h - untrusted text (event and finding fields) made safe to show
 * on a terminal: control characters become visible escapes. */
#ifndef TT_TEXT_H
#define TT_TEXT_H

#include <stddef.h>

#include "tt_buf.h"

/* Append s to b so that it cannot move the cursor, start a terminal escape
 * sequence or forge a line. The scheme (docs/events.md, "Table format"):
 *   backslash             \\
 *   TAB, LF, CR, ESC      \t  \n  \r  \e
 *   other bytes < 0x20    \xHH (two lowercase hex digits), also DEL (0x7f)
 *   C1 controls U+0080-U+009F (UTF-8 c2 80..c2 9f)   \u0080 .. \u009f
 *   a byte that does not start a well-formed UTF-8 sequence   \xHH
 * Everything else (printable ASCII, other UTF-8 characters) is copied.
 * max > 0 appends at most max bytes: the text is cut before the first escape
 * or character that would not fit whole (a display limit, for table cells);
 * max = 0 appends it all. Returns 0, or -1 when b's maximum or memory ran
 * out, leaving b as it was. */
int tt_text_add_escaped(tt_buf *b, const char *s, size_t max);

/* A table cell: tt_text_add_escaped(b, s, cut ? width : 0), then spaces up
 * to width bytes. Same return and failure contract. */
int tt_text_add_cell(tt_buf *b, const char *s, size_t width, int cut);

#endif
