/* tt_buf.h - growable byte buffer with a hard maximum (after curl's dynbuf). */
#ifndef TT_BUF_H
#define TT_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct tt_buf {
    char *data;   /* always NUL-terminated when non-NULL */
    size_t len;
    size_t cap;
    size_t max;   /* growing len beyond max is an error, never truncation */
} tt_buf;

/* Initialise an empty buffer that may hold at most `max` bytes. */
void tt_buf_init(tt_buf *b, size_t max);

/* Append; returns 0, or -1 when it would exceed max or memory ran out (the
 * buffer is left unchanged in both cases). */
int tt_buf_add(tt_buf *b, const void *p, size_t n);
int tt_buf_adds(tt_buf *b, const char *s);
int tt_buf_printf(tt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Append s as the body of a JSON string (escaped, without the quotes). */
int tt_buf_add_json_escaped(tt_buf *b, const char *s);

/* Forget the contents but keep the memory. */
void tt_buf_reset(tt_buf *b);

/* Hand the data to the caller (who frees it) and reinitialise b. */
char *tt_buf_detach(tt_buf *b);

/* Free the memory; wipe = 1 zeroes it first (bodies that held secrets). */
void tt_buf_free(tt_buf *b);
void tt_buf_free_wipe(tt_buf *b);

#endif
