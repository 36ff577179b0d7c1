/* tt_event.c - validates CloudEvents 1.0 token/incident events and rebuilds them in canonical form. */
#include "tt_event.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "tt_redact.h"
#include "tt_time.h"

/* Longest piece of a non-secret input (an unknown `type`, an unknown key)
 * echoed back in an error message. */
#define ECHO_MAX 64

#define EXT_NAME_MAX 20
#define TT_STR_(x) #x
#define TT_STR(x) TT_STR_(x)
#define SEVERITY_MAX 32
#define METHOD_MAX 16
#define IP_MAX 64

#define BIT(t) (1u << (t))
#define T_ISSUED BIT(TT_EV_TOKEN_ISSUED)
#define T_USED BIT(TT_EV_TOKEN_USED)
#define T_REVOKED BIT(TT_EV_TOKEN_REVOKED)
#define T_OPENED BIT(TT_EV_INCIDENT_OPENED)
#define T_RESOLVED BIT(TT_EV_INCIDENT_RESOLVED)
#define T_TOKEN (T_ISSUED | T_USED | T_REVOKED)
#define T_INCIDENT (T_OPENED | T_RESOLVED)

static const char *const type_names[TT_EV__COUNT] = {
    "unknown", "token.issued", "token.used", "token.revoked", "incident.opened", "incident.resolved",
};

static const char *const reason_names[TT_REJ__COUNT] = {
    "parse_error", "not_object", "missing_field", "wrong_type",    "bad_value",
    "bad_timestamp", "too_long", "unknown_field", "unknown_type",
};

const char *tt_event_type_name(tt_event_type t)
{
    if ((int)t < 0 || t >= TT_EV__COUNT) {
        return type_names[TT_EV_UNKNOWN];
    }
    return type_names[t];
}

tt_event_type tt_event_type_from_name(const char *name)
{
    if (name == NULL) {
        return TT_EV_UNKNOWN;
    }
    for (int t = TT_EV_UNKNOWN + 1; t < TT_EV__COUNT; t++) {
        if (strcmp(name, type_names[t]) == 0) {
            return (tt_event_type)t;
        }
    }
    return TT_EV_UNKNOWN;
}

const char *tt_reject_reason_name(tt_reject_reason r)
{
    if ((int)r < 0 || r >= TT_REJ__COUNT) {
        return "unknown";
    }
    return reason_names[r];
}

void tt_fingerprint(const char *token, size_t len, char out[TT_FINGERPRINT_BUFSZ])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (EVP_Digest(token, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        /* Callers treat an empty fingerprint as failure. */
        out[0] = '\0';
        return;
    }
    memcpy(out, "sha256:", 7);
    for (unsigned int i = 0; i < mdlen; i++) {
        out[7 + 2 * i] = hex[md[i] >> 4];
        out[7 + 2 * i + 1] = hex[md[i] & 0x0f];
    }
    out[7 + 2 * mdlen] = '\0';
}

int tt_is_fingerprint(const char *s)
{
    if (s == NULL || strncmp(s, "sha256:", 7) != 0) {
        return 0;
    }
    s += 7;
    for (int i = 0; i < 64; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return s[64] == '\0';
}

/* ---- error reporting ---- */

static int fail(tt_event_error *err, tt_reject_reason reason, const char *path, const char *problem)
{
    err->reason = reason;
    snprintf(err->msg, sizeof(err->msg), "%s: %s", path, problem);
    return -1;
}

static int fail_oom(tt_event_error *err)
{
    return fail(err, TT_REJ_PARSE, "event", "out of memory");
}

/* Copies at most ECHO_MAX bytes of s into out, replacing anything that is not
 * printable ASCII (and the quote and backslash) with '?', so echoed input can
 * neither break the message's quoting nor split a UTF-8 sequence. */
static void sanitize(const char *s, size_t len, char out[ECHO_MAX + 1])
{
    size_t n = len < ECHO_MAX ? len : ECHO_MAX;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c < 0x20 || c > 0x7e || c == '"' || c == '\\') ? '?' : (char)c;
    }
    out[n] = '\0';
}


/* Like fail(), for a path made of two parts ("data." + field name): the path
 * is only formatted when the event is rejected. */
static int fail_at(tt_event_error *err, tt_reject_reason reason, const char *prefix,
                   const char *name, const char *problem)
{
    err->reason = reason;
    snprintf(err->msg, sizeof(err->msg), "%s%s: %s", prefix, name, problem);
    return -1;
}

/* ---- the input event, as validation sees it ----
 *
 * Validation reads the event through a `view` that two front ends fill:
 * scan_event() reads JSON text directly (the ingest hot path: no jansson parse
 * tree, no allocation) and view_from_json() reads a jansson value. Both feed
 * the same validator, so an event gets the same verdict, message and output
 * whichever way it arrives. The scanner only takes the plain common case and
 * hands everything else (escapes, reals, nesting, duplicates, any syntax
 * error) to jansson, whose messages the tests pin down. */

typedef enum {
    V_ABSENT = 0,
    V_STRING,
    V_INTEGER,
    V_REAL,
    V_TRUE,
    V_FALSE,
    V_NULL,
    V_OBJECT,
    V_ARRAY,
} vkind;

/* One array entry on the scan path. */
typedef struct {
    const char *s;
    size_t n;
    int is_string;
} item;

typedef struct {
    vkind kind;
    const char *s;       /* V_STRING: bytes; NUL-terminated only on the json path */
    size_t n;            /* V_STRING: byte length; V_ARRAY: entries */
    json_int_t i;        /* V_INTEGER */
    const item *items;   /* V_ARRAY on the scan path */
    const json_t *j;     /* the jansson value on the json path; NULL on the scan path */
} val;

/* A member of the input object that is not one of the fixed slots. */
typedef struct {
    const char *key;
    size_t keylen;
    int field;           /* data members: index into fields[], FIELD_TOKEN or -1 */
    val v;
} member;

enum {
    A_SPECVERSION,
    A_ID,
    A_SOURCE,
    A_TYPE,
    A_TIME,
    A_SUBJECT,
    A_DATACONTENTTYPE,
    A_DATASCHEMA,
    A_DATA,
    A__COUNT
};

static const char *const attr_names[A__COUNT] = {
    "specversion", "id", "source", "type", "time", "subject", "datacontenttype", "dataschema", "data",
};

/* ---- data fields ---- */

enum field_kind {
    K_TOKEN_ID, /* token_id and/or token */
    K_STRING,
    K_SCOPES,
    K_AUDIENCE,
    K_SERVICES,
    K_TOKEN_TYPE,
    K_TIME,
    K_METHOD,
    K_STATUS,
    K_IP,
    K_PATH, /* a string whose credential query parameters are redacted */
};

typedef struct {
    const char *name;
    size_t len;         /* strlen(name) */
    enum field_kind kind;
    size_t max;         /* K_STRING: byte limit */
    unsigned allowed;   /* bit per event type */
    unsigned required;  /* bit per event type */
} field_def;

#define FIELD_NAME(name) name, sizeof(name) - 1

/* Canonical output order. Token and incident fields never share a type except
 * incident_id, which sits where both orders want it. */
static const field_def fields[] = {
    {FIELD_NAME("token_id"), K_TOKEN_ID, TT_EV_MAX_ID, T_TOKEN, T_TOKEN},
    {FIELD_NAME("client_id"), K_STRING, TT_EV_MAX_ID, T_TOKEN, T_ISSUED},
    {FIELD_NAME("subject"), K_STRING, TT_EV_MAX_TEXT, T_TOKEN, 0},
    {FIELD_NAME("scopes"), K_SCOPES, 0, T_TOKEN, T_ISSUED},
    {FIELD_NAME("audience"), K_AUDIENCE, 0, T_TOKEN, 0},
    {FIELD_NAME("grant_type"), K_STRING, TT_EV_MAX_SCOPE, T_TOKEN, 0},
    {FIELD_NAME("token_type"), K_TOKEN_TYPE, 0, T_TOKEN, 0},
    {FIELD_NAME("issued_at"), K_TIME, 0, T_TOKEN, T_ISSUED},
    {FIELD_NAME("expires_at"), K_TIME, 0, T_TOKEN, T_ISSUED},
    {FIELD_NAME("incident_id"), K_STRING, TT_EV_MAX_ID, T_TOKEN | T_INCIDENT, T_INCIDENT},
    {FIELD_NAME("title"), K_STRING, TT_EV_MAX_TEXT, T_INCIDENT, 0},
    {FIELD_NAME("severity"), K_STRING, SEVERITY_MAX, T_INCIDENT, T_OPENED},
    {FIELD_NAME("services"), K_SERVICES, 0, T_INCIDENT, T_OPENED},
    {FIELD_NAME("opened_at"), K_TIME, 0, T_OPENED, T_OPENED},
    {FIELD_NAME("resolved_at"), K_TIME, 0, T_RESOLVED, T_RESOLVED},
    {FIELD_NAME("resource"), K_PATH, TT_EV_MAX_TEXT, T_USED, T_USED},
    {FIELD_NAME("method"), K_METHOD, 0, T_USED, 0},
    {FIELD_NAME("path"), K_PATH, TT_EV_MAX_PATH, T_USED, 0},
    {FIELD_NAME("status"), K_STATUS, 0, T_USED, 0},
    {FIELD_NAME("ip"), K_IP, 0, T_USED, 0},
    {FIELD_NAME("reason"), K_STRING, TT_EV_MAX_TEXT, T_REVOKED, 0},
    {FIELD_NAME("actor"), K_STRING, TT_EV_MAX_TEXT, T_REVOKED, 0},
};

#define NFIELDS (sizeof(fields) / sizeof(fields[0]))
/* data.token, the raw token, has no output field of its own. */
#define FIELD_TOKEN ((int)NFIELDS)

/* Indexes of the fields the validator treats specially. */
enum { FI_TOKEN_ID = 0, FI_TOKEN_TYPE = 6, FI_ISSUED_AT = 7, FI_EXPIRES_AT = 8, FI_INCIDENT_ID = 9 };

/* Most top-level members besides the fixed attributes the validator looks at:
 * it rejects the event at the latest on the one past TT_EV_MAX_EXTENSIONS. */
#define MAX_EXT_SEEN (TT_EV_MAX_EXTENSIONS + 1)
/* Most data members the scanner takes; more means an unknown one is among them. */
#define MAX_DATA_SEEN (NFIELDS + 2)
/* Most array entries (all lists together) the scanner takes; jansson does the rest. */
#define SCAN_MAX_ITEMS 512

typedef struct {
    val attr[A__COUNT];
    val field[NFIELDS + 1];       /* data members by fields[] index; [FIELD_TOKEN] = token */
    member ext[MAX_EXT_SEEN];     /* other top-level members, input order */
    size_t n_ext;
    member data[MAX_DATA_SEEN];   /* scan path: data members, input order */
    size_t n_data;
    /* Strings come from the scanner, which has checked them to be valid UTF-8,
     * so they can be copied without jansson checking them again. */
    int nocheck;
    size_t n_items;
    item items[SCAN_MAX_ITEMS];   /* keep last: view_reset() leaves it alone */
} view;

