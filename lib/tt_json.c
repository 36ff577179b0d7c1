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

static int dump_string(const char *s, size_t len, tt_buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    if (tt_buf_add(out, "\"", 1) != 0) {
        return -1;
    }
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!needs_escape[c]) {
            continue;
        }
        /* Copy the plain run before this byte in one go. */
        if (tt_buf_add(out, s + run, i - run) != 0) {
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
        if (tt_buf_add(out, esc, n) != 0) {
            return -1;
        }
        run = i + 1;
    }
    if (tt_buf_add(out, s + run, len - run) != 0) {
        return -1;
    }
    return tt_buf_add(out, "\"", 1);
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
    return tt_buf_add(out, tmp, (size_t)n);
}

static int dump(const json_t *v, tt_buf *out, int depth)
{
    if (depth > DUMP_MAX_DEPTH) {
        return -1;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if (tt_buf_add(out, "{", 1) != 0) {
            return -1;
        }
        const char *key;
        json_t *val;
        int first = 1;
        json_object_foreach((json_t *)(uintptr_t)v, key, val) {
            if ((!first && tt_buf_add(out, ",", 1) != 0) ||
                dump_string(key, strlen(key), out) != 0 || tt_buf_add(out, ":", 1) != 0 ||
                dump(val, out, depth + 1) != 0) {
                return -1;
            }
            first = 0;
        }
        return tt_buf_add(out, "}", 1);
    }
    case JSON_ARRAY: {
        if (tt_buf_add(out, "[", 1) != 0) {
            return -1;
        }
        size_t i;
        json_t *val;
        json_array_foreach(v, i, val) {
            if ((i > 0 && tt_buf_add(out, ",", 1) != 0) || dump(val, out, depth + 1) != 0) {
                return -1;
            }
        }
        return tt_buf_add(out, "]", 1);
    }
    case JSON_STRING:
        return dump_string(json_string_value(v), json_string_length(v), out);
    case JSON_INTEGER:
        return tt_buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL:
        return dump_real(json_real_value(v), out);
    case JSON_TRUE:
        return tt_buf_add(out, "true", 4);
    case JSON_FALSE:
        return tt_buf_add(out, "false", 5);
    case JSON_NULL:
        return tt_buf_add(out, "null", 4);
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
