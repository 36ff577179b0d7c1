/* tt_ingest.c - request body to durable events and a per-event response. */
#include "tt_ingest.h"

#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "tt_json.h"
#include "tt_log.h"

/* An accepted event, waiting for the store write. Its strings live in the
 * request's arena as offsets, because the arena may move while it grows. */
typedef struct pending {
    tt_event_type type;
    int64_t time_ms;
    size_t body;          /* serialised event: arena offset and length */
    size_t body_len;
    size_t source;        /* NUL-terminated copies: arena offsets */
    size_t id;
    size_t token_id;      /* NO_STRING when the event has none */
    size_t incident_id;
    size_t source_len, id_len, token_id_len, incident_id_len;  /* 0 for none */
} pending;

#define NO_STRING SIZE_MAX

/* Everything one request accumulates before the single store write. */
typedef struct ingest_ctx {
    pending *events;        /* valid events, in order */
    size_t n, cap;
    /* The bodies and row strings of all valid events, back to back: one
     * growing buffer per request instead of a malloc per event, and each
     * event's parse tree can be freed as soon as it is serialised. */
    tt_buf arena;
    size_t seen;            /* events seen so far (valid or not) */
    tt_buf errors;          /* the "errors" array's items */
    size_t n_errors;
    tt_ingest_stats *stats;
    int oom;
} ingest_ctx;

static void add_error(ingest_ctx *c, size_t index, const tt_event_error *e)
{
    c->stats->rejected[e->type][e->reason]++;
    c->stats->n_rejected++;
    if (c->n_errors >= TT_INGEST_MAX_ERRORS) {
        return;
    }
    tt_buf *b = &c->errors;
    int rc = tt_buf_printf(b, "%s{\"index\":%zu,\"id\":", c->n_errors ? "," : "", index);
    if (e->id[0]) {
        rc |= tt_buf_adds(b, "\"");
        rc |= tt_buf_add_json_escaped(b, e->id);
        rc |= tt_buf_adds(b, "\"");
    } else {
        rc |= tt_buf_adds(b, "null");
    }
    rc |= tt_buf_adds(b, ",\"error\":\"");
    rc |= tt_buf_add_json_escaped(b, e->msg);
    rc |= tt_buf_adds(b, "\"}");
    if (rc != 0) {
        c->oom = 1;
    }
    c->n_errors++;
}

/* Appends s and its NUL to the arena; returns its offset, or NO_STRING for
 * s == NULL, and its length in *len (0 for NULL). Sets *rc to -1 on failure. */
static size_t arena_str(tt_buf *a, const char *s, size_t *len, int *rc)
{
    *len = 0;
    if (s == NULL) {
        return NO_STRING;
    }
    size_t at = a->len;
    *len = strlen(s);
    if (tt_buf_add(a, s, *len + 1) != 0) {
        *rc = -1;
    }
    return at;
}

/* Serialises ev into the arena and releases it (always: ev is consumed). */
static void add_event(ingest_ctx *c, tt_event *ev)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        pending *e = realloc(c->events, cap * sizeof(*e));
        if (e == NULL) {
            c->oom = 1;
            tt_event_clear(ev);
            return;
        }
        c->events = e;
        c->cap = cap;
    }
    tt_buf *a = &c->arena;
    size_t start = a->len;
    pending *p = &c->events[c->n];
    p->type = ev->type;
    p->time_ms = ev->time_ms;
    p->body = start;
    /* tt_json_dump: same bytes as tt_event_dump, several times faster. */
    int rc = tt_json_dump(ev->json, a);
    p->body_len = a->len - start;
    p->source = arena_str(a, ev->source, &p->source_len, &rc);
    p->id = arena_str(a, ev->id, &p->id_len, &rc);
    p->token_id = arena_str(a, ev->token_id, &p->token_id_len, &rc);
    p->incident_id = arena_str(a, ev->incident_id, &p->incident_id_len, &rc);
    tt_event_clear(ev);
    if (rc != 0) {
        /* Drop the partial write; the request fails as out of memory. */
        c->oom = 1;
        a->len = start;
        if (a->data) {
            a->data[start] = '\0';
        }
        return;
    }
    c->n++;
}