static void view_reset(view *vw)
{
    memset(vw, 0, offsetof(view, items));
}

static int span_eq(const char *s, size_t n, const char *lit, size_t litlen)
{
    return n == litlen && memcmp(s, lit, n) == 0;
}

static int attr_index(const char *key, size_t n)
{
    for (int a = 0; a < A__COUNT; a++) {
        if (span_eq(key, n, attr_names[a], strlen(attr_names[a]))) {
            return a;
        }
    }
    return -1;
}

static int field_index(const char *key, size_t n)
{
    if (span_eq(key, n, "token", 5)) {
        return FIELD_TOKEN;
    }
    for (size_t i = 0; i < NFIELDS; i++) {
        if (span_eq(key, n, fields[i].name, fields[i].len)) {
            return (int)i;
        }
    }
    return -1;
}

static int field_allowed(int field, tt_event_type type)
{
    if (field == FIELD_TOKEN) {
        return (BIT(type) & T_TOKEN) != 0;
    }
    return field >= 0 && (fields[field].allowed & BIT(type)) != 0;
}

/* ---- front end 1: jansson values ---- */

static void val_from_json(const json_t *j, val *v)
{
    v->j = j;
    switch (json_typeof(j)) {
    case JSON_STRING:
        v->kind = V_STRING;
        v->s = json_string_value(j);
        v->n = json_string_length(j);
        break;
    case JSON_INTEGER:
        v->kind = V_INTEGER;
        v->i = json_integer_value(j);
        break;
    case JSON_REAL:
        v->kind = V_REAL;
        break;
    case JSON_TRUE:
        v->kind = V_TRUE;
        break;
    case JSON_FALSE:
        v->kind = V_FALSE;
        break;
    case JSON_NULL:
        v->kind = V_NULL;
        break;
    case JSON_OBJECT:
        v->kind = V_OBJECT;
        break;
    case JSON_ARRAY:
        v->kind = V_ARRAY;
        v->n = json_array_size(j);
        break;
    }
}

/* Keys are matched as C strings (a key with an embedded NUL matches by its
 * prefix, as strcmp would), but a slot only takes the member whose key is
 * exactly the name, as json_object_get would. */
static void view_from_json(const json_t *in, view *vw)
{
    const char *key;
    size_t klen;
    json_t *v;

    view_reset(vw);
    json_object_keylen_foreach((json_t *)(uintptr_t)in, key, klen, v) {
        size_t clen = strlen(key);
        int a = attr_index(key, clen);
        if (a >= 0) {
            if (clen == klen) {
                val_from_json(v, &vw->attr[a]);
            }
            continue;
        }
        if (vw->n_ext < MAX_EXT_SEEN) {
            member *m = &vw->ext[vw->n_ext++];
            m->key = key;
            m->keylen = clen;
            val_from_json(v, &m->v);
        }
    }
    const json_t *data = vw->attr[A_DATA].j;
    if (json_is_object(data)) {
        json_object_keylen_foreach((json_t *)(uintptr_t)data, key, klen, v) {
            size_t clen = strlen(key);
            int f = field_index(key, clen);
            if (f >= 0 && clen == klen) {
                val_from_json(v, &vw->field[f]);
            }
        }
    }
}

/* ---- front end 2: the scanner ----
 * Each scan_* returns 0, or -1 for "not the plain case: ask jansson". */

typedef struct {
    const char *p;
    const char *end;
} scanner;

static void skip_ws(scanner *sc)
{
    while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\n' || *sc->p == '\r')) {
        sc->p++;
    }
}

static int is_cont(unsigned char c)
{
    return (c & 0xc0) == 0x80;
}

/* Length of the well-formed UTF-8 sequence at p (lead byte >= 0x80), or 0.
 * Same rules as jansson: no overlong forms, no surrogates, nothing past
 * U+10FFFF. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    size_t avail = (size_t)(end - p);
    if (c >= 0xc2 && c <= 0xdf) {
        return avail >= 2 && is_cont(p[1]) ? 2 : 0;
    }
    if (c >= 0xe0 && c <= 0xef) {
        if (avail < 3 || !is_cont(p[1]) || !is_cont(p[2])) {
            return 0;
        }
        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f)) {
            return 0; /* overlong, or a surrogate */
        }
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (avail < 4 || !is_cont(p[1]) || !is_cont(p[2]) || !is_cont(p[3])) {
            return 0;
        }
        if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f)) {
            return 0; /* overlong, or past U+10FFFF */
        }
        return 4;
    }
    return 0;
}

/* A string without escapes or control characters; sc->p is at the quote. */
static int scan_string(scanner *sc, const char **s, size_t *n)
{
    const unsigned char *p = (const unsigned char *)sc->p + 1;
    const unsigned char *end = (const unsigned char *)sc->end;
    const unsigned char *start = p;
    while (p < end) {
        unsigned char c = *p;
        if (c == '"') {
            *s = (const char *)start;
            *n = (size_t)(p - start);
            sc->p = (const char *)p + 1;
            return 0;
        }
        if (c < 0x20 || c == '\\') {
            return -1;
        }
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t len = utf8_len(p, end);
        if (len == 0) {
            return -1;
        }
        p += len;
    }
    return -1;
}

/* An integer of at most 18 digits (it cannot overflow); reals go to jansson. */
static int scan_integer(scanner *sc, val *v)
{
    const char *p = sc->p;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    const char *digits = p;
    json_int_t x = 0;
    while (p < sc->end && *p >= '0' && *p <= '9') {
        if (p - digits == 18) {
            return -1;
        }
        x = x * 10 + (*p - '0');
        p++;
    }
    if (p == digits || (*digits == '0' && p - digits > 1)) {
        return -1;
    }
    if (p < sc->end && (*p == '.' || *p == 'e' || *p == 'E')) {
        return -1;
    }
    v->kind = V_INTEGER;
    v->i = neg ? -x : x;
    sc->p = p;
    return 0;
}

/* A string, integer, true, false or null. */
static int scan_scalar(scanner *sc, val *v)
{
    size_t left = (size_t)(sc->end - sc->p);
    switch (*sc->p) {
    case '"':
        v->kind = V_STRING;
        return scan_string(sc, &v->s, &v->n);
    case 't':
        if (left >= 4 && memcmp(sc->p, "true", 4) == 0) {
            v->kind = V_TRUE;
            sc->p += 4;
            return 0;
        }
        return -1;
    case 'f':
        if (left >= 5 && memcmp(sc->p, "false", 5) == 0) {
            v->kind = V_FALSE;
            sc->p += 5;
            return 0;
        }
        return -1;
    case 'n':
        if (left >= 4 && memcmp(sc->p, "null", 4) == 0) {
            v->kind = V_NULL;
            sc->p += 4;
            return 0;
        }
        return -1;
    default:
        if (*sc->p == '-' || (*sc->p >= '0' && *sc->p <= '9')) {
            return scan_integer(sc, v);
        }
        return -1;
    }
}

/* Expects `c` after optional whitespace, then skips whitespace after it. */
static int expect(scanner *sc, char c)
{
    skip_ws(sc);
    if (sc->p >= sc->end || *sc->p != c) {
        return -1;
    }
    sc->p++;
    skip_ws(sc);
    return sc->p < sc->end ? 0 : -1;
}

/* An array of scalars inside data; sc->p is at the '['. */
static int scan_array(scanner *sc, view *vw, val *v)
{
    v->kind = V_ARRAY;
    v->items = &vw->items[vw->n_items];
    v->n = 0;
    if (expect(sc, '[') != 0) {
        return -1;
    }
    if (*sc->p == ']') {
        sc->p++;
        return 0;
    }
    for (;;) {
        if (vw->n_items == SCAN_MAX_ITEMS) {
            return -1;
        }
        val e = {0};
        if (scan_scalar(sc, &e) != 0) {
            return -1;
        }
        item *it = &vw->items[vw->n_items++];
        it->is_string = e.kind == V_STRING;
        it->s = e.s;
        it->n = e.n;
        v->n++;
        skip_ws(sc);
        if (sc->p < sc->end && *sc->p == ']') {
            sc->p++;
            return 0;
        }
        if (expect(sc, ',') != 0) {
            return -1;
        }
    }
}

/* The members of data; sc->p is at the '{'. */
static int scan_data(scanner *sc, view *vw)
{
    if (expect(sc, '{') != 0) {
        return -1;
    }
    if (*sc->p == '}') {
        sc->p++;
        return 0;
    }
    for (;;) {
        const char *key;
        size_t klen;
        if (*sc->p != '"' || scan_string(sc, &key, &klen) != 0 || expect(sc, ':') != 0) {
            return -1;
        }
        int f = field_index(key, klen);
        if (f >= 0) {
            if (vw->field[f].kind != V_ABSENT) {
                return -1; /* duplicate key */
            }
        } else {
            for (size_t i = 0; i < vw->n_data; i++) {
                if (span_eq(key, klen, vw->data[i].key, vw->data[i].keylen)) {
                    return -1;
                }
            }
        }
        if (vw->n_data == MAX_DATA_SEEN) {
            return -1;
        }
        member *m = &vw->data[vw->n_data++];
        m->key = key;
        m->keylen = klen;
        m->field = f;
        val *v = f >= 0 ? &vw->field[f] : &m->v;
        int rc = *sc->p == '[' ? scan_array(sc, vw, v) : scan_scalar(sc, v);
        if (rc != 0) {
            return -1;
        }
        skip_ws(sc);
        if (sc->p < sc->end && *sc->p == '}') {
            sc->p++;
            return 0;
        }
        if (expect(sc, ',') != 0) {
            return -1;
        }
    }
}

static int scan_event(const char *buf, size_t len, view *vw)
{
    scanner sc = {buf, buf + len};

    view_reset(vw);
    vw->nocheck = 1;
    skip_ws(&sc);
    if (sc.p >= sc.end || *sc.p != '{' || expect(&sc, '{') != 0) {
        return -1;
    }
    if (*sc.p == '}') {
        sc.p++;
    } else {
        for (;;) {
            const char *key;
            size_t klen;
            if (*sc.p != '"' || scan_string(&sc, &key, &klen) != 0 || expect(&sc, ':') != 0) {
                return -1;
            }
            int a = attr_index(key, klen);
            val *v;
            if (a >= 0) {
                v = &vw->attr[a];
                if (v->kind != V_ABSENT) {
                    return -1;
                }
            } else {
                for (size_t i = 0; i < vw->n_ext; i++) {
                    if (span_eq(key, klen, vw->ext[i].key, vw->ext[i].keylen)) {
                        return -1;
                    }
                }
                if (vw->n_ext == MAX_EXT_SEEN) {
                    return -1;
                }
                member *m = &vw->ext[vw->n_ext++];
                m->key = key;
                m->keylen = klen;
                v = &m->v;
            }
            int rc;
            if (a == A_DATA && *sc.p == '{') {
                v->kind = V_OBJECT;
                rc = scan_data(&sc, vw);
            } else {
                rc = scan_scalar(&sc, v);
            }
            if (rc != 0) {
                return -1;
            }
            skip_ws(&sc);
            if (sc.p < sc.end && *sc.p == '}') {
                sc.p++;
                break;
            }
            if (expect(&sc, ',') != 0) {
                return -1;
            }
        }
    }
    skip_ws(&sc);
    return sc.p == sc.end ? 0 : -1;
}

