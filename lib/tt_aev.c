/* tt_aev.c - scan canonical event JSON into a tt_aev without a DOM. */
#include "tt_aev.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tt_time.h"

#define SCAN_MAX_DEPTH 64

typedef struct scan {
    const char *p, *end;
    char *out; /* next free byte of the arena */
    const char *why;
    size_t n; /* length of the string str() decoded last */
} scan;

static void ws(scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\t' || *s->p == '\r')) {
        s->p++;
    }
}

static int expect(scan *s, char c)
{
    ws(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return 0;
    }
    s->why = "malformed JSON";
    return -1;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= (unsigned)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            v |= (unsigned)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            v |= (unsigned)(c - 'A' + 10);
        } else {
            return -1;
        }
    }
    *out = v;
    return 0;
}

static char *put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xc0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xe0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *o++ = (char)(0xf0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    }
    return o;
}

/* The first '"' or backslash in [p, end), or end. Eight bytes at a time
 * (SWAR: a byte equal to c makes (x ^ c*ONES) have a zero byte, and the
 * lowest flagged zero byte is exact), then byte by byte: keys and values are
 * short, and this beats two memchr calls per string. */
static const char *quote_or_escape(const char *p, const char *end)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
    while (end - p >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
        uint64_t m = ((q - ones) & ~q & highs) | ((b - ones) & ~b & highs);
        if (m != 0) {
            return p + (__builtin_ctzll(m) >> 3);
        }
        p += 8;
    }
#endif
    while (p < end && *p != '"' && *p != '\\') {
        p++;
    }
    return p;
}

/* Decode a JSON string into the arena (NUL-terminated). The decoded form is
 * never longer than the quoted source, so an arena of body length + 1 bytes
 * always suffices. */
static int str(scan *s, const char **out)
{
    ws(s);
    if (s->p >= s->end || *s->p != '"') {
        s->why = "expected a string";
        return -1;
    }
    s->p++;
    const char *start = s->p;
    /* Fast path: a run without escapes is copied in one go. */
    const char *q = quote_or_escape(s->p, s->end);
    if (q == s->end || (*q != '"' && memchr(q, '"', (size_t)(s->end - q)) == NULL)) {
        s->why = "unterminated string";
        return -1;
    }
    char *o = s->out;
    if (*q == '"') {
        size_t n = (size_t)(q - start);
        memcpy(o, start, n);
        o[n] = '\0';
        *out = o;
        s->out = o + n + 1;
        s->p = q + 1;
        s->n = n;
        return 0;
    }
    *out = o;
    while (s->p < s->end && *s->p != '"') {
        char c = *s->p++;
        if (c != '\\') {
            *o++ = c;
            continue;
        }
        if (s->p >= s->end) {
            break;
        }
        c = *s->p++;
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (s->end - s->p < 4 || hex4(s->p, &cp) != 0) {
                s->why = "bad \\u escape";
                return -1;
            }
            s->p += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && s->end - s->p >= 6 && s->p[0] == '\\' &&
                s->p[1] == 'u' && hex4(s->p + 2, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                s->p += 6;
            }
            if (cp == 0) {
                s->why = "NUL in string";
                return -1;
            }
            o = put_utf8(o, cp);
            break;
        }
        default: s->why = "bad escape"; return -1;
        }
    }
    if (s->p >= s->end) {
        s->why = "unterminated string";
        return -1;
    }
    s->p++;
    s->n = (size_t)(o - *out);
    *o++ = '\0';
    s->out = o;
    return 0;
}

/* Move s->p from just after an opening quote to its closing quote. -1 when
 * the string is unterminated. Canonical bodies rarely hold escapes, so the
 * common case is one plain scan. */
static int to_close_quote(scan *s)
{
    const char *q = quote_or_escape(s->p, s->end);
    if (q < s->end && *q == '"') {
        s->p = q;
        return 0;
    }
    /* escapes, or unterminated (the loop leaves p where errors report it) */
    while (s->p < s->end && *s->p != '"') {
        s->p += *s->p == '\\' ? 2 : 1;
    }
    return s->p < s->end ? 0 : -1;
}

