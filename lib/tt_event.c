/* tt_event.c - validates CloudEvents 1.0 token/incident events and rebuilds them in canonical form. */
#include "tt_event.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "tt_time.h"

/* Longest piece of a non-secret input (an unknown `type`, an unknown key)
 * echoed back in an error message. */
#define ECHO_MAX 64

#define EXT_NAME_MAX 20
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

/* ---- typed readers; each names `path` in its error ---- */

/* A non-empty string of at most max bytes without embedded NUL. */
static int get_string(const json_t *v, const char *path, size_t max, tt_event_error *err,
                      size_t *out_len)
{
    if (!json_is_string(v)) {
        return fail(err, TT_REJ_WRONG_TYPE, path, "not a string");
    }
    size_t len = json_string_length(v);
    /* jansson's parser never yields NUL in strings, but a caller-built json_t can. */
    if (strlen(json_string_value(v)) != len) {
        return fail(err, TT_REJ_BAD_VALUE, path, "contains a NUL byte");
    }
    if (len == 0) {
        return fail(err, TT_REJ_BAD_VALUE, path, "empty");
    }
    if (len > max) {
        char problem[64];
        snprintf(problem, sizeof(problem), "longer than %zu bytes", max);
        return fail(err, TT_REJ_TOO_LONG, path, problem);
    }
    if (out_len != NULL) {
        *out_len = len;
    }
    return 0;
}

static int put(json_t *obj, const char *key, json_t *val, tt_event_error *err)
{
    if (val == NULL || json_object_set_new(obj, key, val) != 0) {
        return fail_oom(err);
    }
    return 0;
}

/* Copies the validated string v into obj[key]. */
static int put_copy(json_t *obj, const char *key, const json_t *v, tt_event_error *err)
{
    return put(obj, key, json_stringn(json_string_value(v), json_string_length(v)), err);
}

static int get_time(const json_t *v, const char *path, tt_event_error *err, int64_t *out_ms)
{
    const char *why = "not a timestamp";
    if (tt_time_from_json(v, out_ms, &why) != 0) {
        return fail(err, TT_REJ_TIMESTAMP, path, why);
    }
    return 0;
}

static int put_time(json_t *obj, const char *key, int64_t ms, tt_event_error *err)
{
    char buf[TT_TIME_BUFSZ];
    tt_time_format(ms, buf);
    return put(obj, key, json_string(buf), err);
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

/* Checks one list entry; `name` is e.g. "data.scopes", `idx` its position. */
static int check_entry(const char *name, size_t idx, const char *p, size_t n, enum list_mode mode,
                       tt_event_error *err)
{
    char path[64];
    char problem[64];
    snprintf(path, sizeof(path), "%s[%zu]", name, idx);
    if (memchr(p, '\0', n) != NULL) {
        return fail(err, TT_REJ_BAD_VALUE, path, "contains a NUL byte");
    }
    if (n == 0) {
        return fail(err, TT_REJ_BAD_VALUE, path, "empty");
    }
    if (n > TT_EV_MAX_SCOPE) {
        snprintf(problem, sizeof(problem), "longer than %d bytes", TT_EV_MAX_SCOPE);
        return fail(err, TT_REJ_TOO_LONG, path, problem);
    }
    if (mode == LIST_SCOPES) {
        for (size_t i = 0; i < n; i++) {
            if (!is_scope_char((unsigned char)p[i])) {
                return fail(err, TT_REJ_BAD_VALUE, path, "invalid scope character");
            }
        }
    }
    return 0;
}

static int too_many(const char *name, tt_event_error *err)
{
    char problem[64];
    snprintf(problem, sizeof(problem), "more than %d entries", TT_EV_MAX_LIST);
    return fail(err, TT_REJ_TOO_LONG, name, problem);
}

/* Validates v as a list and stores it in out[key] sorted and de-duplicated. */
static int put_list(json_t *out, const char *key, const char *name, const json_t *v,
                    enum list_mode mode, tt_event_error *err)
{
    span items[TT_EV_MAX_LIST];
    size_t count = 0;

    if (json_is_array(v)) {
        size_t size = json_array_size(v);
        if (size > TT_EV_MAX_LIST) {
            return too_many(name, err);
        }
        for (size_t i = 0; i < size; i++) {
            const json_t *e = json_array_get(v, i);
            if (!json_is_string(e)) {
                char path[64];
                snprintf(path, sizeof(path), "%s[%zu]", name, i);
                return fail(err, TT_REJ_WRONG_TYPE, path, "not a string");
            }
            items[count].p = json_string_value(e);
            items[count].n = json_string_length(e);
            if (check_entry(name, i, items[count].p, items[count].n, mode, err) != 0) {
                return -1;
            }
            count++;
        }
    } else if (json_is_string(v) && mode == LIST_SCOPES) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
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
    } else if (json_is_string(v) && mode == LIST_AUDIENCE) {
        items[0].p = json_string_value(v);
        items[0].n = json_string_length(v);
        if (check_entry(name, 0, items[0].p, items[0].n, mode, err) != 0) {
            return -1;
        }
        count = 1;
    } else {
        const char *problem = mode == LIST_SERVICES ? "not an array" : "not a string or array";
        return fail(err, TT_REJ_WRONG_TYPE, name, problem);
    }

    qsort(items, count, sizeof(items[0]), span_cmp);
    json_t *arr = json_array();
    if (arr == NULL) {
        return fail_oom(err);
    }
    for (size_t i = 0; i < count; i++) {
        if (i > 0 && span_cmp(&items[i - 1], &items[i]) == 0) {
            continue;
        }
        if (json_array_append_new(arr, json_stringn(items[i].p, items[i].n)) != 0) {
            json_decref(arr);
            return fail_oom(err);
        }
    }
    return put(out, key, arr, err);
}

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
};

