/* tt_buf.c - growable byte buffer with a hard maximum. */
#include "tt_buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

void tt_buf_init(tt_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

/* Make room for n more bytes plus the NUL. */
static int buf_reserve(tt_buf *b, size_t n)
{
    if (n > b->max - b->len) {
        return -1;
    }
    size_t need = b->len + n + 1;
    if (need <= b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    }
    /* Through a temporary: a failed realloc leaves b intact. */
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int tt_buf_add(tt_buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) != 0) {
        return -1;
    }
    if (n > 0) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int tt_buf_adds(tt_buf *b, const char *s)
{
    return tt_buf_add(b, s, strlen(s));
}

int tt_buf_printf(tt_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n) != 0) {
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int tt_buf_add_json_escaped(tt_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[7];
        size_t n = 0;
        switch (*p) {
        case '"': esc[n++] = '\\'; esc[n++] = '"'; break;
        case '\\': esc[n++] = '\\'; esc[n++] = '\\'; break;
        case '\n': esc[n++] = '\\'; esc[n++] = 'n'; break;
        case '\r': esc[n++] = '\\'; esc[n++] = 'r'; break;
        case '\t': esc[n++] = '\\'; esc[n++] = 't'; break;
        default:
            if (*p < 0x20) {
                esc[n++] = '\\'; esc[n++] = 'u'; esc[n++] = '0'; esc[n++] = '0';
                esc[n++] = hex[*p >> 4]; esc[n++] = hex[*p & 15];
            } else {
                esc[n++] = (char)*p;
            }
        }
        if (tt_buf_add(b, esc, n) != 0) {
            return -1;
        }
    }
    return 0;
}

void tt_buf_reset(tt_buf *b)
{
    b->len = 0;
    if (b->data) {
        b->data[0] = '\0';
    }
}

char *tt_buf_detach(tt_buf *b)
{
    char *p = b->data;
    tt_buf_init(b, b->max);
    return p;
}

void tt_buf_free(tt_buf *b)
{
    free(b->data);
    tt_buf_init(b, b->max);
}

void tt_buf_free_wipe(tt_buf *b)
{
    if (b->data) {
        OPENSSL_cleanse(b->data, b->cap);
    }
    tt_buf_free(b);
}