/* ---- typed readers; each names its path in its error ---- */

static json_t *mkstr(const view *vw, const char *s, size_t n)
{
    return vw->nocheck ? json_stringn_nocheck(s, n) : json_stringn(s, n);
}

/* A non-empty string of at most max bytes without embedded NUL. */
static int check_string(const val *v, const char *prefix, const char *name, size_t max,
                        tt_event_error *err)
{
    if (v->kind != V_STRING) {
        return fail_at(err, TT_REJ_WRONG_TYPE, prefix, name, "not a string");
    }
    /* jansson's parser never yields NUL in strings, but a caller-built json_t can. */
    if (v->j != NULL && memchr(v->s, '\0', v->n) != NULL) {
        return fail_at(err, TT_REJ_BAD_VALUE, prefix, name, "contains a NUL byte");
    }
    if (v->n == 0) {
        return fail_at(err, TT_REJ_BAD_VALUE, prefix, name, "empty");
    }
    if (v->n > max) {
        char problem[64];
        snprintf(problem, sizeof(problem), "longer than %zu bytes", max);
        return fail_at(err, TT_REJ_TOO_LONG, prefix, name, problem);
    }
    return 0;
}

/* Adds v (a new reference, NULL when its allocation failed) as obj[key]. */
static int put(json_t *obj, const char *key, json_t *v, tt_event_error *err)
{
    if (v == NULL || json_object_set_new_nocheck(obj, key, v) != 0) {
        return fail_oom(err);
    }
    return 0;
}

/* Reads a timestamp. Returns 0, -1 with *why set, or -2 when out of memory. */
static int read_time(const val *v, int64_t *out_ms, const char **why)
{
    if (v->j != NULL) {
        return tt_time_from_json(v->j, out_ms, why);
    }
    /* The usual RFC 3339 string is parsed in place. An RFC 3339 string can
     * never be an epoch string (it has '-'), so this is the same verdict. */
    if (v->kind == V_STRING && tt_time_parse_rfc3339(v->s, v->n, out_ms) == 0) {
        return 0;
    }
    /* Anything else goes through the one reference reader. */
    json_t *tmp;
    if (v->kind == V_STRING) {
        tmp = json_stringn_nocheck(v->s, v->n);
    } else if (v->kind == V_INTEGER) {
        tmp = json_integer(v->i);
    } else {
        tmp = json_null(); /* stands in for every other type: none is a timestamp */
    }
    if (tmp == NULL) {
        return -2;
    }
    int rc = tt_time_from_json(tmp, out_ms, why);
    json_decref(tmp);
    return rc;
}

static int get_time(const val *v, const char *prefix, const char *name, tt_event_error *err,
                    int64_t *out_ms)
{
    const char *why = "not a timestamp";
    int rc = read_time(v, out_ms, &why);
    if (rc == -2) {
        return fail_oom(err);
    }
    if (rc != 0) {
        return fail_at(err, TT_REJ_TIMESTAMP, prefix, name, why);
    }
    return 0;
}

static int put_time(json_t *obj, const char *key, int64_t ms, tt_event_error *err)
{
    char buf[TT_TIME_BUFSZ];
    tt_time_format(ms, buf);
    /* Formatted by us: plain ASCII, fixed length. */
    return put(obj, key, json_stringn_nocheck(buf, 24), err);
}

/* ---- lists: scopes, audience, services ---- */

typedef struct {
    const char *p;
    size_t n;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a;
    const span *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->p, y->p, n);
    if (c != 0) {
        return c;
    }
    /* Same order as strcmp: a proper prefix sorts first. */
    return (x->n > y->n) - (x->n < y->n);
}

