/* tt_text.c - untrusted text made safe to show on a terminal. */
#include "tt_text.h"

#include <string.h>

/* Length of the well-formed UTF-8 sequence at p (2..4), or 0. Overlong forms
 * and surrogates are refused too: a terminal might decode them as controls. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned char c = p[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) {
            lo = 0xa0;
        } else if (c == 0xed) {
            hi = 0x9f;
        }
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) {
            lo = 0x90;
        } else if (c == 0xf4) {
            hi = 0x8f;
        }
    } else {
        return 0;
    }
    if (p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }
    return n;
}

/* The next display unit at p: its text (out, n bytes) and the input bytes it
 * consumes (the return value). esc must hold 6 bytes. */
static size_t next_unit(const unsigned char *p, char *esc, const char **out, size_t *n)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char c = p[0];
    *out = esc;
    if (c == '\\') {
        memcpy(esc, "\\\\", 2);
        *n = 2;
        return 1;
    }
    if (c == '\t' || c == '\n' || c == '\r' || c == 0x1b) {
        esc[0] = '\\';
        esc[1] = c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : 'e';
        *n = 2;
        return 1;
    }
    if (c >= 0x20 && c < 0x7f) {
        *out = (const char *)p;
        *n = 1;
        return 1;
    }
    size_t len = c < 0x80 ? 0 : utf8_len(p);
    if (len == 0) {
        /* C0 controls, DEL, and bytes outside well-formed UTF-8. */
        esc[0] = '\\';
        esc[1] = 'x';
        esc[2] = hex[c >> 4];
        esc[3] = hex[c & 0xf];
        *n = 4;
        return 1;
    }
    if (c == 0xc2 && p[1] <= 0x9f) {
        /* U+0080..U+009F: C1 controls (0x9b is CSI, 0x9d OSC). */
        memcpy(esc, "\\u00", 4);
        esc[4] = hex[p[1] >> 4];
        esc[5] = hex[p[1] & 0xf];
        *n = 6;
        return 2;
    }
    *out = (const char *)p;
    *n = len;
    return len;
}

int tt_text_add_escaped(tt_buf *b, const char *s, size_t max)
{
    size_t start = b->len, added = 0;
    const unsigned char *p = (const unsigned char *)s;
    /* Appending "" first makes b->data exist (and NUL-terminated) even when
     * s is empty, so callers can always print b->data. */
    if (tt_buf_add(b, "", 0) != 0) {
        return -1;
    }
    while (*p) {
        char esc[6];
        const char *out;
        size_t n;
        size_t used = next_unit(p, esc, &out, &n);
        if (max > 0 && n > max - added) {
            break;
        }
        if (tt_buf_add(b, out, n) != 0) {
            b->len = start;
            b->data[start] = '\0';
            return -1;
        }
        added += n;
        p += used;
    }
    return 0;
}

int tt_text_add_cell(tt_buf *b, const char *s, size_t width, int cut)
{
    static const char spaces[] = "                                ";
    size_t start = b->len;
    if (tt_text_add_escaped(b, s, cut ? width : 0) != 0) {
        return -1;
    }
    while (b->len - start < width) {
        size_t pad = width - (b->len - start);
        if (pad > sizeof(spaces) - 1) {
            pad = sizeof(spaces) - 1;
        }
        if (tt_buf_add(b, spaces, pad) != 0) {
            b->len = start;
            b->data[start] = '\0';
            return -1;
        }
    }
    return 0;
}