/* Skip any JSON value. */
static int skip(scan *s, int depth)
{
    ws(s);
    if (s->p >= s->end || depth > SCAN_MAX_DEPTH) {
        s->why = "malformed JSON";
        return -1;
    }
    char c = *s->p;
    if (c == '"') {
        s->p++;
        if (to_close_quote(s) != 0) {
            s->why = "unterminated string";
            return -1;
        }
        s->p++;
        return 0;
    }
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        s->p++;
        ws(s);
        if (s->p < s->end && *s->p == close) {
            s->p++;
            return 0;
        }
        for (;;) {
            if (c == '{' && (skip(s, depth + 1) != 0 || expect(s, ':') != 0)) {
                return -1;
            }
            if (skip(s, depth + 1) != 0) {
                return -1;
            }
            ws(s);
            if (s->p < s->end && *s->p == ',') {
                s->p++;
                continue;
            }
            return expect(s, close);
        }
    }
    /* number, true, false, null */
    const char *st = s->p;
    while (s->p < s->end && *s->p != ',' && *s->p != '}' && *s->p != ']' && *s->p != ' ') {
        s->p++;
    }
    if (s->p == st) {
        s->why = "malformed JSON";
        return -1;
    }
    return 0;
}

static int str_list(scan *s, const char **list, size_t *n)
{
    *n = 0;
    if (expect(s, '[') != 0) {
        return -1;
    }
    ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return 0;
    }
    for (;;) {
        if (*n == TT_EV_MAX_LIST) {
            s->why = "list too long";
            return -1;
        }
        if (str(s, &list[*n]) != 0) {
            return -1;
        }
        (*n)++;
        ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        return expect(s, ']');
    }
}

static int ts(scan *s, int64_t *out)
{
    const char *v;
    if (str(s, &v) != 0) {
        return -1;
    }
    if (tt_time_parse_rfc3339(v, s->n, out) != 0) {
        s->why = "bad timestamp";
        return -1;
    }
    return 0;
}

/* Key compare against a literal, on the raw (escape-free) key bytes. */
#define KEY_IS(k, kl, lit) ((kl) == sizeof(lit) - 1 && memcmp((k), (lit), (kl)) == 0)

/* Read a key without decoding: canonical keys never contain escapes. */
static int raw_key(scan *s, const char **k, size_t *kl)
{
    ws(s);
    if (s->p >= s->end || *s->p != '"') {
        s->why = "expected a key";
        return -1;
    }
    const char *start = ++s->p;
    if (to_close_quote(s) != 0) {
        s->why = "unterminated key";
        return -1;
    }
    *k = start;
    *kl = (size_t)(s->p - start);
    s->p++;
    return expect(s, ':');
}

static int data_obj(scan *s, tt_aev *ev, tt_aev_scratch *sc)
{
    if (expect(s, '{') != 0) {
        return -1;
    }
    ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return 0;
    }
    for (;;) {
        const char *k;
        size_t kl;
        if (raw_key(s, &k, &kl) != 0) {
            return -1;
        }
        int rc;
        if (KEY_IS(k, kl, "token_id")) {
            rc = str(s, &ev->token_id);
        } else if (KEY_IS(k, kl, "client_id")) {
            rc = str(s, &ev->client_id);
        } else if (KEY_IS(k, kl, "subject")) {
            rc = str(s, &ev->subject);
        } else if (KEY_IS(k, kl, "scopes")) {
            ev->has_scopes = 1;
            ev->scopes = sc->list[0];
            rc = str_list(s, sc->list[0], &ev->n_scopes);
        } else if (KEY_IS(k, kl, "services")) {
            ev->services = sc->list[1];
            rc = str_list(s, sc->list[1], &ev->n_services);
        } else if (KEY_IS(k, kl, "token_type")) {
            const char *tt;
            rc = str(s, &tt);
            ev->refresh = rc == 0 && strcmp(tt, "refresh") == 0;
        } else if (KEY_IS(k, kl, "issued_at")) {
            rc = ts(s, &ev->issued_at);
        } else if (KEY_IS(k, kl, "expires_at")) {
            rc = ts(s, &ev->expires_at);
        } else if (KEY_IS(k, kl, "resolved_at")) {
            rc = ts(s, &ev->resolved_at);
        } else if (KEY_IS(k, kl, "incident_id")) {
            rc = str(s, &ev->incident_id);
        } else {
            rc = skip(s, 1);
        }
        if (rc != 0) {
            return -1;
        }
        ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        return expect(s, '}');
    }
}