/* RFC 6749 scope-token: %x21 / %x23-5B / %x5D-7E. */
static int is_scope_char(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

enum list_mode {
    LIST_SCOPES,   /* string (space separated) or array; scope charset */
    LIST_AUDIENCE, /* string (one entry) or array */
    LIST_SERVICES, /* array only */
};

static int fail_entry(tt_event_error *err, tt_reject_reason reason, const char *name, size_t idx,
                      const char *problem)
{
    err->reason = reason;
    snprintf(err->msg, sizeof(err->msg), "data.%s[%zu]: %s", name, idx, problem);
    return -1;
}

static int uri_has_credentials(const char *s, size_t n, char *dec, int strict);

/* Why an identifier that carries a credential is refused: identifiers are
 * stored as sent (they name things and decide duplicates), so a credential in
 * one cannot be replaced, only kept out. */
#define CREDENTIAL_PROBLEM                                                                         \
    "holds a credential (a raw JWT, or a Bearer or Basic credential); tokentrail stores no raw "   \
    "tokens: send a token as data.token to have it fingerprinted"

/* Checks one list entry of data.<name> at position idx. */
static int check_entry(const char *name, size_t idx, const char *p, size_t n, enum list_mode mode,
                       tt_event_error *err)
{
    if (memchr(p, '\0', n) != NULL) {
        return fail_entry(err, TT_REJ_BAD_VALUE, name, idx, "contains a NUL byte");
    }
    if (n == 0) {
        return fail_entry(err, TT_REJ_BAD_VALUE, name, idx, "empty");
    }
    if (n > TT_EV_MAX_SCOPE) {
        char problem[64];
        snprintf(problem, sizeof(problem), "longer than %d bytes", TT_EV_MAX_SCOPE);
        return fail_entry(err, TT_REJ_TOO_LONG, name, idx, problem);
    }
    if (mode == LIST_SCOPES) {
        for (size_t i = 0; i < n; i++) {
            if (!is_scope_char((unsigned char)p[i])) {
                return fail_entry(err, TT_REJ_BAD_VALUE, name, idx, "invalid scope character");
            }
        }
    }
    char dec[TT_EV_MAX_SCOPE + 1];
    if (uri_has_credentials(p, n, dec, 1)) {
        return fail_entry(err, TT_REJ_BAD_VALUE, name, idx, CREDENTIAL_PROBLEM);
    }
    return 0;
}

static int too_many(const char *name, tt_event_error *err)
{
    char problem[64];
    snprintf(problem, sizeof(problem), "more than %d entries", TT_EV_MAX_LIST);
    return fail_at(err, TT_REJ_TOO_LONG, "data.", name, problem);
}

/* Entry i of an array value: 1 with its bytes when it is a string, else 0. */
static int list_item(const val *v, size_t i, const char **p, size_t *n)
{
    if (v->j != NULL) {
        const json_t *e = json_array_get(v->j, i);
        if (!json_is_string(e)) {
            return 0;
        }
        *p = json_string_value(e);
        *n = json_string_length(e);
        return 1;
    }
    *p = v->items[i].s;
    *n = v->items[i].n;
    return v->items[i].is_string;
}

/* Validates v as a list and stores it in out[name] sorted and de-duplicated. */
static int put_list(const view *vw, json_t *out, const char *name, const val *v,
                    enum list_mode mode, tt_event_error *err)
{
    span items[TT_EV_MAX_LIST];
    size_t count = 0;

    if (v->kind == V_ARRAY) {
        if (v->n > TT_EV_MAX_LIST) {
            return too_many(name, err);
        }
        for (size_t i = 0; i < v->n; i++) {
            if (!list_item(v, i, &items[count].p, &items[count].n)) {
                return fail_entry(err, TT_REJ_WRONG_TYPE, name, i, "not a string");
            }
            if (check_entry(name, i, items[count].p, items[count].n, mode, err) != 0) {
                return -1;
            }
            count++;
        }
    } else if (v->kind == V_STRING && mode == LIST_SCOPES) {
        const char *s = v->s;
        size_t len = v->n;
        /* "repo Bearer <token>" or "openid ?access_token= x" split into
         * harmless-looking entries: the string is checked whole first, once
         * it is known to be no longer than a full list can be */
        if (len > (size_t)TT_EV_MAX_LIST * (TT_EV_MAX_SCOPE + 1)) {
            char problem[64];
            snprintf(problem, sizeof(problem), "longer than %d bytes",
                     TT_EV_MAX_LIST * (TT_EV_MAX_SCOPE + 1));
            return fail_at(err, TT_REJ_TOO_LONG, "data.", name, problem);
        }
        char *dec = malloc(len + 1);
        if (dec == NULL) {
            return fail_oom(err);
        }
        int bad = uri_has_credentials(s, len, dec, 1);
        free(dec);
        if (bad) {
            return fail_at(err, TT_REJ_BAD_VALUE, "data.", name, CREDENTIAL_PROBLEM);
        }
        size_t i = 0;
        while (i < len) {
            if (s[i] == ' ') {
                i++;
                continue;
            }
            size_t start = i;
            while (i < len && s[i] != ' ') {
                i++;
            }
            if (count == TT_EV_MAX_LIST) {
                return too_many(name, err);
            }
            if (check_entry(name, count, s + start, i - start, mode, err) != 0) {
                return -1;
            }
            items[count].p = s + start;
            items[count].n = i - start;
            count++;
        }
    } else if (v->kind == V_STRING && mode == LIST_AUDIENCE) {
        items[0].p = v->s;
        items[0].n = v->n;
        if (check_entry(name, 0, items[0].p, items[0].n, mode, err) != 0) {
            return -1;
        }
        count = 1;
    } else {
        const char *problem = mode == LIST_SERVICES ? "not an array" : "not a string or array";
        return fail_at(err, TT_REJ_WRONG_TYPE, "data.", name, problem);
    }

    /* Lists usually arrive sorted already; qsort only when they are not. */
    for (size_t i = 1; i < count; i++) {
        if (span_cmp(&items[i - 1], &items[i]) > 0) {
            qsort(items, count, sizeof(items[0]), span_cmp);
            break;
        }
    }
    json_t *arr = json_array();
    if (arr == NULL) {
        return fail_oom(err);
    }
    for (size_t i = 0; i < count; i++) {
        if (i > 0 && span_cmp(&items[i - 1], &items[i]) == 0) {
            continue;
        }
        if (json_array_append_new(arr, mkstr(vw, items[i].p, items[i].n)) != 0) {
            json_decref(arr);
            return fail_oom(err);
        }
    }
    return put(out, name, arr, err);
}

/* ---- data fields ---- */

/* A token_id that is really a JWS: "eyJ" is base64url of '{"'. */
static int looks_like_jwt(const char *s, size_t n)
{
    if (n < 3 || memcmp(s, "eyJ", 3) != 0) {
        return 0;
    }
    int dots = 0;
    for (size_t i = 0; i < n; i++) {
        dots += s[i] == '.';
    }
    return dots >= 2;
}

/* tt_is_fingerprint for a string of known length without NUL. */
static int is_fingerprint_span(const char *s, size_t n)
{
    if (n != 7 + 64 || memcmp(s, "sha256:", 7) != 0) {
        return 0;
    }
    for (size_t i = 7; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

static int do_token_id(const view *vw, json_t *out, json_t **token_id, tt_event_error *err)
{
    const val *tid = &vw->field[FI_TOKEN_ID];
    const val *tok = &vw->field[FIELD_TOKEN];
    char fp[TT_FINGERPRINT_BUFSZ];

    if (tid->kind != V_ABSENT) {
        if (check_string(tid, "data.", "token_id", TT_EV_MAX_ID, err) != 0) {
            return -1;
        }
        if (looks_like_jwt(tid->s, tid->n)) {
            return fail(err, TT_REJ_BAD_VALUE, "data.token_id",
                        "looks like a raw JWT; send it as data.token to have it fingerprinted");
        }
        char dec[TT_EV_MAX_ID + 1];
        if (uri_has_credentials(tid->s, tid->n, dec, 1)) {
            return fail(err, TT_REJ_BAD_VALUE, "data.token_id", CREDENTIAL_PROBLEM);
        }
        if (tid->n >= 7 && memcmp(tid->s, "sha256:", 7) == 0 && !is_fingerprint_span(tid->s, tid->n)) {
            return fail(err, TT_REJ_BAD_VALUE, "data.token_id", "malformed sha256 fingerprint");
        }
    }
    if (tok->kind != V_ABSENT) {
        if (tok->kind != V_STRING) {
            return fail(err, TT_REJ_WRONG_TYPE, "data.token", "not a string");
        }
        if (tok->n == 0) {
            return fail(err, TT_REJ_BAD_VALUE, "data.token", "empty");
        }
        if (tok->n > TT_EV_MAX_TOKEN) {
            char problem[64];
            snprintf(problem, sizeof(problem), "longer than %d bytes", TT_EV_MAX_TOKEN);
            return fail(err, TT_REJ_TOO_LONG, "data.token", problem);
        }
        /* The whole byte string is hashed, embedded NULs included: the token
         * is opaque and never stored, so there is nothing to protect. */
        tt_fingerprint(tok->s, tok->n, fp);
        if (fp[0] == '\0') {
            return fail(err, TT_REJ_BAD_VALUE, "data.token", "could not be fingerprinted");
        }
        size_t fplen = strlen(fp);
        if (tid->kind != V_ABSENT && !span_eq(tid->s, tid->n, fp, fplen)) {
            return fail(err, TT_REJ_BAD_VALUE, "data.token_id",
                        "does not match the fingerprint of data.token");
        }
        *token_id = json_stringn_nocheck(fp, fplen);
        return put(out, "token_id", *token_id, err);
    }
    if (tid->kind == V_ABSENT) {
        return fail(err, TT_REJ_MISSING, "data.token_id", "missing (send token_id or token)");
    }
    *token_id = mkstr(vw, tid->s, tid->n);
    return put(out, "token_id", *token_id, err);
}

/* ---- credentials inside text ---- */

static int is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

/* Length of the JWT that starts at s[0..n), or 0: base64url segments ('='
 * padding tolerated) joined by '.', the header (at least 10 characters)
 * starting "eyJ" (a JSON object); a JWS has 3 segments, the payload at least
 * 2 characters, the signature possibly empty (an unsecured JWT); a JWE has 5,
 * the second possibly empty (direct encryption). */
static size_t jwt_at(const char *s, size_t n)
{
    if (n < 3 || memcmp(s, "eyJ", 3) != 0) {
        return 0;
    }
    size_t len[5] = {0, 0, 0, 0, 0};
    size_t i = 0, third_dot = 0;
    int seg = 0;
    for (; i < n; i++) {
        if (is_b64url(s[i]) || s[i] == '=') {
            len[seg]++;
        } else if (s[i] == '.' && seg < 4) {
            seg++;
            if (seg == 3) {
                third_dot = i;
            }
        } else {
            break;
        }
    }
    if (len[0] < 10) {
        return 0;
    }
    if (seg == 4 && len[2] > 0 && len[3] > 0 && len[4] > 0) {
        return i; /* JWE */
    }
    if (seg >= 2 && len[1] >= 2) {
        return seg == 2 ? i : third_dot; /* JWS, then a stray '.' */
    }
    return 0;
}

/* Is s[0..n) a credential rather than a word of prose? A bearer token (or a
 * token used as a URL's user name): at least 16 characters, not all lowercase
 * letters ("Bearer authentication" is prose). Basic: base64 of
 * "user:password", padded or not. */
static int looks_like_credential(int basic, const char *s, size_t n)
{
    if (!basic) {
        if (n < 16) {
            return 0;
        }
        for (size_t i = 0; i < n; i++) {
            if (s[i] < 'a' || s[i] > 'z') {
                return 1;
            }
        }
        return 0;
    }
    unsigned char in[128];
    unsigned char dec[96];
    if (n > sizeof(in) - 3) {
        return 1; /* too long to check: treat it as one */
    }
    /* "Only", "Operations": words that decode to a ':' by chance. base64 of
     * a user and password has 8 characters or more and, unlike a word, a
     * digit, '+', '/', '=' or a capital after the first character. */
    int b64ish = 0;
    for (size_t i = 0; i < n && !b64ish; i++) {
        b64ish = (s[i] >= '0' && s[i] <= '9') || s[i] == '+' || s[i] == '/' || s[i] == '=' ||
                 (i > 0 && s[i] >= 'A' && s[i] <= 'Z');
    }
    if (n < 8 || !b64ish) {
        return 0;
    }
    size_t m = n;
    memcpy(in, s, n);
    while (m % 4 != 0) {
        in[m++] = '=';
    }
    size_t pad = 0;
    while (pad < m && in[m - 1 - pad] == '=') {
        pad++;
    }
    int len = EVP_DecodeBlock(dec, in, (int)m);
    /* EVP_DecodeBlock counts a zero byte for each '=' of padding: drop them */
    if (len >= (int)pad) {
        len -= (int)pad;
    }
    /* user:password (the user may be empty: an API key as the password) in
     * well-formed UTF-8 without control bytes (RFC 7617) */
    int has_colon = len > 0 && memchr(dec, ':', (size_t)len) != NULL;
    for (int i = 0; has_colon && i < len;) {
        unsigned char c = dec[i];
        int follow = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2
                                : (c & 0xf8) == 0xf0 ? 3 : -1;
        has_colon = follow >= 0 && (c >= 0x20 && c != 0x7f) && i + follow < len;
        for (int k = 1; has_colon && k <= follow; k++) {
            has_colon = (dec[i + k] & 0xc0) == 0x80;
        }
        i += follow + 1;
    }
    OPENSSL_cleanse(dec, sizeof(dec));
    OPENSSL_cleanse(in, sizeof(in));
    return has_colon;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* At s[0..n), an HTTP authorization scheme ("Bearer" or "Basic", any case)
 * followed by blanks and a credential (token68 that looks_like_credential)?
 * Returns the credential's offset and sets *clen and *basic, or returns 0. */
static size_t auth_cred_at(const char *s, size_t n, size_t *clen, int *basic)
{
    static const char *const schemes[] = {"bearer", "basic"};
    for (int k = 0; k < 2; k++) {
        size_t sl = strlen(schemes[k]), i = sl;
        if (n <= sl || strncasecmp(s, schemes[k], sl) != 0 || !is_blank(s[i])) {
            continue;
        }
        while (i < n && is_blank(s[i])) {
            i++;
        }
        size_t c = i;
        if (k == 1) {
            /* Basic: standard base64, so "...dXNlcjpwYXNz." ends before the '.' */
            while (i < n && ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
                             (s[i] >= '0' && s[i] <= '9') || s[i] == '+' || s[i] == '/')) {
                i++;
            }
        } else {
            /* Bearer: token68 */
            while (i < n && (is_b64url(s[i]) || s[i] == '.' || s[i] == '~' || s[i] == '+' ||
                             s[i] == '/')) {
                i++;
            }
        }
        while (i < n && s[i] == '=') {
            i++;
        }
        size_t len = i - c;
        if (k == 0) {
            /* a JWT is exactly its segments; another token loses a full
             * stop that ends the sentence, so its fingerprint is its
             * token_id */
            size_t j = jwt_at(s + c, len);
            size_t dots = j;
            while (dots < len && s[c + dots] == '.') {
                dots++;
            }
            if (j != 0 && dots == len) {
                len = j; /* the JWT, then full stops */
            } else {
                while (len > 0 && s[c + len - 1] == '.') {
                    len--;
                }
            }
        }
        if (looks_like_credential(k == 1, s + c, len)) {
            *clen = len;
            *basic = k == 1;
            return c;
        }
    }
    return 0;
}

/* Appends TT_REDACTED, or the fingerprint of cred[0..clen), to out at *o
 * (out NULL: a dry run, nothing written). */
static void put_redacted(char *out, size_t *o, const char *cred, size_t clen)
{
    if (out == NULL) {
        return;
    }
    if (cred == NULL) {
        memcpy(out + *o, TT_REDACTED, sizeof(TT_REDACTED) - 1);
        *o += sizeof(TT_REDACTED) - 1;
        return;
    }
    char fp[TT_FINGERPRINT_BUFSZ];
    tt_fingerprint(cred, clen, fp);
    size_t fl = strlen(fp);
    memcpy(out + *o, fp, fl);
    *o += fl;
}

/* Free text: copies s[0..n) to out (room: TEXT_ROOM(n)) with every raw JWT
 * and every credential after "Bearer " replaced by its sha256: fingerprint
 * (the token_id of that token), every credential after "Basic " (a user and
 * password) by TT_REDACTED. Returns the number of replacements; *outn gets
 * the length written. out NULL: only count. No word boundary is asked for:
 * "xBearer <token>" or "id=eyJ..." still hold a token, and
 * looks_like_credential keeps prose out. */
#define TEXT_ROOM(n) ((n) + ((n) / 8 + 1) * TT_FINGERPRINT_BUFSZ)
/* One pass over a string before any redaction work: SF_TEXT when it could
 * hold what clean_text replaces ("eyJ", or "Bearer" or "Basic" in any case
 * before a blank), SF_URI when it could hold what redact_params or
 * redact_userinfo replace (a '?', '#' or ';', or "//"). Most strings of an
 * event have neither, and this loop is what they cost. */
enum { SF_TEXT = 1, SF_URI = 2 };
static int scan_flags(const char *s, size_t n)
{
    int f = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c > '?') {
            if (c == 'J' && i >= 2 && s[i - 1] == 'y' && s[i - 2] == 'e') {
                f |= SF_TEXT;
            }
            continue;
        }
        switch (c) {
        case '?':
        case '#':
        case ';':
            f |= SF_URI;
            break;
        case '/':
            if (i + 1 < n && s[i + 1] == '/') {
                f |= SF_URI;
            }
            break;
        case ' ':
        case '\t':
        case '\n':
        case '\r':
            if ((i >= 5 && strncasecmp(s + i - 5, "basic", 5) == 0) ||
                (i >= 6 && strncasecmp(s + i - 6, "bearer", 6) == 0)) {
                f |= SF_TEXT;
            }
            break;
        default:
            break;
        }
    }
    return f;
}

static size_t clean_text_known(const char *s, size_t n, char *out, size_t *outn, int suspect);

static size_t clean_text(const char *s, size_t n, char *out, size_t *outn)
{
    return clean_text_known(s, n, out, outn, (scan_flags(s, n) & SF_TEXT) != 0);
}

/* clean_text with scan_flags' SF_TEXT already known (suspect). */
static size_t clean_text_known(const char *s, size_t n, char *out, size_t *outn, int suspect)
{
    size_t o = 0, i = 0, changes = 0;
    if (!suspect) {
        if (out != NULL) {
            memcpy(out, s, n);
        }
        *outn = n;
        return 0;
    }
    while (i < n) {
        size_t clen = 0, c = 0, j = 0;
        int basic = 0;
        if ((c = auth_cred_at(s + i, n - i, &clen, &basic)) != 0) {
            if (out != NULL) {
                memcpy(out + o, s + i, c);
            }
            o += c;
            put_redacted(out, &o, basic ? NULL : s + i + c, clen);
            i += c + clen;
            changes++;
        } else if ((j = jwt_at(s + i, n - i)) != 0) {
            put_redacted(out, &o, s + i, j);
            i += j;
            changes++;
        } else if (n - i >= 3 && memcmp(s + i, "eyJ", 3) == 0) {
            /* Not a JWT from here, nor from any later start in this run of
             * base64url (the segments after it are the same, the first one
             * only shorter): skip the run, so "eyJeyJeyJ..." costs O(n). A
             * scheme name at its end ("...Bearer <token>") is left to the
             * next rounds. */
            size_t r = i;
            while (r < n && (is_b64url(s[r]) || s[r] == '=')) {
                r++;
            }
            if (r < n && is_blank(s[r])) {
                if (r - i >= 6 + 3 && strncasecmp(s + r - 6, "bearer", 6) == 0) {
                    r -= 6;
                } else if (r - i >= 5 + 3 && strncasecmp(s + r - 5, "basic", 5) == 0) {
                    r -= 5;
                }
            }
            if (out != NULL) {
                memcpy(out + o, s + i, r - i);
            }
            o += r - i;
            i = r;
        } else {
            if (out != NULL) {
                out[o] = s[i];
            }
            o++;
            i++;
        }
    }
    *outn = o;
    return changes;
}

/* A stored string: s[0..n) through clean_text, SF_TEXT already known
 * (suspect). NULL when out of memory. */
static json_t *mkstr_clean_known(const view *vw, const char *s, size_t n, int suspect)
{
    size_t len = 0;
    if (!suspect || clean_text_known(s, n, NULL, &len, 1) == 0) {
        return mkstr(vw, s, n); /* the common case: nothing to replace */
    }
    char *out = malloc(TEXT_ROOM(n));
    if (out == NULL) {
        return NULL;
    }
    clean_text_known(s, n, out, &len, 1);
    json_t *js = mkstr(vw, out, len);
    free(out);
    return js;
}

static json_t *mkstr_clean(const view *vw, const char *s, size_t n)
{
    return mkstr_clean_known(vw, s, n, (scan_flags(s, n) & SF_TEXT) != 0);
}

/* ---- URI-references (data.path, source, dataschema): credentials in the
 * query and in user info ---- */

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Form-decodes s[0..n) (%XX, '+' as space) into out (room for n bytes);
 * returns the decoded length. A malformed %-escape is kept as is. */
static size_t form_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    return o;
}