typedef struct {
    const char *name;
    enum field_kind kind;
    size_t max;         /* K_STRING: byte limit */
    unsigned allowed;   /* bit per event type */
    unsigned required;  /* bit per event type */
} field_def;

/* Canonical output order. Token and incident fields never share a type except
 * incident_id, which sits where both orders want it. */
static const field_def fields[] = {
    {"token_id", K_TOKEN_ID, TT_EV_MAX_ID, T_TOKEN, T_TOKEN},
    {"client_id", K_STRING, TT_EV_MAX_ID, T_TOKEN, T_ISSUED},
    {"subject", K_STRING, TT_EV_MAX_TEXT, T_TOKEN, 0},
    {"scopes", K_SCOPES, 0, T_TOKEN, T_ISSUED},
    {"audience", K_AUDIENCE, 0, T_TOKEN, 0},
    {"grant_type", K_STRING, TT_EV_MAX_SCOPE, T_TOKEN, 0},
    {"token_type", K_TOKEN_TYPE, 0, T_TOKEN, 0},
    {"issued_at", K_TIME, 0, T_TOKEN, T_ISSUED},
    {"expires_at", K_TIME, 0, T_TOKEN, T_ISSUED},
    {"incident_id", K_STRING, TT_EV_MAX_ID, T_TOKEN | T_INCIDENT, T_INCIDENT},
    {"title", K_STRING, TT_EV_MAX_TEXT, T_INCIDENT, 0},
    {"severity", K_STRING, SEVERITY_MAX, T_INCIDENT, T_OPENED},
    {"services", K_SERVICES, 0, T_INCIDENT, T_OPENED},
    {"opened_at", K_TIME, 0, T_OPENED, T_OPENED},
    {"resolved_at", K_TIME, 0, T_RESOLVED, T_RESOLVED},
    {"resource", K_STRING, TT_EV_MAX_TEXT, T_USED, T_USED},
    {"method", K_METHOD, 0, T_USED, 0},
    {"path", K_STRING, TT_EV_MAX_PATH, T_USED, 0},
    {"status", K_STATUS, 0, T_USED, 0},
    {"ip", K_IP, 0, T_USED, 0},
    {"reason", K_STRING, TT_EV_MAX_TEXT, T_REVOKED, 0},
    {"actor", K_STRING, TT_EV_MAX_TEXT, T_REVOKED, 0},
};

