/* tt_json.c - compact JSON serialisation, byte-compatible with jansson's. */
#include "tt_json.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define DUMP_MAX_DEPTH 64

/* 1 for bytes that need escaping in a JSON string. */
static unsigned char needs_escape[256];
static int table_ready;

static void init_table(void)
{
    for (int c = 0; c < 0x20; c++) {
        needs_escape[c] = 1;
    }
    needs_escape['"'] = 1;
    needs_escape['\\'] = 1;
    __atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

/* Appends n bytes. Serialising one event makes ~60 small appends; this is
 * tt_buf_add's common case (room already reserved, under max) inline, which
 * roughly halves tt_json_dump's cost. Same contract as tt_buf_add. */
static inline int put(tt_buf *out, const void *p, size_t n)
{
    if (n < out->cap - out->len && n <= out->max - out->len) {
        memcpy(out->data + out->len, p, n);
        out->len += n;
        out->data[out->len] = '\0';
        return 0;
    }
    return tt_buf_add(out, p, n);
}

static int dump_string(const char *s, size_t len, tt_buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t first = 0;
    while (first < len && !needs_escape[(unsigned char)s[first]]) {
        first++;
    }
    /* The usual case, nothing to escape: the whole string in one copy. */
    if (first == len) {
        if (put(out, "\"", 1) != 0 || put(out, s, len) != 0) {
            return -1;
        }
        return put(out, "\"", 1);
    }
    if (put(out, "\"", 1) != 0) {
        return -1;
    }
    size_t run = 0;
    for (size_t i = first; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!needs_escape[c]) {
            continue;
        }
        /* Copy the plain run before this byte in one go. */
        if (put(out, s + run, i - run) != 0) {
            return -1;
        }
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t n = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        if (put(out, esc, n) != 0) {
            return -1;
        }
        run = i + 1;
    }
    if (put(out, s + run, len - run) != 0) {
        return -1;
    }
    return put(out, "\"", 1);
}

/* Decimal, as "%" JSON_INTEGER_FORMAT prints it, without printf's cost. */
static int dump_integer(json_int_t v, tt_buf *out)
{
    char tmp[24];
    char *end = tmp + sizeof(tmp);
    char *p = end;
    /* Through unsigned, so the most negative value needs no special case. */
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        *--p = '-';
    }
    return put(out, p, (size_t)(end - p));
}

static int dump_real(double d, tt_buf *out)
{
    char tmp[64];
    /* jansson's format: %.17g, with ".0" added when it would read as an integer. */
    int n = snprintf(tmp, sizeof(tmp), "%.17g", d);
    if (n < 0 || (size_t)n >= sizeof(tmp) - 2) {
        return -1;
    }
    if (strpbrk(tmp, ".eE") == NULL && strcmp(tmp, "inf") != 0 && strcmp(tmp, "nan") != 0) {
        tmp[n++] = '.';
        tmp[n++] = '0';
        tmp[n] = '\0';
    }
    /* ... and an exponent without '+' or leading zeros: 1e+05 -> 1e5. */
    char *e = strchr(tmp, 'e');
    if (e != NULL) {
        char *src = e + 1, *dst = e + 1;
        if (*src == '+') {
            src++;
        } else if (*src == '-') {
            *dst++ = *src++;
        }
        while (*src == '0' && src[1] != '\0') {
            src++;
        }
        memmove(dst, src, strlen(src) + 1);
        n = (int)strlen(tmp);
    }
    return put(out, tmp, (size_t)n);
}

static int dump(const json_t *v, tt_buf *out, int depth)
{
    if (depth > DUMP_MAX_DEPTH) {
        return -1;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if (put(out, "{", 1) != 0) {
            return -1;
        }
        const char *key;
        size_t key_len;
        json_t *val;
        int first = 1;
        json_object_keylen_foreach((json_t *)(uintptr_t)v, key, key_len, val) {
            if ((!first && put(out, ",", 1) != 0) ||
                dump_string(key, key_len, out) != 0 || put(out, ":", 1) != 0 ||
                dump(val, out, depth + 1) != 0) {
                return -1;
            }
            first = 0;
        }
        return put(out, "}", 1);
    }
    case JSON_ARRAY: {
        if (put(out, "[", 1) != 0) {
            return -1;
        }
        size_t i;
        json_t *val;
        json_array_foreach(v, i, val) {
            if ((i > 0 && put(out, ",", 1) != 0) || dump(val, out, depth + 1) != 0) {
                return -1;
            }
        }
        return put(out, "]", 1);
    }
    case JSON_STRING:
        return dump_string(json_string_value(v), json_string_length(v), out);
    case JSON_INTEGER:
        return dump_integer(json_integer_value(v), out);
    case JSON_REAL:
        return dump_real(json_real_value(v), out);
    case JSON_TRUE:
        return put(out, "true", 4);
    case JSON_FALSE:
        return put(out, "false", 5);
    case JSON_NULL:
        return put(out, "null", 4);
    }
    return -1;
}

int tt_json_dump(const json_t *v, tt_buf *out)
{
    if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE)) {
        init_table(); /* idempotent: racing threads write the same bytes */
    }
    return dump(v, out, 0);
}