/* How a query parameter's value is kept: 0 as is, 1 replaced by its sha256:
 * fingerprint (a bearer token: RFC 6750 section 2.3 lets clients send it as
 * access_token=, and its fingerprint is the token's token_id), 2 replaced by
 * TT_REDACTED (other secrets, often low in entropy: a hash of a password
 * could be guessed back). The name is form-decoded here and compared
 * case-insensitively. */
/* The form-decoded, lowercased name n[0..len) into low (64 bytes); 0 when
 * the name is empty or too long for it. */
static size_t param_name_lower(const char *name, size_t n, char low[64])
{
    char dec[64];
    if (n == 0 || n >= 64) {
        return 0;
    }
    size_t m = form_decode(name, n, dec);
    for (size_t i = 0; i < m; i++) {
        low[i] = (dec[i] >= 'A' && dec[i] <= 'Z') ? (char)(dec[i] - 'A' + 'a') : dec[i];
    }
    low[m] = '\0';
    return m;
}

static int name_in(const char *low, const char *const *list, int substring)
{
    for (size_t k = 0; list[k]; k++) {
        if (substring ? strstr(low, list[k]) != NULL : strcmp(low, list[k]) == 0) {
            return 1;
        }
    }
    return 0;
}

static const char *const bearer_names[] = {"access_token", "refresh_token", "id_token", "token",
                                           NULL};

/* Words that count only as a whole part of a name split on '_', '-' and '.'
 * (auth_code, db.pass, x-auth-header; not author, passengers, bypass). */
static const char *const part_words[] = {"auth", "pass", "pwd", "pw", "sig", NULL};

static int has_part(const char *low, const char *const *list)
{
    const char *p = low;
    while (*p) {
        size_t k = strcspn(p, "_-.");
        for (size_t w = 0; list[w]; w++) {
            if (strlen(list[w]) == k && strncmp(p, list[w], k) == 0) {
                return 1;
            }
        }
        p += k;
        if (*p) {
            p++;
        }
    }
    return 0;
}

static int path_param_class(const char *name, size_t n)
{
    static const char *const exact[] = {"code", "key",           "sig",           "jwt",
                                        "pw",   "otp",           "pin",           "auth",
                                        "pass", "authorization", "assertion",     NULL};
    static const char *const words[] = {
        "token",      "secret",    "passw",      "passphrase", "passcode",    "passkey",
        "_pass",      "-pass",     "pwd",        "credential", "signature",   "apikey",
        "api_key",    "api-key",   "authkey",    "_auth",      "-auth",       "session",
        "assertion",  "ticket",    "verifier",   "device_code", "privatekey", "private_key",
        "samlresponse", NULL};
    char low[64];
    if (n >= 64) {
        return 2; /* an absurdly long name: keep nothing of its value */
    }
    if (param_name_lower(name, n, low) == 0) {
        return 0;
    }
    if (name_in(low, bearer_names, 0)) {
        return 1;
    }
    return name_in(low, exact, 0) || name_in(low, words, 1) || has_part(low, part_words) ? 2 : 0;
}

/* For identifiers (id, source, token_id, list entries), which are refused
 * rather than rewritten: only a name that says beyond doubt that it holds a
 * credential counts (a bearer token, a secret, a password, a signature, an
 * API or private key), not one that merely may (ticket, session, code,
 * auth...), so an ordinary source such as "https://rs/api;auth=v2" is kept. */
static int strong_param(const char *name, size_t n)
{
    static const char *const strong[] = {"secret",  "passw",   "signature",   "credential",
                                         "apikey",  "api_key", "api-key",     "private_key",
                                         "privatekey", NULL};
    static const char *const strong_parts[] = {"pass", "pwd", "sig", NULL};
    char low[64];
    if (n >= 64 || param_name_lower(name, n, low) == 0) {
        return n >= 64;
    }
    size_t m = strlen(low);
    return name_in(low, bearer_names, 0) || name_in(low, strong, 1) ||
           has_part(low, strong_parts) || strcmp(low, "key") == 0 ||
           (m >= 5 && strcmp(low + m - 5, "token") == 0); /* private_token, oauth_token */
}

static int is_param_end(char c)
{
    return c == '&' || c == ';' || c == '#' || c == '?';
}

/* redact_params' mode bits: RP_NESTED inside a decoded value (no deeper
 * decoding), RP_STRICT for identifiers (only parameters whose names say
 * they hold a credential beyond doubt count, see strong_param). */
enum { RP_NESTED = 1, RP_STRICT = 2 };
static size_t redact_userinfo(const char *s, size_t n, char *out, size_t *outn, int strict);
static size_t redact_params(const char *s, size_t n, char *out, char *dec, int mode,
                            size_t *outn);

/* Does s[0..n) hold a %XX escape? */
static int has_escape(const char *s, size_t n)
{
    for (const char *p = memchr(s, '%', n); p != NULL && p + 2 < s + n;
         p = memchr(p + 1, '%', (size_t)(s + n - p - 1))) {
        if (hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
            return 1;
        }
    }
    return 0;
}

/* A parameter value that is itself form-encoded text or a reference
 * (redirect_uri=https%3A%2F%2F...%3Faccess_token%3D..., h=Bearer+...):
 * decoded, up to 4 times for a reference encoded once per redirect hop, and
 * checked for anything redact_params, redact_userinfo or clean_text would
 * replace. A value still encoded after 4 rounds counts as holding one. dec:
 * room for n bytes; wiped. */
static int nested_has_credentials(const char *v, size_t n, char *dec, int strict)
{
    size_t dn = form_decode(v, n, dec), ign = 0;
    int found = 0;
    char *q = malloc(n + 2);
    if (q == NULL) {
        OPENSSL_cleanse(dec, n);
        return 1; /* cannot look: treat it as holding one */
    }
    for (int round = 0;; round++) {
        /* also as a query of its own: state=access_token%3D... */
        q[0] = '?';
        memcpy(q + 1, dec, dn);
        int mode = RP_NESTED | (strict ? RP_STRICT : 0);
        if (redact_params(dec, dn, NULL, NULL, mode, &ign) > 0 ||
            redact_params(q, dn + 1, NULL, NULL, mode, &ign) > 0 ||
            redact_userinfo(dec, dn, NULL, &ign, strict) > 0 || clean_text(dec, dn, NULL, &ign) > 0) {
            found = 1;
            break;
        }
        if (!has_escape(dec, dn)) {
            break;
        }
        if (round == 3) {
            found = 1;
            break;
        }
        dn = form_decode(dec, dn, dec); /* in place: the output is never longer */
    }
    OPENSSL_cleanse(q, n + 2);
    free(q);
    OPENSSL_cleanse(dec, n);
    return found;
}

/* Copies s[0..n) to out with the value of every credential parameter in the
 * query or the fragment replaced as path_param_class says; a value that
 * decodes to a URL-reference with credentials of its own (a percent-encoded
 * redirect_uri=...%3Faccess_token%3D...) is replaced by TT_REDACTED. '?' also
 * separates parameters, so a nested "next=/cb?access_token=..." is seen.
 * dec: scratch room for n bytes (unused when out is NULL and depth > 0).
 * out NULL: a dry run. Returns the number of replacements; *outn gets the
 * length written. */