#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static int data_key_allowed(const char *key, tt_event_type type)
{
    if ((BIT(type) & T_TOKEN) != 0 && strcmp(key, "token") == 0) {
        return 1;
    }
    for (size_t i = 0; i < NFIELDS; i++) {
        if ((fields[i].allowed & BIT(type)) != 0 && strcmp(key, fields[i].name) == 0) {
            return 1;
        }
    }
    return 0;
}

/* A token_id that is really a JWS: "eyJ" is base64url of '{"'. */
static int looks_like_jwt(const char *s)
{
    if (strncmp(s, "eyJ", 3) != 0) {
        return 0;
    }
    int dots = 0;
    for (const char *p = s; *p != '\0'; p++) {
        dots += *p == '.';
    }
    return dots >= 2;
}

static int do_token_id(const json_t *data, json_t *out, tt_event_error *err)
{
    const json_t *tid = json_object_get(data, "token_id");
    const json_t *tok = json_object_get(data, "token");
    char fp[TT_FINGERPRINT_BUFSZ];

    if (tid != NULL) {
        if (get_string(tid, "data.token_id", TT_EV_MAX_ID, err, NULL) != 0) {
            return -1;
        }
        const char *s = json_string_value(tid);
        if (looks_like_jwt(s)) {
            return fail(err, TT_REJ_BAD_VALUE, "data.token_id",
                        "looks like a raw JWT; send it as data.token to have it fingerprinted");
        }
        if (strncmp(s, "sha256:", 7) == 0 && !tt_is_fingerprint(s)) {
            return fail(err, TT_REJ_BAD_VALUE, "data.token_id", "malformed sha256 fingerprint");
        }
    }
    if (tok != NULL) {
        if (!json_is_string(tok)) {
            return fail(err, TT_REJ_WRONG_TYPE, "data.token", "not a string");
        }
        size_t len = json_string_length(tok);
        if (len == 0) {
            return fail(err, TT_REJ_BAD_VALUE, "data.token", "empty");
        }
        if (len > TT_EV_MAX_TOKEN) {
            char problem[64];
            snprintf(problem, sizeof(problem), "longer than %d bytes", TT_EV_MAX_TOKEN);
            return fail(err, TT_REJ_TOO_LONG, "data.token", problem);
        }
        /* The whole byte string is hashed, embedded NULs included: the token
         * is opaque and never stored, so there is nothing to protect. */
        tt_fingerprint(json_string_value(tok), len, fp);
        if (fp[0] == '\0') {
            return fail(err, TT_REJ_BAD_VALUE, "data.token", "could not be fingerprinted");
        }
        if (tid != NULL && strcmp(json_string_value(tid), fp) != 0) {
            return fail(err, TT_REJ_BAD_VALUE, "data.token_id",
                        "does not match the fingerprint of data.token");
        }
        return put(out, "token_id", json_string(fp), err);
    }
    if (tid == NULL) {
        return fail(err, TT_REJ_MISSING, "data.token_id", "missing (send token_id or token)");
    }
    return put_copy(out, "token_id", tid, err);
}

typedef struct {
    tt_event_type type;
    int64_t issued_ms;
    int have_issued;
} data_state;