int tt_aev_scan(const char *body, size_t len, tt_aev *ev, tt_aev_scratch *sc, char *err,
                size_t errlen)
{
    memset(ev, 0, sizeof(*ev));
    ev->issued_at = ev->expires_at = ev->resolved_at = TT_AEV_NO_TIME;
    ev->time_ms = TT_AEV_NO_TIME;
    if (len > TT_AEV_MAX_BODY) {
        snprintf(err, errlen, "event body larger than %d bytes", TT_AEV_MAX_BODY);
        return -1;
    }
    if (sc->cap < len + 1) {
        size_t cap = len + 1 < 4096 ? 4096 : len + 1;
        char *a = realloc(sc->arena, cap);
        if (a == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        sc->arena = a;
        sc->cap = cap;
    }
    scan s = {body, body + len, sc->arena, NULL, 0};
    const char *type = NULL;
    int rc = expect(&s, '{');
    while (rc == 0) {
        const char *k;
        size_t kl;
        rc = raw_key(&s, &k, &kl);
        if (rc != 0) {
            break;
        }
        if (KEY_IS(k, kl, "id")) {
            rc = str(&s, &ev->id);
        } else if (KEY_IS(k, kl, "source")) {
            rc = str(&s, &ev->source);
        } else if (KEY_IS(k, kl, "type")) {
            rc = str(&s, &type);
        } else if (KEY_IS(k, kl, "time")) {
            rc = ts(&s, &ev->time_ms);
        } else if (KEY_IS(k, kl, "data")) {
            rc = data_obj(&s, ev, sc);
        } else {
            rc = skip(&s, 1);
        }
        if (rc != 0) {
            break;
        }
        ws(&s);
        if (s.p < s.end && *s.p == ',') {
            s.p++;
            continue;
        }
        rc = expect(&s, '}');
        break;
    }
    if (rc == 0) {
        ws(&s);
        if (s.p != s.end) {
            s.why = "trailing bytes after the event";
            rc = -1;
        }
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s at byte %zu", s.why ? s.why : "malformed JSON",
                 (size_t)(s.p - body));
        return -1;
    }
    ev->type = type ? tt_event_type_from_name(type) : TT_EV_UNKNOWN;
    const char *missing = ev->id == NULL                  ? "id"
                          : ev->source == NULL            ? "source"
                          : ev->type == TT_EV_UNKNOWN     ? "type"
                          : ev->time_ms == TT_AEV_NO_TIME ? "time"
                                                          : NULL;
    if (missing == NULL && ev->type <= TT_EV_TOKEN_REVOKED && ev->token_id == NULL) {
        missing = "data.token_id";
    }
    if (missing == NULL && ev->type >= TT_EV_INCIDENT_OPENED && ev->incident_id == NULL) {
        missing = "data.incident_id";
    }
    if (missing == NULL && ev->type == TT_EV_TOKEN_ISSUED &&
        (ev->issued_at == TT_AEV_NO_TIME || ev->expires_at == TT_AEV_NO_TIME)) {
        missing = "data.issued_at/expires_at";
    }
    if (missing != NULL) {
        snprintf(err, errlen, "event without a valid %s", missing);
        return -1;
    }
    /* The collector never stores more than the documented limits, and the
     * engine's checkpoints size their buffers by them: an event from another
     * producer that exceeds one is invalid here rather than a checkpoint that
     * cannot be read back. */
    static const struct {
        size_t off;
        size_t max;
        const char *name;
    } limits[] = {
        {offsetof(tt_aev, id), TT_EV_MAX_ID, "id"},
        {offsetof(tt_aev, source), TT_EV_MAX_SOURCE, "source"},
        {offsetof(tt_aev, token_id), TT_EV_MAX_ID, "data.token_id"},
        {offsetof(tt_aev, client_id), TT_EV_MAX_ID, "data.client_id"},
        {offsetof(tt_aev, subject), TT_EV_MAX_TEXT, "data.subject"},
        {offsetof(tt_aev, incident_id), TT_EV_MAX_ID, "data.incident_id"},
    };
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        const char *v = *(const char *const *)((const char *)ev + limits[i].off);
        if (v != NULL && strlen(v) > limits[i].max) {
            snprintf(err, errlen, "%s longer than %zu bytes", limits[i].name, limits[i].max);
            return -1;
        }
    }
    for (size_t i = 0; i < ev->n_scopes + ev->n_services; i++) {
        const char *v = i < ev->n_scopes ? ev->scopes[i] : ev->services[i - ev->n_scopes];
        if (strlen(v) > TT_EV_MAX_SCOPE) {
            snprintf(err, errlen, "a list entry longer than %d bytes", TT_EV_MAX_SCOPE);
            return -1;
        }
    }
    return 0;
}