static size_t redact_params(const char *s, size_t n, char *out, char *dec, int mode,
                            size_t *outn)
{
    int depth = mode & RP_NESTED;
    int strict = (mode & RP_STRICT) != 0;
    /* the parameters start at the first '?', '#' or ';' (matrix parameters
     * such as ;jsessionid= in the path) */
    size_t i = 0;
    while (i < n && s[i] != '?' && s[i] != '#' && s[i] != ';') {
        i++;
    }
    size_t o = i, changes = 0;
    if (out != NULL) {
        memcpy(out, s, i);
    }
    while (i < n) {
        /* a separator, then name[=value] */
        size_t ns = i + 1;
        i = ns;
        while (i < n && s[i] != '=' && !is_param_end(s[i])) {
            i++;
        }
        size_t ne = i;
        int has_value = i < n && s[i] == '=';
        size_t vs = has_value ? i + 1 : i;
        i = vs;
        while (has_value && i < n && !is_param_end(s[i])) {
            i++;
        }
        if (depth == 0 && ne > ns &&
            (memchr(s + ns, '%', ne - ns) != NULL || memchr(s + ns, '+', ne - ns) != NULL) &&
            nested_has_credentials(s + ns, ne - ns, dec, strict)) {
            /* a name that decodes to a credential (?access_token%3D...,
             * ?Bearer%20...=1): the whole parameter goes */
            if (out != NULL) {
                out[o] = s[ns - 1];
            }
            o++;
            put_redacted(out, &o, NULL, 0);
            changes++;
            continue;
        }
        int cls = i == vs ? 0 : path_param_class(s + ns, ne - ns);
        if (strict && cls == 2 && !strong_param(s + ns, ne - ns)) {
            cls = 0;
        }
        if (cls == 0 && i > vs && depth == 0 &&
            (memchr(s + vs, '%', i - vs) != NULL || memchr(s + vs, '+', i - vs) != NULL) &&
            nested_has_credentials(s + vs, i - vs, dec, strict)) {
            cls = 2; /* a form-encoded reference or text with credentials */
        }
        if (out != NULL) {
            memcpy(out + o, s + ns - 1, vs - (ns - 1)); /* separator, name, '=' */
        }
        o += vs - (ns - 1);
        if (cls == 0) {
            if (out != NULL) {
                memcpy(out + o, s + vs, i - vs);
            }
            o += i - vs;
            continue;
        }
        changes++;
        if (cls == 1 && out != NULL) {
            size_t dn = form_decode(s + vs, i - vs, dec);
            put_redacted(out, &o, dec, dn);
            OPENSSL_cleanse(dec, dn);
        } else {
            put_redacted(out, &o, NULL, 0);
        }
    }
    *outn = out != NULL ? o : n;
    return changes;
}

/* Does s[0..n) start like a well-known API token (GitHub, GitLab, Slack,
 * Stripe, OpenAI)? Identifiers refuse such a URL user name; other text
 * replaces any user name that looks_like_credential. */
static int known_token_prefix(const char *s, size_t n)
{
    static const char *const prefixes[] = {"ghp_", "gho_", "ghs_", "ghu_", "ghr_", "github_pat_",
                                           "glpat-", "xoxb-", "xoxp-", "xoxa-", "sk_live_",
                                           "sk-", NULL};
    for (size_t k = 0; prefixes[k]; k++) {
        size_t pl = strlen(prefixes[k]);
        if (n > pl + 8 && memcmp(s, prefixes[k], pl) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Where the authority of a URL-reference starts at s[i] ("//" at the start,
 * after a scheme's ':', after '=' or a parameter or fragment separator), the
 * index after the "//"; else 0. */
static size_t authority_at(const char *s, size_t n, size_t i)
{
    if (i + 2 > n || s[i] != '/' || s[i + 1] != '/') {
        return 0;
    }
    if (i == 0) {
        return 2;
    }
    char b = s[i - 1];
    return b == ':' || b == '=' || b == '#' || b == '?' || b == '&' || b == ';' ? i + 2 : 0;
}

/* Copies s[0..n) to out (room: n + n / 2 + sizeof(TT_REDACTED)) with the
 * password of every URL's user info ("//user:password@host", the reference
 * itself or one inside it) replaced by TT_REDACTED, and a user name that
 * looks_like_credential (a token as user name) too. The authority runs to
 * '/', '?', '#', '\' or a blank: '&' and ';' may be in a password. out NULL:
 * only count. Returns the number of replacements; *outn gets the length
 * written. */
static size_t redact_userinfo(const char *s, size_t n, char *out, size_t *outn, int strict)
{
    size_t o = 0, i = 0, changes = 0;
    while (i < n) {
        size_t a = authority_at(s, n, i);
        if (a == 0) {
            if (out != NULL) {
                out[o] = s[i];
            }
            o++;
            i++;
            continue;
        }
        size_t e = a, at = n, colon = n;
        while (e < n && s[e] != '/' && s[e] != '?' && s[e] != '#' && s[e] != '\\' &&
               !is_blank(s[e])) {
            if (s[e] == '@') {
                at = e;
            }
            e++;
        }
        for (size_t k = a; at < n && k < at; k++) {
            if (s[k] == ':') {
                colon = k;
                break;
            }
        }
        int sep_in_userinfo = 0;
        for (size_t k = a; at < n && k < at; k++) {
            sep_in_userinfo |= s[k] == '&' || s[k] == ';';
        }
        /* the user name itself a token (GitHub's https://<token>:x-oauth-basic@) */
        size_t ulen = at < n ? (colon < n ? colon : at) - a : 0;
        int user_token = at < n && (strict ? known_token_prefix(s + a, ulen)
                                           : looks_like_credential(0, s + a, ulen));
        size_t keep = colon < n && !user_token ? colon + 1 : a; /* through "user:", or "//" */
        if (at < n && sep_in_userinfo) {
            /* "&" or ";" before the '@': a parameter's name may hide in it
             * (?next=//app&password=x@y), so the whole authority goes */
            if (out != NULL) {
                memcpy(out + o, s + i, a - i);
            }
            o += a - i;
            put_redacted(out, &o, NULL, 0);
            i = e;
            changes++;
        } else if (at < n && (colon < n || user_token)) {
            if (out != NULL) {
                memcpy(out + o, s + i, keep - i);
            }
            o += keep - i;
            put_redacted(out, &o, NULL, 0);
            i = at;
            changes++;
        } else {
            if (out != NULL) {
                memcpy(out + o, s + i, a - i);
            }
            o += a - i;
            i = a;
        }
    }
    *outn = o;
    return changes;
}

/* Would path_redacted change s[0..n)? dec: scratch room for n bytes. */
static int uri_has_credentials(const char *s, size_t n, char *dec, int strict)
{
    int f = scan_flags(s, n);
    size_t ign = 0;
    if (f & SF_TEXT && clean_text_known(s, n, NULL, &ign, 1) > 0) {
        return 1;
    }
    return (f & SF_URI) != 0 &&
           (redact_params(s, n, NULL, dec, strict ? RP_STRICT : 0, &ign) > 0 ||
            redact_userinfo(s, n, NULL, &ign, strict) > 0);
}

/* A stored URI-reference (data.path, data.resource, dataschema):
 * redact_userinfo (first: a password may hold '&' and "key=", which
 * redact_params would take for parameters), then redact_params, then
 * clean_text. Returns a new string, NULL when out of memory. */
static json_t *path_redacted(const view *vw, const char *s, size_t n)
{
    int f = scan_flags(s, n);
    if (!(f & SF_URI)) {
        return mkstr_clean_known(vw, s, n, f & SF_TEXT);
    }
    char stack_dec[512];
    char *dec = n < sizeof(stack_dec) ? stack_dec : malloc(n + 1);
    if (dec == NULL) {
        return NULL;
    }
    size_t ign = 0;
    int clean = redact_userinfo(s, n, NULL, &ign, 0) == 0 &&
                redact_params(s, n, NULL, dec, 0, &ign) == 0;
    if (dec != stack_dec) {
        free(dec);
    }
    if (clean) {
        return mkstr_clean_known(vw, s, n, f & SF_TEXT);
    }
    /* user info ("//@", 3 bytes) grows by at most the marker; a parameter
     * (at least "&x=y") by at most a fingerprint */
    size_t cap1 = n + (n / 3 + 1) * sizeof(TT_REDACTED);
    char *mid = malloc(cap1);
    json_t *j = NULL;
    if (mid != NULL) {
        size_t m = 0, o = 0;
        redact_userinfo(s, n, mid, &m, 0);
        char *out = malloc(m + (m / 2 + 1) * TT_FINGERPRINT_BUFSZ);
        char *dec2 = malloc(m + 1);
        if (out != NULL && dec2 != NULL) {
            redact_params(mid, m, out, dec2, 0, &o);
            j = mkstr_clean(vw, out, o);
        }
        free(out);
        free(dec2);
    }
    free(mid);
    return j;
}

/* Adds the cleaned string js (mkstr_clean or path_redacted; NULL when out of
 * memory) as out[name], unless the replacements made it longer than max:
 * every consumer sizes its buffers by the documented limits. */
static int put_clean(json_t *out, const char *prefix, const char *name, json_t *js, size_t max,
                     tt_event_error *err)
{
    if (js == NULL) {
        return fail_oom(err);
    }
    if (json_string_length(js) > max) {
        char problem[128];
        snprintf(problem, sizeof(problem),
                 "longer than %zu bytes once the credentials in it are replaced by fingerprints",
                 max);
        json_decref(js);
        return fail_at(err, TT_REJ_TOO_LONG, prefix, name, problem);
    }
    return put(out, name, js, err);
}

typedef struct {
    int64_t issued_ms;
    int have_issued;
    json_t *incident_id;  /* the output string, borrowed from the data object */
} data_state;

static int do_field(const view *vw, size_t fi, const val *v, json_t *out, data_state *st,
                    tt_event_error *err)
{
    const field_def *f = &fields[fi];

    switch (f->kind) {
    case K_TOKEN_ID:
        /* build_data routes this kind to do_token_id, which also reads data.token. */
        return fail_at(err, TT_REJ_BAD_VALUE, "data.", f->name, "internal error");
    case K_STRING: {
        if (check_string(v, "data.", f->name, f->max, err) != 0) {
            return -1;
        }
        json_t *s = path_redacted(vw, v->s, v->n);
        if (put_clean(out, "data.", f->name, s, f->max, err) != 0) {
            return -1;
        }
        if (fi == FI_INCIDENT_ID) {
            st->incident_id = s; /* borrowed from out */
        }
        return 0;
    }
    case K_PATH:
        if (check_string(v, "data.", f->name, f->max, err) != 0) {
            return -1;
        }
        return put_clean(out, "data.", f->name, path_redacted(vw, v->s, v->n), f->max, err);
    case K_SCOPES:
        return put_list(vw, out, f->name, v, LIST_SCOPES, err);
    case K_AUDIENCE:
        return put_list(vw, out, f->name, v, LIST_AUDIENCE, err);
    case K_SERVICES:
        return put_list(vw, out, f->name, v, LIST_SERVICES, err);
    case K_TOKEN_TYPE:
        if (check_string(v, "data.", f->name, TT_EV_MAX_ID, err) != 0) {
            if (err->reason == TT_REJ_WRONG_TYPE) {
                return -1;
            }
            return fail_at(err, TT_REJ_BAD_VALUE, "data.", f->name, "must be one of access, refresh");
        }
        if (!span_eq(v->s, v->n, "access", 6) && !span_eq(v->s, v->n, "refresh", 7)) {
            return fail_at(err, TT_REJ_BAD_VALUE, "data.", f->name, "must be one of access, refresh");
        }
        return put(out, f->name, json_stringn_nocheck(v->s, v->n), err);
    case K_TIME: {
        int64_t ms = 0;
        if (get_time(v, "data.", f->name, err, &ms) != 0) {
            return -1;
        }
        if (fi == FI_ISSUED_AT) {
            st->issued_ms = ms;
            st->have_issued = 1;
        } else if (fi == FI_EXPIRES_AT && st->have_issued && ms < st->issued_ms) {
            return fail_at(err, TT_REJ_BAD_VALUE, "data.", f->name, "before data.issued_at");
        }
        return put_time(out, f->name, ms, err);
    }
    case K_METHOD:
        if (check_string(v, "data.", f->name, METHOD_MAX, err) != 0) {
            return -1;
        }
        for (size_t i = 0; i < v->n; i++) {
            if (v->s[i] < 'A' || v->s[i] > 'Z') {
                return fail_at(err, TT_REJ_BAD_VALUE, "data.", f->name,
                               "must be uppercase letters A-Z");
            }
        }
        return put(out, f->name, json_stringn_nocheck(v->s, v->n), err);
    case K_STATUS:
        if (v->kind != V_INTEGER) {
            return fail_at(err, TT_REJ_WRONG_TYPE, "data.", f->name, "not an integer");
        }
        if (v->i < 100 || v->i > 599) {
            return fail_at(err, TT_REJ_BAD_VALUE, "data.", f->name, "out of range 100..599");
        }
        return put(out, f->name, json_integer(v->i), err);
    case K_IP: {
        unsigned char addr[sizeof(struct in6_addr)];
        char text[IP_MAX + 1];
        if (check_string(v, "data.", f->name, IP_MAX, err) != 0) {
            return -1;
        }
        /* inet_pton wants a C string; the value has no NUL and fits. */
        memcpy(text, v->s, v->n);
        text[v->n] = '\0';
        if (inet_pton(AF_INET, text, addr) != 1 && inet_pton(AF_INET6, text, addr) != 1) {
            return fail_at(err, TT_REJ_BAD_VALUE, "data.", f->name, "not an IP address");
        }
        return put(out, f->name, mkstr(vw, v->s, v->n), err);
    }
    }
    return -1;
}

/* Rejects the first data member that `type` does not allow. */
static int check_data_keys(const view *vw, tt_event_type type, tt_event_error *err)
{
    const json_t *data = vw->attr[A_DATA].j;
    if (data != NULL) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)(uintptr_t)data, key, v) {
            size_t n = strlen(key);
            if (!field_allowed(field_index(key, n), type)) {
                char name[ECHO_MAX + 1];
                sanitize(key, n, name);
                return fail_at(err, TT_REJ_UNKNOWN_FIELD, "data.", name, "unknown field");
            }
        }
        return 0;
    }
    for (size_t i = 0; i < vw->n_data; i++) {
        const member *m = &vw->data[i];
        if (!field_allowed(m->field, type)) {
            char name[ECHO_MAX + 1];
            sanitize(m->key, m->keylen, name);
            return fail_at(err, TT_REJ_UNKNOWN_FIELD, "data.", name, "unknown field");
        }
    }
    return 0;
}

/* Builds the canonical data object for `type`. */
static int build_data(const view *vw, tt_event_type type, json_t *out, tt_event *ev,
                      tt_event_error *err)
{
    data_state st = {0, 0, NULL};
    json_t *token_id = NULL;

    /* Unknown fields first: a payload carrying a stray secret (access_token,
     * password...) is always reported as such, whatever else is wrong. */
    if (check_data_keys(vw, type, err) != 0) {
        return -1;
    }

    for (size_t i = 0; i < NFIELDS; i++) {
        const field_def *f = &fields[i];
        if ((f->allowed & BIT(type)) == 0) {
            continue;
        }
        if (f->kind == K_TOKEN_ID) {
            if (do_token_id(vw, out, &token_id, err) != 0) {
                return -1;
            }
            continue;
        }
        const val *v = &vw->field[i];
        if (v->kind == V_ABSENT) {
            if ((f->required & BIT(type)) != 0) {
                return fail_at(err, TT_REJ_MISSING, "data.", f->name, "missing");
            }
            if (i == FI_TOKEN_TYPE && type == TT_EV_TOKEN_ISSUED) {
                if (put(out, f->name, json_stringn_nocheck("access", 6), err) != 0) {
                    return -1;
                }
            }
            continue;
        }
        if (do_field(vw, i, v, out, &st, err) != 0) {
            return -1;
        }
    }
    ev->token_id = token_id ? json_string_value(token_id) : NULL;
    ev->incident_id = st.incident_id ? json_string_value(st.incident_id) : NULL;
    return 0;
}

/* ---- top level ---- */

/* CloudEvents extension attribute names: lowercase letters and digits, at
 * most 20 of them. */
static int is_ext_name(const char *key, size_t n)
{
    if (n == 0 || n > EXT_NAME_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((key[i] >= 'a' && key[i] <= 'z') || (key[i] >= '0' && key[i] <= '9'))) {
            return 0;
        }
    }
    return 1;
}