static int do_field(const field_def *f, const json_t *v, json_t *out, data_state *st,
                    tt_event_error *err)
{
    char path[64];
    snprintf(path, sizeof(path), "data.%s", f->name);

    switch (f->kind) {
    case K_TOKEN_ID:
        /* build_data routes this kind to do_token_id, which also reads data.token. */
        return fail(err, TT_REJ_BAD_VALUE, path, "internal error");
    case K_STRING:
        if (get_string(v, path, f->max, err, NULL) != 0) {
            return -1;
        }
        return put_copy(out, f->name, v, err);
    case K_SCOPES:
        return put_list(out, f->name, path, v, LIST_SCOPES, err);
    case K_AUDIENCE:
        return put_list(out, f->name, path, v, LIST_AUDIENCE, err);
    case K_SERVICES:
        return put_list(out, f->name, path, v, LIST_SERVICES, err);
    case K_TOKEN_TYPE: {
        if (get_string(v, path, TT_EV_MAX_ID, err, NULL) != 0) {
            if (err->reason == TT_REJ_WRONG_TYPE) {
                return -1;
            }
            return fail(err, TT_REJ_BAD_VALUE, path, "must be one of access, refresh");
        }
        const char *s = json_string_value(v);
        if (strcmp(s, "access") != 0 && strcmp(s, "refresh") != 0) {
            return fail(err, TT_REJ_BAD_VALUE, path, "must be one of access, refresh");
        }
        return put_copy(out, f->name, v, err);
    }
    case K_TIME: {
        int64_t ms = 0;
        if (get_time(v, path, err, &ms) != 0) {
            return -1;
        }
        if (strcmp(f->name, "issued_at") == 0) {
            st->issued_ms = ms;
            st->have_issued = 1;
        } else if (strcmp(f->name, "expires_at") == 0 && st->have_issued && ms < st->issued_ms) {
            return fail(err, TT_REJ_BAD_VALUE, path, "before data.issued_at");
        }
        return put_time(out, f->name, ms, err);
    }
    case K_METHOD: {
        size_t len = 0;
        if (get_string(v, path, METHOD_MAX, err, &len) != 0) {
            return -1;
        }
        const char *s = json_string_value(v);
        for (size_t i = 0; i < len; i++) {
            if (s[i] < 'A' || s[i] > 'Z') {
                return fail(err, TT_REJ_BAD_VALUE, path, "must be uppercase letters A-Z");
            }
        }
        return put_copy(out, f->name, v, err);
    }
    case K_STATUS: {
        if (!json_is_integer(v)) {
            return fail(err, TT_REJ_WRONG_TYPE, path, "not an integer");
        }
        json_int_t n = json_integer_value(v);
        if (n < 100 || n > 599) {
            return fail(err, TT_REJ_BAD_VALUE, path, "out of range 100..599");
        }
        return put(out, f->name, json_integer(n), err);
    }
    case K_IP: {
        unsigned char addr[sizeof(struct in6_addr)];
        if (get_string(v, path, IP_MAX, err, NULL) != 0) {
            return -1;
        }
        const char *s = json_string_value(v);
        if (inet_pton(AF_INET, s, addr) != 1 && inet_pton(AF_INET6, s, addr) != 1) {
            return fail(err, TT_REJ_BAD_VALUE, path, "not an IP address");
        }
        return put_copy(out, f->name, v, err);
    }
    }
    return -1;
}