static void take_json(ingest_ctx *c, json_t *v)
{
    tt_event ev;
    tt_event_error err;
    size_t index = c->seen++;
    if (tt_event_from_json(v, &ev, &err) == 0) {
        add_event(c, &ev);
    } else {
        add_error(c, index, &err);
    }
}

static void take_line(ingest_ctx *c, const char *p, size_t n)
{
    tt_event ev;
    tt_event_error err;
    size_t index = c->seen++;
    if (tt_event_parse(p, n, &ev, &err) == 0) {
        add_event(c, &ev);
    } else {
        add_error(c, index, &err);
    }
}

static int blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') {
            return 0;
        }
    }
    return 1;
}

static int blank_or_newlines(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n' && !blank(p + i, 1)) {
            return 0;
        }
    }
    return 1;
}

/* Count NDJSON events (non-blank lines) without parsing them. */
static size_t count_lines(const char *body, size_t len)
{
    size_t n = 0;
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        if (!blank(p, (size_t)(stop - p))) {
            n++;
        }
        p = nl ? nl + 1 : end;
    }
    return n;
}

static void set_error(tt_buf *resp, const char *msg)
{
    tt_buf_reset(resp);
    tt_buf_adds(resp, "{\"error\":\"");
    tt_buf_add_json_escaped(resp, msg);
    tt_buf_adds(resp, "\"}");
}

static tt_ingest_status parse_body(ingest_ctx *c, const char *body, size_t len, tt_body_format fmt,
                                   tt_buf *resp)
{
    /* A UTF-8 byte order mark is not JSON, but editors and some Windows tools
     * write one; RFC 8259 lets a parser ignore it. */
    if (len >= 3 && memcmp(body, "\xEF\xBB\xBF", 3) == 0) {
        body += 3;
        len -= 3;
    }
    if (fmt == TT_BODY_NDJSON) {
        if (count_lines(body, len) > TT_INGEST_MAX_EVENTS) {
            set_error(resp, "body: more than 100000 events in one request");
            return TT_INGEST_TOO_MANY;
        }
        const char *p = body, *end = body + len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *stop = nl ? nl : end;
            if (!blank(p, (size_t)(stop - p))) {
                take_line(c, p, (size_t)(stop - p));
            }
            p = nl ? nl + 1 : end;
        }
        return TT_INGEST_OK;
    }

    if (blank_or_newlines(body, len)) {
        return TT_INGEST_OK; /* no events: the caller reports an empty body */
    }
    /* One event, the usual application/json body: tt_event_parse reads it in
     * place. Only a body that does not parse at all goes on to jansson below,
     * which words the error for the body as a whole. */
    size_t lead = 0;
    while (lead < len && blank_or_newlines(body + lead, 1)) {
        lead++;
    }
    if (body[lead] == '{' && fmt != TT_BODY_BATCH) {
        tt_event ev;
        tt_event_error err;
        if (tt_event_parse(body, len, &ev, &err) == 0) {
            c->seen++;
            add_event(c, &ev);
            return TT_INGEST_OK;
        }
        if (err.reason != TT_REJ_PARSE) {
            add_error(c, c->seen++, &err);
            return TT_INGEST_OK;
        }
    }

    json_error_t jerr;
    /* Any JSON value, so a scalar is rejected as the event it is not
     * ("event: not a JSON object", as an NDJSON line would be), not as a
     * parse error. */
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        /* jansson appends " near '<token>'", and that token can be the start
         * of a secret string: keep only the description ("near end of file",
         * which quotes nothing, stays). */
        char *near = strstr(jerr.text, " near '");
        if (near != NULL) {
            *near = '\0';
        }
        /* The whole body is one unparseable document: one rejection. */
        tt_event_error e = {.reason = TT_REJ_PARSE, .type = TT_EV_UNKNOWN};
        snprintf(e.msg, sizeof(e.msg), "json: %s at line %d column %d", jerr.text, jerr.line,
                 jerr.column);
        add_error(c, c->seen++, &e);
        return TT_INGEST_OK;
    }
    if (fmt == TT_BODY_BATCH && !json_is_array(root)) {
        json_decref(root);
        set_error(resp, "body: application/cloudevents-batch+json is a JSON array of events "
                        "(send a single event as application/cloudevents+json)");
        return TT_INGEST_NOT_ARRAY;
    }
    if (json_is_array(root)) {
        if (json_array_size(root) > TT_INGEST_MAX_EVENTS) {
            json_decref(root);
            set_error(resp, "body: more than 100000 events in one request");
            return TT_INGEST_TOO_MANY;
        }
        size_t i;
        json_t *v;
        json_array_foreach(root, i, v) {
            take_json(c, v);
        }
    } else {
        take_json(c, root);
    }
    json_decref(root);
    return TT_INGEST_OK;
}