/* An extension whose name says it holds a credential (accesstoken,
 * clientsecret, password, ...) would put a raw secret on disk, where only
 * data.token's fingerprint may go: such names are refused whatever the value. */
static const char *credential_word(const char *key, size_t n)
{
    static const char *const words[] = {"token",    "secret", "passw",  "credential",
                                        "bearer",   "authoriz", "apikey", "cookie",
                                        NULL};
    for (size_t w = 0; words[w]; w++) {
        size_t wn = strlen(words[w]);
        for (size_t i = 0; i + wn <= n; i++) {
            if (memcmp(key + i, words[w], wn) == 0) {
                return words[w];
            }
        }
    }
    return NULL;
}

static json_t *ext_value(const view *vw, const val *v)
{
    if (v->j != NULL && !json_is_string(v->j)) {
        return json_copy((json_t *)(uintptr_t)v->j);
    }
    switch (v->kind) {
    case V_STRING:
        return path_redacted(vw, v->s, v->n);
    case V_INTEGER:
        return json_integer(v->i);
    case V_TRUE:
        return json_true();
    case V_FALSE:
        return json_false();
    default:
        return NULL; /* the scanner hands reals to jansson */
    }
}

/* Validates the extension attributes and adds them to out, sorted by name. */
static int put_extensions(const view *vw, json_t *out, tt_event_error *err)
{
    const member *ext[TT_EV_MAX_EXTENSIONS];
    size_t count = 0;

    for (size_t i = 0; i < vw->n_ext; i++) {
        const member *m = &vw->ext[i];
        const val *v = &m->v;
        char name[ECHO_MAX + 1];
        sanitize(m->key, m->keylen, name);
        if (!is_ext_name(m->key, m->keylen)) {
            return fail(err, TT_REJ_UNKNOWN_FIELD, name, "unknown attribute");
        }
        const char *word = credential_word(m->key, m->keylen);
        if (word != NULL) {
            char problem[200];
            snprintf(problem, sizeof(problem),
                     "extension attribute named like a credential ('%s'): tokentrail stores no "
                     "raw tokens or secrets; send a token as data.token to have it fingerprinted",
                     word);
            return fail(err, TT_REJ_UNKNOWN_FIELD, name, problem);
        }
        if (v->kind == V_STRING) {
            if (check_string(v, "", name, TT_EV_MAX_TEXT, err) != 0) {
                return -1;
            }
        } else if (v->kind != V_INTEGER && v->kind != V_REAL && v->kind != V_TRUE &&
                   v->kind != V_FALSE) {
            return fail(err, TT_REJ_WRONG_TYPE, name, "not a string, number or boolean");
        }
        if (count == TT_EV_MAX_EXTENSIONS) {
            char problem[64];
            snprintf(problem, sizeof(problem), "more than %d extension attributes",
                     TT_EV_MAX_EXTENSIONS);
            return fail(err, TT_REJ_TOO_LONG, name, problem);
        }
        /* Insertion sort by name: at most 16 names, and usually none. */
        span key = {m->key, m->keylen};
        size_t pos = count;
        while (pos > 0) {
            span prev = {ext[pos - 1]->key, ext[pos - 1]->keylen};
            if (span_cmp(&prev, &key) <= 0) {
                break;
            }
            ext[pos] = ext[pos - 1];
            pos--;
        }
        ext[pos] = m;
        count++;
    }
    for (size_t i = 0; i < count; i++) {
        json_t *v = ext_value(vw, &ext[i]->v);
        if (v != NULL && json_is_string(v) && json_string_length(v) > TT_EV_MAX_TEXT) {
            char name[EXT_NAME_MAX + 1];
            memcpy(name, ext[i]->key, ext[i]->keylen);
            name[ext[i]->keylen] = '\0';
            json_decref(v);
            return fail(err, TT_REJ_TOO_LONG, name,
                        "longer than " TT_STR(TT_EV_MAX_TEXT) " bytes once the credentials in it "
                        "are replaced by fingerprints");
        }
        if (v == NULL ||
            json_object_setn_new_nocheck(out, ext[i]->key, ext[i]->keylen, v) != 0) {
            return fail_oom(err);
        }
    }
    return 0;
}

/* id_secret: event_from_view found a credential in the id (checked once,
 * there, since it decides whether rejections may echo the id too). */