/* Builds the canonical data object for `type` from `data`. */
static int build_data(const json_t *data, tt_event_type type, json_t *out, tt_event_error *err)
{
    const char *key;
    json_t *val;
    data_state st = {type, 0, 0};

    /* Unknown fields first: a payload carrying a stray secret (access_token,
     * password...) is always reported as such, whatever else is wrong. */
    json_object_foreach((json_t *)data, key, val) {
        if (!data_key_allowed(key, type)) {
            char name[ECHO_MAX + 1];
            char path[ECHO_MAX + 8];
            sanitize(key, strlen(key), name);
            snprintf(path, sizeof(path), "data.%s", name);
            return fail(err, TT_REJ_UNKNOWN_FIELD, path, "unknown field");
        }
    }

    for (size_t i = 0; i < NFIELDS; i++) {
        const field_def *f = &fields[i];
        if ((f->allowed & BIT(type)) == 0) {
            continue;
        }
        if (f->kind == K_TOKEN_ID) {
            if (do_token_id(data, out, err) != 0) {
                return -1;
            }
            continue;
        }
        const json_t *v = json_object_get(data, f->name);
        if (v == NULL) {
            if ((f->required & BIT(type)) != 0) {
                char path[64];
                snprintf(path, sizeof(path), "data.%s", f->name);
                return fail(err, TT_REJ_MISSING, path, "missing");
            }
            if (f->kind == K_TOKEN_TYPE && type == TT_EV_TOKEN_ISSUED) {
                if (put(out, f->name, json_string("access"), err) != 0) {
                    return -1;
                }
            }
            continue;
        }
        if (do_field(f, v, out, &st, err) != 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- top level ---- */

static const char *const known_attrs[] = {
    "specversion", "id", "source", "type", "time", "subject", "datacontenttype", "dataschema", "data",
};

static int is_known_attr(const char *key)
{
    for (size_t i = 0; i < sizeof(known_attrs) / sizeof(known_attrs[0]); i++) {
        if (strcmp(key, known_attrs[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* CloudEvents extension attribute names: lowercase letters and digits, at
 * most 20 of them. */
static int is_ext_name(const char *key)
{
    size_t n = strlen(key);
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

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Validates the extension attributes and adds them to out, sorted by name. */
static int put_extensions(json_t *in, json_t *out, tt_event_error *err)
{
    const char *names[TT_EV_MAX_EXTENSIONS];
    size_t count = 0;
    const char *key;
    json_t *val;

    json_object_foreach(in, key, val) {
        if (is_known_attr(key)) {
            continue;
        }
        char name[ECHO_MAX + 1];
        sanitize(key, strlen(key), name);
        if (!is_ext_name(key)) {
            return fail(err, TT_REJ_UNKNOWN_FIELD, name, "unknown attribute");
        }
        if (json_is_string(val)) {
            if (get_string(val, name, TT_EV_MAX_TEXT, err, NULL) != 0) {
                return -1;
            }
        } else if (!json_is_integer(val) && !json_is_real(val) && !json_is_boolean(val)) {
            return fail(err, TT_REJ_WRONG_TYPE, name, "not a string, number or boolean");
        }
        if (count == TT_EV_MAX_EXTENSIONS) {
            char problem[64];
            snprintf(problem, sizeof(problem), "more than %d extension attributes",
                     TT_EV_MAX_EXTENSIONS);
            return fail(err, TT_REJ_TOO_LONG, name, problem);
        }
        names[count++] = key;
    }
    qsort(names, count, sizeof(names[0]), cmp_str_ptr);
    for (size_t i = 0; i < count; i++) {
        if (put(out, names[i], json_copy(json_object_get(in, names[i])), err) != 0) {
            return -1;
        }
    }
    return 0;
}

static int build_event(json_t *in, json_t *out, tt_event *ev, tt_event_error *err)
{
    const json_t *v;

    v = json_object_get(in, "specversion");
    if (v == NULL) {
        return fail(err, TT_REJ_MISSING, "specversion", "missing");
    }
    if (!json_is_string(v)) {
        return fail(err, TT_REJ_WRONG_TYPE, "specversion", "not a string");
    }
    if (strcmp(json_string_value(v), "1.0") != 0 || json_string_length(v) != 3) {
        return fail(err, TT_REJ_BAD_VALUE, "specversion", "must be \"1.0\"");
    }
    if (put(out, "specversion", json_string("1.0"), err) != 0) {
        return -1;
    }

    static const struct {
        const char *name;
        size_t max;
    } required_strings[] = {{"id", TT_EV_MAX_ID}, {"source", TT_EV_MAX_SOURCE}};
    for (size_t i = 0; i < 2; i++) {
        v = json_object_get(in, required_strings[i].name);
        if (v == NULL) {
            return fail(err, TT_REJ_MISSING, required_strings[i].name, "missing");
        }
        if (get_string(v, required_strings[i].name, required_strings[i].max, err, NULL) != 0 ||
            put_copy(out, required_strings[i].name, v, err) != 0) {
            return -1;
        }
    }

    v = json_object_get(in, "type");
    if (v == NULL) {
        return fail(err, TT_REJ_MISSING, "type", "missing");
    }
    if (!json_is_string(v)) {
        return fail(err, TT_REJ_WRONG_TYPE, "type", "not a string");
    }
    tt_event_type type = tt_event_type_from_name(json_string_value(v));
    if (type == TT_EV_UNKNOWN || strlen(json_string_value(v)) != json_string_length(v)) {
        char echo[ECHO_MAX + 1];
        char problem[ECHO_MAX + 32];
        sanitize(json_string_value(v), json_string_length(v), echo);
        snprintf(problem, sizeof(problem), "unknown event type \"%s\"", echo);
        return fail(err, TT_REJ_UNKNOWN_TYPE, "type", problem);
    }
    err->type = type;
    if (put(out, "type", json_string(tt_event_type_name(type)), err) != 0) {
        return -1;
    }

    v = json_object_get(in, "time");
    if (v == NULL) {
        return fail(err, TT_REJ_MISSING, "time", "missing");
    }
    int64_t time_ms = 0;
    if (get_time(v, "time", err, &time_ms) != 0 || put_time(out, "time", time_ms, err) != 0) {
        return -1;
    }

    v = json_object_get(in, "subject");
    if (v != NULL) {
        if (get_string(v, "subject", TT_EV_MAX_TEXT, err, NULL) != 0 ||
            put_copy(out, "subject", v, err) != 0) {
            return -1;
        }
    }

    v = json_object_get(in, "datacontenttype");
    if (v != NULL) {
        if (!json_is_string(v)) {
            return fail(err, TT_REJ_WRONG_TYPE, "datacontenttype", "not a string");
        }
        if (strcmp(json_string_value(v), "application/json") != 0 ||
            json_string_length(v) != strlen("application/json")) {
            return fail(err, TT_REJ_BAD_VALUE, "datacontenttype", "must be \"application/json\"");
        }
    }
    if (put(out, "datacontenttype", json_string("application/json"), err) != 0) {
        return -1;
    }

    v = json_object_get(in, "dataschema");
    if (v != NULL) {
        if (get_string(v, "dataschema", TT_EV_MAX_SOURCE, err, NULL) != 0 ||
            put_copy(out, "dataschema", v, err) != 0) {
            return -1;
        }
    }

    if (put_extensions(in, out, err) != 0) {
        return -1;
    }

    v = json_object_get(in, "data");
    if (v == NULL) {
        return fail(err, TT_REJ_MISSING, "data", "missing");
    }
    if (!json_is_object(v)) {
        return fail(err, TT_REJ_WRONG_TYPE, "data", "not an object");
    }
    json_t *data_out = json_object();
    if (put(out, "data", data_out, err) != 0) {
        return -1;
    }
    if (build_data(v, type, data_out, err) != 0) {
        return -1;
    }

    ev->type = type;
    ev->time_ms = time_ms;
    ev->id = json_string_value(json_object_get(out, "id"));
    ev->source = json_string_value(json_object_get(out, "source"));
    ev->token_id = json_string_value(json_object_get(data_out, "token_id"));
    ev->incident_id = json_string_value(json_object_get(data_out, "incident_id"));
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
    memset(ev, 0, sizeof(*ev));
    memset(err, 0, sizeof(*err));
    err->type = TT_EV_UNKNOWN;

    if (!json_is_object(in)) {
        return fail(err, TT_REJ_NOT_OBJECT, "event", "not a JSON object");
    }

    /* Read id and type up front so every rejection can be attributed, even
     * one that happens before they are validated. */
    const json_t *id = json_object_get(in, "id");
    if (json_is_string(id) && json_string_length(id) <= TT_EV_MAX_ID) {
        size_t n = strlen(json_string_value(id));
        memcpy(err->id, json_string_value(id), n + 1);
    }
    const json_t *type = json_object_get(in, "type");
    if (json_is_string(type)) {
        err->type = tt_event_type_from_name(json_string_value(type));
    }

    json_t *out = json_object();
    int rc = out == NULL ? fail_oom(err) : build_event(in, out, ev, err);
    wipe_token(in);
    if (rc != 0) {
        json_decref(out);
        memset(ev, 0, sizeof(*ev));
        return -1;
    }
    ev->json = out;
    memset(err, 0, sizeof(*err));
    return 0;
}

int tt_event_parse(const char *buf, size_t len, tt_event *ev, tt_event_error *err)
{
    json_error_t jerr;

    memset(ev, 0, sizeof(*ev));
    memset(err, 0, sizeof(*err));
    if (buf == NULL) {
        return fail(err, TT_REJ_PARSE, "json", "no input");
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