struct tt_ingest {
    ingest_ctx c;
    tt_store_row *rows;
    tt_ingest_status st;   /* as far as parsing could tell */
    tt_buf early;          /* the response when st is decided while parsing */
};

tt_ingest *tt_ingest_prepare(const char *body, size_t len, tt_body_format fmt,
                             tt_ingest_stats *stats)
{
    tt_ingest *in = calloc(1, sizeof(*in));
    if (in == NULL) {
        return NULL;
    }
    ingest_ctx *c = &in->c;
    c->stats = stats;
    tt_buf_init(&c->errors, SIZE_MAX / 2);
    tt_buf_init(&c->arena, SIZE_MAX / 2);
    tt_buf_init(&in->early, 1 << 16);
    in->st = parse_body(c, body, len, fmt, &in->early);

    if (in->st == TT_INGEST_OK && c->seen == 0) {
        set_error(&in->early, "body: no events (send one JSON event, a JSON array or NDJSON)");
        in->st = TT_INGEST_EMPTY;
    }
    if (in->st == TT_INGEST_OK && c->oom) {
        set_error(&in->early, "out of memory");
        in->st = TT_INGEST_STORE_FAILED;
    }
    if (in->st == TT_INGEST_OK && c->n > 0) {
        in->rows = calloc(c->n, sizeof(*in->rows));
        if (in->rows == NULL) {
            set_error(&in->early, "out of memory");
            in->st = TT_INGEST_STORE_FAILED;
        }
    }
    if (in->st == TT_INGEST_OK && c->n > 0) {
        /* The arena is complete and will not move any more. */
        const char *a = c->arena.data;
        for (size_t i = 0; i < c->n; i++) {
            const pending *p = &c->events[i];
            in->rows[i] = (tt_store_row){
                .source = a + p->source,
                .id = a + p->id,
                .type = tt_event_type_name(p->type),
                .token_id = p->token_id == NO_STRING ? NULL : a + p->token_id,
                .incident_id = p->incident_id == NO_STRING ? NULL : a + p->incident_id,
                .time_ms = p->time_ms,
                .body = a + p->body,
                .body_len = p->body_len,
                .source_len = p->source_len,
                .id_len = p->id_len,
                .token_id_len = p->token_id_len,
                .incident_id_len = p->incident_id_len};
        }
    }
    return in;
}

size_t tt_ingest_rows(tt_ingest *in, tt_store_row **rows)
{
    if (in->st != TT_INGEST_OK || in->c.n == 0) {
        *rows = NULL;
        return 0;
    }
    *rows = in->rows;
    return in->c.n;
}