void tt_aev_scratch_free(tt_aev_scratch *sc)
{
    free(sc->arena);
    sc->arena = NULL;
    sc->cap = 0;
}

static size_t slen(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

/* Copy s to *o if it fits before end (else set *full); NULL stays NULL. */
static const char *put(char **o, const char *end, const char *s, int *full)
{
    if (s == NULL || *full) {
        return NULL;
    }
    size_t n = strlen(s) + 1;
    if (n > (size_t)(end - *o)) {
        *full = 1;
        return NULL;
    }
    char *r = *o;
    memcpy(r, s, n);
    *o += n;
    return r;
}

size_t tt_aev_clone_size(const tt_aev *ev)
{
    size_t need = sizeof(tt_aev) + (ev->n_scopes + ev->n_services) * sizeof(char *);
    need += slen(ev->source) + slen(ev->id) + slen(ev->token_id) + slen(ev->client_id) +
            slen(ev->subject) + slen(ev->incident_id);
    for (size_t i = 0; i < ev->n_scopes; i++) {
        need += slen(ev->scopes[i]);
    }
    for (size_t i = 0; i < ev->n_services; i++) {
        need += slen(ev->services[i]);
    }
    return need;
}

tt_aev *tt_aev_clone(const tt_aev *ev)
{
    size_t need = tt_aev_clone_size(ev);
    tt_aev *c = malloc(need);
    return c ? tt_aev_clone_into(ev, c, need, 0) : NULL;
}

tt_aev *tt_aev_clone_into(const tt_aev *ev, void *mem, size_t cap, int pooled)
{
    size_t head = sizeof(tt_aev) + (ev->n_scopes + ev->n_services) * sizeof(char *);
    if (cap < head) {
        return NULL;
    }
    tt_aev *c = mem;
    *c = *ev;
    c->pooled = pooled;
    const char **lists = (const char **)(c + 1);
    char *o = (char *)mem + head;
    const char *end = (const char *)mem + cap;
    int full = 0;
    c->source = put(&o, end, ev->source, &full);
    c->id = put(&o, end, ev->id, &full);
    c->token_id = put(&o, end, ev->token_id, &full);
    c->client_id = put(&o, end, ev->client_id, &full);
    c->subject = put(&o, end, ev->subject, &full);
    c->incident_id = put(&o, end, ev->incident_id, &full);
    c->scopes = ev->n_scopes ? lists : NULL;
    for (size_t i = 0; i < ev->n_scopes; i++) {
        lists[i] = put(&o, end, ev->scopes[i], &full);
    }
    c->services = ev->n_services ? lists + ev->n_scopes : NULL;
    for (size_t i = 0; i < ev->n_services; i++) {
        lists[ev->n_scopes + i] = put(&o, end, ev->services[i], &full);
    }
    return full ? NULL : c;
}

void tt_aev_ref(const tt_aev *ev, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", ev->source, ev->id);
}