static int build_event(const view *vw, json_t *out, tt_event *ev, tt_event_error *err,
                       int id_secret)
{
    const val *v = &vw->attr[A_SPECVERSION];
    if (v->kind == V_ABSENT) {
        return fail(err, TT_REJ_MISSING, "specversion", "missing");
    }
    if (v->kind != V_STRING) {
        return fail(err, TT_REJ_WRONG_TYPE, "specversion", "not a string");
    }
    if (!span_eq(v->s, v->n, "1.0", 3)) {
        return fail(err, TT_REJ_BAD_VALUE, "specversion", "must be \"1.0\"");
    }
    if (put(out, "specversion", json_stringn_nocheck("1.0", 3), err) != 0) {
        return -1;
    }

    static const struct {
        int attr;
        size_t max;
    } required_strings[] = {{A_ID, TT_EV_MAX_ID}, {A_SOURCE, TT_EV_MAX_SOURCE}};
    json_t *copies[2];
    for (size_t i = 0; i < 2; i++) {
        const char *name = attr_names[required_strings[i].attr];
        v = &vw->attr[required_strings[i].attr];
        if (v->kind == V_ABSENT) {
            return fail(err, TT_REJ_MISSING, name, "missing");
        }
        if (check_string(v, "", name, required_strings[i].max, err) != 0) {
            return -1;
        }
        /* id and source name the event and decide duplicates: stored as
         * sent, so one that carries a credential is refused */
        char dec[TT_EV_MAX_SOURCE + 1];
        if (i == 0 ? id_secret : uri_has_credentials(v->s, v->n, dec, 1)) {
            return fail(err, TT_REJ_BAD_VALUE, name, CREDENTIAL_PROBLEM);
        }
        copies[i] = mkstr(vw, v->s, v->n);
        if (put(out, name, copies[i], err) != 0) {
            return -1;
        }
    }

    v = &vw->attr[A_TYPE];
    if (v->kind == V_ABSENT) {
        return fail(err, TT_REJ_MISSING, "type", "missing");
    }
    if (v->kind != V_STRING) {
        return fail(err, TT_REJ_WRONG_TYPE, "type", "not a string");
    }
    tt_event_type type = TT_EV_UNKNOWN;
    for (int t = TT_EV_UNKNOWN + 1; t < TT_EV__COUNT; t++) {
        if (span_eq(v->s, v->n, type_names[t], strlen(type_names[t]))) {
            type = (tt_event_type)t;
        }
    }
    if (type == TT_EV_UNKNOWN) {
        char echo[ECHO_MAX + 1];
        char problem[ECHO_MAX + 32];
        sanitize(v->s, v->n, echo);
        snprintf(problem, sizeof(problem), "unknown event type \"%s\"", echo);
        return fail(err, TT_REJ_UNKNOWN_TYPE, "type", problem);
    }
    err->type = type;
    if (put(out, "type", json_string_nocheck(tt_event_type_name(type)), err) != 0) {
        return -1;
    }

    v = &vw->attr[A_TIME];
    if (v->kind == V_ABSENT) {
        return fail(err, TT_REJ_MISSING, "time", "missing");
    }
    int64_t time_ms = 0;
    if (get_time(v, "", "time", err, &time_ms) != 0 || put_time(out, "time", time_ms, err) != 0) {
        return -1;
    }

    v = &vw->attr[A_SUBJECT];
    if (v->kind != V_ABSENT) {
        if (check_string(v, "", "subject", TT_EV_MAX_TEXT, err) != 0 ||
            put_clean(out, "", "subject", path_redacted(vw, v->s, v->n), TT_EV_MAX_TEXT, err) != 0) {
            return -1;
        }
    }

    v = &vw->attr[A_DATACONTENTTYPE];
    if (v->kind != V_ABSENT) {
        if (v->kind != V_STRING) {
            return fail(err, TT_REJ_WRONG_TYPE, "datacontenttype", "not a string");
        }
        if (!span_eq(v->s, v->n, "application/json", 16)) {
            return fail(err, TT_REJ_BAD_VALUE, "datacontenttype", "must be \"application/json\"");
        }
    }
    if (put(out, "datacontenttype", json_stringn_nocheck("application/json", 16), err) != 0) {
        return -1;
    }

    v = &vw->attr[A_DATASCHEMA];
    if (v->kind != V_ABSENT) {
        if (check_string(v, "", "dataschema", TT_EV_MAX_SOURCE, err) != 0 ||
            put_clean(out, "", "dataschema", path_redacted(vw, v->s, v->n), TT_EV_MAX_SOURCE,
                      err) != 0) {
            return -1;
        }
    }

    if (put_extensions(vw, out, err) != 0) {
        return -1;
    }

    v = &vw->attr[A_DATA];
    if (v->kind == V_ABSENT) {
        return fail(err, TT_REJ_MISSING, "data", "missing");
    }
    if (v->kind != V_OBJECT) {
        return fail(err, TT_REJ_WRONG_TYPE, "data", "not an object");
    }
    json_t *data_out = json_object();
    if (put(out, "data", data_out, err) != 0) {
        return -1;
    }
    if (build_data(vw, type, data_out, ev, err) != 0) {
        return -1;
    }

    ev->type = type;
    ev->time_ms = time_ms;
    ev->id = json_string_value(copies[0]);
    ev->source = json_string_value(copies[1]);
    return 0;
}

/* Does any string under j (a value, or an array's or object's values) hold
 * tok[0..n)? Sets *where to the member name that holds it. */
static int holds_bytes(const json_t *j, const char *key, const char *tok, size_t n,
                       const char **where)
{
    if (json_is_string(j)) {
        if (memmem(json_string_value(j), json_string_length(j), tok, n) != NULL) {
            *where = key;
            return 1;
        }
        return 0;
    }
    if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++) {
            if (holds_bytes(json_array_get(j, i), key, tok, n, where)) {
                return 1;
            }
        }
        return 0;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)(uintptr_t)j, k, v)
    {
        if (holds_bytes(v, k, tok, n, where)) {
            return 1;
        }
    }
    return 0;
}

/* A raw data.token that the same event repeats in another string (a reason
 * quoting it, an actor "x-access-token: ...") would be stored as sent, though
 * the collector knows exactly those bytes: the event is rejected, naming the
 * member. Tokens shorter than 8 bytes are not looked for (they would match
 * ordinary text). */
static int check_token_repeated(const view *vw, const json_t *out, tt_event_error *err)
{
    const val *tok = &vw->field[FIELD_TOKEN];
    if (tok->kind != V_STRING || tok->n < 8) {
        return 0;
    }
    const char *where = NULL;
    if (!holds_bytes(out, "", tok->s, tok->n, &where)) {
        return 0;
    }
    char name[80];
    snprintf(name, sizeof(name), "%s%.64s",
             json_object_get(json_object_get(out, "data"), where) ? "data." : "", where);
    return fail(err, TT_REJ_BAD_VALUE, name,
                "holds the raw token of data.token, which would be stored as sent: send the "
                "token only as data.token");
}

/* Validates the event seen through vw and builds ev; the contract of
 * tt_event_from_json. */
static int event_from_view(const view *vw, tt_event *ev, tt_event_error *err)
{
    memset(ev, 0, sizeof(*ev));
    memset(err, 0, sizeof(*err));
    err->type = TT_EV_UNKNOWN;

    /* Read id and type up front so every rejection can be attributed, even
     * one that happens before they are validated. Both are read as C strings
     * (up to any NUL), the way the messages and metrics use them. */
    const val *id = &vw->attr[A_ID];
    char id_dec[TT_EV_MAX_ID + 1];
    const val *raw = &vw->field[FIELD_TOKEN];
    int id_secret = id->kind == V_STRING && id->n <= TT_EV_MAX_ID &&
                    uri_has_credentials(id->s, id->n, id_dec, 1);
    /* an id that holds a credential or the raw data.token is not echoed */
    if (id->kind == V_STRING && id->n <= TT_EV_MAX_ID && !id_secret &&
        !(raw->kind == V_STRING && raw->n >= 8 && memmem(id->s, id->n, raw->s, raw->n) != NULL)) {
        const char *nul = memchr(id->s, '\0', id->n);
        size_t n = nul ? (size_t)(nul - id->s) : id->n;
        memcpy(err->id, id->s, n);
        err->id[n] = '\0';
    }
    const val *type = &vw->attr[A_TYPE];
    if (type->kind == V_STRING) {
        const char *nul = memchr(type->s, '\0', type->n);
        size_t n = nul ? (size_t)(nul - type->s) : type->n;
        for (int t = TT_EV_UNKNOWN + 1; t < TT_EV__COUNT; t++) {
            if (span_eq(type->s, n, type_names[t], strlen(type_names[t]))) {
                err->type = (tt_event_type)t;
            }
        }
    }

    json_t *out = json_object();
    int rc = out == NULL ? fail_oom(err) : build_event(vw, out, ev, err, id_secret);
    if (rc == 0) {
        rc = check_token_repeated(vw, out, err);
    }
    if (rc != 0) {
        json_decref(out);
        memset(ev, 0, sizeof(*ev));
        return -1;
    }
    ev->json = out;
    memset(err, 0, sizeof(*err));
    return 0;
}

/* Wipes the bytes of a raw data.token in the caller's document. */
static void wipe_token(json_t *in)
{
    json_t *tok = json_object_get(json_object_get(in, "data"), "token");
    if (json_is_string(tok)) {
        /* Casting away const: jansson owns a private, writable copy of every
         * string, and this one must not outlive the fingerprinting. */
        OPENSSL_cleanse((void *)json_string_value(tok), json_string_length(tok));
    }
}

int tt_event_from_json(json_t *in, tt_event *ev, tt_event_error *err)
{
    if (!json_is_object(in)) {
        memset(ev, 0, sizeof(*ev));
        memset(err, 0, sizeof(*err));
        err->type = TT_EV_UNKNOWN;
        return fail(err, TT_REJ_NOT_OBJECT, "event", "not a JSON object");
    }
    view vw;
    view_from_json(in, &vw);
    int rc = event_from_view(&vw, ev, err);
    wipe_token(in);
    return rc;
}

int tt_event_parse(const char *buf, size_t len, tt_event *ev, tt_event_error *err)
{
    json_error_t jerr;

    memset(ev, 0, sizeof(*ev));
    memset(err, 0, sizeof(*err));
    if (buf == NULL) {
        return fail(err, TT_REJ_PARSE, "json", "no input");
    }
    /* The common case is read in place. Nothing is copied, so a raw token
     * stays only in the caller's buffer, which the caller wipes. */
    view vw;
    if (scan_event(buf, len, &vw) == 0) {
        return event_from_view(&vw, ev, err);
    }
    /* JSON_DECODE_ANY so that a top-level string or number is reported as
     * "not a JSON object" like an array is, rather than as a parse error. */
    json_t *in = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (in == NULL) {
        /* jansson appends " near '<token>'", and that token can be the start
         * of a secret string: keep only the description. */
        char *near = strstr(jerr.text, " near ");
        if (near != NULL) {
            *near = '\0';
        }
        err->reason = TT_REJ_PARSE;
        snprintf(err->msg, sizeof(err->msg), "json: %s at line %d column %d", jerr.text, jerr.line,
                 jerr.column);
        return -1;
    }
    int rc = tt_event_from_json(in, ev, err);
    json_decref(in);
    return rc;
}

char *tt_event_dump(const tt_event *ev)
{
    if (ev == NULL || ev->json == NULL) {
        return NULL;
    }
    return json_dumps(ev->json, JSON_COMPACT);
}

void tt_event_clear(tt_event *ev)
{
    if (ev == NULL) {
        return;
    }
    json_decref(ev->json);
    memset(ev, 0, sizeof(*ev));
}