tt_ingest_status tt_ingest_finish(tt_ingest *in, int store_rc, const char *store_err,
                                  tt_buf *resp)
{
    ingest_ctx *c = &in->c;
    tt_ingest_stats *stats = c->stats;
    if (in->st != TT_INGEST_OK) {
        tt_buf_reset(resp);
        tt_buf_add(resp, in->early.data ? in->early.data : "", in->early.len);
        return in->st;
    }
    if (c->n > 0) {
        if (store_rc != 0) {
            char msg[320];
            snprintf(msg, sizeof(msg), "store: %s; nothing was accepted, retry later",
                     store_err ? store_err : "commit failed");
            set_error(resp, msg);
            return TT_INGEST_STORE_FAILED;
        }
        for (size_t i = 0; i < c->n; i++) {
            if (in->rows[i].result == TT_STORE_INSERTED) {
                stats->accepted[c->events[i].type]++;
                stats->n_accepted++;
            } else {
                stats->duplicates[c->events[i].type]++;
                stats->n_duplicates++;
            }
        }
    }
    int rc = tt_buf_printf(resp, "{\"accepted\":%zu,\"duplicates\":%zu,\"rejected\":%zu,\"errors\":[",
                           stats->n_accepted, stats->n_duplicates, stats->n_rejected);
    rc |= tt_buf_add(resp, c->errors.data ? c->errors.data : "", c->errors.len);
    rc |= tt_buf_adds(resp, "]");
    if (stats->n_rejected > c->n_errors) {
        rc |= tt_buf_adds(resp, ",\"errors_truncated\":true");
    }
    rc |= tt_buf_adds(resp, "}");
    if (rc != 0) {
        set_error(resp, "response too large");
    }
    return TT_INGEST_OK;
}

void tt_ingest_free(tt_ingest *in)
{
    if (in == NULL) {
        return;
    }
    free(in->rows);
    free(in->c.events);
    tt_buf_free(&in->c.arena);
    tt_buf_free(&in->c.errors);
    tt_buf_free(&in->early);
    free(in);
}

tt_ingest_status tt_ingest_body(tt_store *store, const char *body, size_t len, tt_body_format fmt,
                                tt_buf *resp, tt_ingest_stats *stats)
{
    tt_ingest *in = tt_ingest_prepare(body, len, fmt, stats);
    if (in == NULL) {
        set_error(resp, "out of memory");
        return TT_INGEST_STORE_FAILED;
    }
    tt_store_row *rows;
    size_t n = tt_ingest_rows(in, &rows);
    char err[256] = "";
    int rc = n > 0 ? tt_store_write(store, rows, n, err, sizeof(err)) : 0;
    tt_ingest_status st = tt_ingest_finish(in, rc, err, resp);
    tt_ingest_free(in);
    return st;
}

struct tt_inflate {
    z_stream zs;
    int done;
};

tt_inflate *tt_inflate_new(void)
{
    tt_inflate *z = calloc(1, sizeof(*z));
    if (z == NULL) {
        return NULL;
    }
    /* 15 + 32: accept both gzip and zlib headers. */
    if (inflateInit2(&z->zs, 15 + 32) != Z_OK) {
        free(z);
        return NULL;
    }
    return z;
}

int tt_inflate_feed(tt_inflate *z, const void *in, size_t n, tt_buf *out)
{
    z->zs.next_in = (Bytef *)(uintptr_t)in;
    z->zs.avail_in = (uInt)n;
    while (z->zs.avail_in > 0) {
        if (z->done) {
            return -1; /* trailing bytes after the gzip member */
        }
        unsigned char chunk[16384];
        z->zs.next_out = chunk;
        z->zs.avail_out = sizeof(chunk);
        int rc = inflate(&z->zs, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
            return -1;
        }
        size_t got = sizeof(chunk) - z->zs.avail_out;
        if (got > 0 && tt_buf_add(out, chunk, got) != 0) {
            return -2;
        }
        if (rc == Z_STREAM_END) {
            z->done = 1;
        } else if (rc == Z_BUF_ERROR && got == 0) {
            break;
        }
    }
    return 0;
}

int tt_inflate_done(const tt_inflate *z)
{
    return z->done;
}

void tt_inflate_free(tt_inflate *z)
{
    if (z) {
        inflateEnd(&z->zs);
        free(z);
    }
}
