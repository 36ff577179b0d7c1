/* tt_evidence_kafka.c - the evidence source for the Kafka topics written by
 * `tokentrail collect --kafka-brokers`.
 *
 * Export reads the events twice (hash, then archive) and needs the same
 * bytes both times, while a topic keeps growing. So the topic is read once
 * (tt_kafka_read: every partition up to the high watermark seen at the
 * start, no consumer group) and the events of the range are spooled to an
 * unlinked file beside the bundle as sorted runs: records are gathered in a
 * bounded buffer (sort_mem), sorted by (event time, partition, offset) and
 * appended as one run whenever the buffer is full. Each read of export is
 * then a k-way merge of those runs (a binary heap, one small buffer per
 * run), so both reads see the same records in the same order. Memory is
 * sort_mem while reading plus ~32 KiB per run while merging, whatever the
 * size of the range.
 *
 * Filters mean what they mean for SQLite (tt_evidence_sqlite.c): a token
 * event matches --subject S also when any event in the topic ties its
 * token_id to S. Those token sets need the whole topic, so with a filter the
 * topic is read from the beginning (the sets are collected while the events
 * of the range are spooled) and the filter is applied while merging.
 * Without a filter the read starts at offsets-for-times(--from).
 *
 * A collector that crashed after a delivery but before it deleted the outbox
 * row produces the event again: the same bytes at the same event time. Such
 * byte-identical events with the same time are kept once (SQLite stored
 * them once), and the manifest notes how many were dropped. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <openssl/sha.h>

#include "tt_config.h"
#include "tt_evidence.h"
#include "tt_kafka.h"
#include "tt_kafka_read.h"
#include "tt_time.h"

#define KQ_DEFAULT_FINDINGS_TOPIC "tokentrail.findings"
#define KQ_SORT_MEM (16u << 20)
#define KQ_REC_HDR 26 /* time 8, partition 4, offset 8, body length 4, aux length 2 */
#define KQ_WBUF (1 << 20)
#define KQ_RBUF (32 << 10)
#define KQ_NOTES 4

/* ---- a set of strings (token ids) ---- */

typedef struct strset {
    char **v;
    size_t cap, n;
} strset;

static uint64_t fnv1a(const void *p, size_t n)
{
    const unsigned char *c = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ c[i]) * 1099511628211ull;
    }
    return h;
}

static int strset_has(const strset *s, const char *k)
{
    if (s->cap == 0) {
        return 0;
    }
    for (size_t i = fnv1a(k, strlen(k)) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (s->v[i] == NULL) {
            return 0;
        }
        if (strcmp(s->v[i], k) == 0) {
            return 1;
        }
    }
}

static int strset_add(strset *s, const char *k)
{
    if (strset_has(s, k)) {
        return 0;
    }
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        char **v = calloc(cap, sizeof(*v));
        if (v == NULL) {
            return -1;
        }
        for (size_t i = 0; i < s->cap; i++) {
            if (s->v[i]) {
                size_t j = fnv1a(s->v[i], strlen(s->v[i])) & (cap - 1);
                while (v[j]) {
                    j = (j + 1) & (cap - 1);
                }
                v[j] = s->v[i];
            }
        }
        free(s->v);
        s->v = v;
        s->cap = cap;
    }
    size_t i = fnv1a(k, strlen(k)) & (s->cap - 1);
    while (s->v[i]) {
        i = (i + 1) & (s->cap - 1);
    }
    s->v[i] = strdup(k);
    if (s->v[i] == NULL) {
        return -1;
    }
    s->n++;
    return 0;
}

static void strset_free(strset *s)
{
    for (size_t i = 0; i < s->cap; i++) {
        free(s->v[i]);
    }
    free(s->v);
    memset(s, 0, sizeof(*s));
}

/* ---- sorted runs in a spool file ---- */

typedef struct sort_key {
    int64_t time;
    int32_t part;
    int64_t off;
    size_t pos; /* of the record in the arena */
} sort_key;

typedef struct run {
    uint64_t start, end;
} run;

typedef struct sorter {
    int fd;
    uint64_t fsize;
    run *runs;
    size_t nruns, capruns;
    unsigned char *arena;
    size_t alen, acap, limit;
    sort_key *keys;
    size_t nkeys, capkeys;
    unsigned char *wbuf;
    size_t wlen;
    uint64_t count;
} sorter;

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static int cmp_key(int64_t t1, int32_t p1, int64_t o1, int64_t t2, int32_t p2, int64_t o2)
{
    if (t1 != t2) {
        return t1 < t2 ? -1 : 1;
    }
    if (p1 != p2) {
        return p1 < p2 ? -1 : 1;
    }
    return (o1 > o2) - (o1 < o2);
}

static int cmp_sort_key(const void *a, const void *b)
{
    const sort_key *x = a, *y = b;
    return cmp_key(x->time, x->part, x->off, y->time, y->part, y->off);
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int sorter_out(sorter *so, const void *p, size_t n)
{
    if (so->wlen + n > KQ_WBUF) {
        if (write_all(so->fd, so->wbuf, so->wlen) != 0) {
            return -1;
        }
        so->wlen = 0;
    }
    if (n > KQ_WBUF) {
        if (write_all(so->fd, p, n) != 0) {
            return -1;
        }
    } else {
        memcpy(so->wbuf + so->wlen, p, n);
        so->wlen += n;
    }
    so->fsize += n;
    return 0;
}

/* Sort the buffered records and append them to the file as one run. */
static int sorter_flush(sorter *so)
{
    if (so->nkeys == 0) {
        return 0;
    }
    if (so->nruns == so->capruns) {
        size_t cap = so->capruns ? so->capruns * 2 : 16;
        run *r = realloc(so->runs, cap * sizeof(*r));
        if (r == NULL) {
            return -1;
        }
        so->runs = r;
        so->capruns = cap;
    }
    qsort(so->keys, so->nkeys, sizeof(*so->keys), cmp_sort_key);
    run *r = &so->runs[so->nruns];
    r->start = so->fsize;
    for (size_t i = 0; i < so->nkeys; i++) {
        const unsigned char *rec = so->arena + so->keys[i].pos;
        size_t n = KQ_REC_HDR + get_u32(rec + 20) + (size_t)(rec[24] | rec[25] << 8);
        if (sorter_out(so, rec, n) != 0) {
            return -1;
        }
    }
    if (write_all(so->fd, so->wbuf, so->wlen) != 0) {
        return -1;
    }
    so->wlen = 0;
    r->end = so->fsize;
    so->nruns++;
    so->nkeys = 0;
    so->alen = 0;
    return 0;
}

/* A record: its sort key, aux (what the filters need, see aux_of) and the
 * message value. */
static int sorter_add(sorter *so, int64_t time, int32_t part, int64_t off, const void *aux,
                      size_t auxlen, const void *body, size_t len)
{
    size_t need = KQ_REC_HDR + auxlen + len;
    if (len > UINT32_MAX || auxlen > UINT16_MAX) {
        return -1;
    }
    /* The limit covers the records and their sort keys. */
    if (so->alen + need + (so->nkeys + 1) * sizeof(sort_key) > so->limit && so->nkeys > 0 &&
        sorter_flush(so) != 0) {
        return -1;
    }
    if (so->alen + need > so->acap) {
        /* The arena grows up to the limit, or to one oversized record. */
        size_t cap = so->acap ? so->acap : 1 << 20;
        while (cap < so->alen + need) {
            cap *= 2;
        }
        if (cap > so->limit && so->alen + need <= so->limit) {
            cap = so->limit;
        }
        unsigned char *a = realloc(so->arena, cap);
        if (a == NULL) {
            return -1;
        }
        so->arena = a;
        so->acap = cap;
    }
    if (so->nkeys == so->capkeys) {
        size_t cap = so->capkeys ? so->capkeys * 2 : 1024;
        sort_key *k = realloc(so->keys, cap * sizeof(*k));
        if (k == NULL) {
            return -1;
        }
        so->keys = k;
        so->capkeys = cap;
    }
    unsigned char *rec = so->arena + so->alen;
    put_u64(rec, (uint64_t)time);
    put_u32(rec + 8, (uint32_t)part);
    put_u64(rec + 12, (uint64_t)off);
    put_u32(rec + 20, (uint32_t)len);
    rec[24] = (unsigned char)(auxlen & 0xff);
    rec[25] = (unsigned char)(auxlen >> 8);
    if (auxlen > 0) {
        memcpy(rec + KQ_REC_HDR, aux, auxlen);
    }
    memcpy(rec + KQ_REC_HDR + auxlen, body, len);
    so->keys[so->nkeys++] = (sort_key){time, part, off, so->alen};
    so->alen += need;
    so->count++;
    return 0;
}

/* After the last record: flush, and give back the sort memory. */
static int sorter_finish(sorter *so)
{
    int rc = sorter_flush(so);
    free(so->arena);
    free(so->keys);
    free(so->wbuf);
    so->arena = NULL;
    so->keys = NULL;
    so->wbuf = NULL;
    so->acap = so->capkeys = 0;
    return rc;
}

static void sorter_free(sorter *so)
{
    so->nkeys = 0; /* an unfinished read: nothing more to write */
    sorter_finish(so);
    if (so->fd >= 0) {
        close(so->fd);
    }
    free(so->runs);
    memset(so, 0, sizeof(*so));
    so->fd = -1;
}

static int sorter_init(sorter *so, const char *dir, size_t limit, char *err, size_t errlen)
{
    memset(so, 0, sizeof(*so));
    so->limit = limit;
    char tmpl[4200];
    snprintf(tmpl, sizeof(tmpl), "%s/.tokentrail-evidence-kafka.XXXXXX", dir);
    so->fd = mkostemp(tmpl, O_CLOEXEC);
    if (so->fd < 0) {
        snprintf(err, errlen, "%.300s: cannot create a sort file: %s", dir, strerror(errno));
        return -1;
    }
    unlink(tmpl); /* the space is returned however the process ends */
    so->wbuf = malloc(KQ_WBUF);
    if (so->wbuf == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- merging the runs ---- */

typedef struct rdr {
    int fd;
    uint64_t pos, end; /* file position of buf[blen], end of the run */
    unsigned char buf[KQ_RBUF];
    size_t blen, bpos;
    int64_t time;
    int32_t part;
    int64_t off;
    uint32_t len; /* of the value */
    size_t auxlen;
    unsigned char *aux; /* auxlen bytes, then the value */
    const unsigned char *body;
    size_t bodycap;
} rdr;

/* Copy n bytes of the run into dst. Returns 0, 1 at the end of the run, -1. */
static int rdr_read(rdr *r, unsigned char *dst, size_t n)
{
    while (n > 0) {
        if (r->bpos == r->blen) {
            if (r->pos >= r->end) {
                return 1;
            }
            size_t want = r->end - r->pos < KQ_RBUF ? (size_t)(r->end - r->pos) : KQ_RBUF;
            ssize_t k = pread(r->fd, r->buf, want, (off_t)r->pos);
            if (k < 0 && errno == EINTR) {
                continue;
            }
            if (k <= 0) {
                return -1;
            }
            r->pos += (uint64_t)k;
            r->blen = (size_t)k;
            r->bpos = 0;
        }
        size_t take = r->blen - r->bpos < n ? r->blen - r->bpos : n;
        memcpy(dst, r->buf + r->bpos, take);
        r->bpos += take;
        dst += take;
        n -= take;
    }
    return 0;
}

/* The next record of r. Returns 0, 1 at the end, -1 on an error. */
static int rdr_next(rdr *r)
{
    unsigned char h[KQ_REC_HDR];
    int rc = rdr_read(r, h, sizeof(h));
    if (rc != 0) {
        return rc;
    }
    r->time = (int64_t)get_u64(h);
    r->part = (int32_t)get_u32(h + 8);
    r->off = (int64_t)get_u64(h + 12);
    r->len = get_u32(h + 20);
    r->auxlen = (size_t)(h[24] | h[25] << 8);
    size_t n = r->auxlen + r->len;
    if (n + 1 > r->bodycap) {
        unsigned char *b = realloc(r->aux, n + 1);
        if (b == NULL) {
            return -1;
        }
        r->aux = b;
        r->bodycap = n + 1;
    }
    r->body = r->aux + r->auxlen;
    return rdr_read(r, r->aux, n) == 0 ? 0 : -1;
}

static int rdr_less(const rdr *a, const rdr *b)
{
    return cmp_key(a->time, a->part, a->off, b->time, b->part, b->off) < 0;
}

static void heap_down(rdr **h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && rdr_less(h[l], h[m])) {
            m = l;
        }
        if (l + 1 < n && rdr_less(h[l + 1], h[m])) {
            m = l + 1;
        }
        if (m == i) {
            return;
        }
        rdr *t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* ---- digests seen at one event time (redelivered duplicates) ---- */

typedef struct digest_set {
    unsigned char (*v)[SHA256_DIGEST_LENGTH];
    unsigned char *used;
    size_t cap, n;
} digest_set;

static size_t digest_slot(const digest_set *s, const unsigned char *d)
{
    uint64_t h;
    memcpy(&h, d, sizeof(h));
    size_t i = (size_t)h & (s->cap - 1);
    while (s->used[i] && memcmp(s->v[i], d, SHA256_DIGEST_LENGTH) != 0) {
        i = (i + 1) & (s->cap - 1);
    }
    return i;
}

/* Returns 1 when added, 0 when already there, -1 out of memory. */
static int digest_set_add(digest_set *s, const unsigned char *d)
{
    if ((s->n + 1) * 2 > s->cap) {
        digest_set g = {.cap = s->cap ? s->cap * 2 : 64};
        g.v = malloc(g.cap * sizeof(*g.v));
        g.used = calloc(g.cap, 1);
        if (g.v == NULL || g.used == NULL) {
            free(g.v);
            free(g.used);
            return -1;
        }
        for (size_t i = 0; i < s->cap; i++) {
            if (s->used[i]) {
                size_t j = digest_slot(&g, s->v[i]);
                memcpy(g.v[j], s->v[i], SHA256_DIGEST_LENGTH);
                g.used[j] = 1;
                g.n++;
            }
        }
        free(s->v);
        free(s->used);
        *s = g;
    }
    size_t i = digest_slot(s, d);
    if (s->used[i]) {
        return 0;
    }
    memcpy(s->v[i], d, SHA256_DIGEST_LENGTH);
    s->used[i] = 1;
    s->n++;
    return 1;
}

static void digest_set_free(digest_set *s)
{
    free(s->v);
    free(s->used);
    memset(s, 0, sizeof(*s));
}

/* Empty it; a table grown for a crowded millisecond is given back. */
static void digest_set_clear(digest_set *s)
{
    if (s->n == 0) {
        return;
    }
    if (s->cap > 4096) {
        digest_set_free(s);
    } else {
        memset(s->used, 0, s->cap);
        s->n = 0;
    }
}

/* ---- the source ---- */

typedef struct kq_src {
    tt_evidence_source pub;
    char *brokers, *topic, *findings_topic, *spool_dir;
    tt_strlist props; /* ours (bounded prefetch), then the user's */
    size_t sort_mem;
    int64_t timeout_ms;
    int ev_built, fi_built;
    sorter ev, fi;
    strset by_incident, by_subject, by_client; /* token ids tied to the filter values */
    uint64_t unreadable, duplicates;
    char fi_note[300];
    char notes[KQ_NOTES][400];
    size_t nnotes;
} kq_src;

typedef struct read_ctx {
    kq_src *s;
    const tt_evidence_query *q;
    int failed;
    int too_long; /* a data.token_id longer than 64 KiB */
} read_ctx;

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int eq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* aux of an event: flags, then its data.token_id (may be empty). */
enum {
    AUX_INCIDENT_EVENT = 1, /* type incident.* */
    AUX_TOKEN_EVENT = 2,    /* type token.* */
    AUX_OWN_INCIDENT = 4,   /* data.incident_id is the --incident value */
    AUX_OWN_SUBJECT = 8,    /* data.subject is the --subject value */
    AUX_OWN_CLIENT = 16,    /* data.client_id is the --client value */
};

static int read_event(void *arg, const tt_kafka_msg *m)
{
    read_ctx *c = arg;
    kq_src *s = c->s;
    const tt_evidence_query *q = c->q;
    json_error_t je;
    json_t *ev = json_loadb(m->value, m->len, 0, &je);
    int64_t t;
    const char *why;
    if (ev == NULL || !json_is_object(ev) ||
        tt_time_from_json(json_object_get(ev, "time"), &t, &why) != 0) {
        json_decref(ev);
        s->unreadable++;
        return 0;
    }
    int rc = 0;
    json_t *data = json_object_get(ev, "data");
    const char *tok = jstr(data, "token_id");
    const char *type = jstr(ev, "type");
    unsigned char flags = 0;
    if (type && strncmp(type, "incident.", 9) == 0) {
        flags |= AUX_INCIDENT_EVENT;
    }
    if (type && strncmp(type, "token.", 6) == 0) {
        flags |= AUX_TOKEN_EVENT;
    }
    if (q->incident_id && eq(jstr(data, "incident_id"), q->incident_id)) {
        flags |= AUX_OWN_INCIDENT;
    }
    if (q->subject && eq(jstr(data, "subject"), q->subject)) {
        flags |= AUX_OWN_SUBJECT;
    }
    if (q->client_id && eq(jstr(data, "client_id"), q->client_id)) {
        flags |= AUX_OWN_CLIENT;
    }
    /* The token sets: every event in the topic (any time) that ties a
     * token_id to a filter value, as the SQLite subqueries do. */
    if (tok != NULL) {
        if (flags & AUX_OWN_INCIDENT) {
            rc |= strset_add(&s->by_incident, tok);
        }
        if (flags & AUX_OWN_SUBJECT) {
            rc |= strset_add(&s->by_subject, tok);
        }
        if (flags & AUX_OWN_CLIENT) {
            rc |= strset_add(&s->by_client, tok);
        }
    }
    if (rc == 0 && t >= q->from_ms && t < q->to_ms) {
        /* With a filter, what it needs goes along in aux: the merge then
         * decides without parsing the event again. */
        unsigned char small[256], *aux = small;
        size_t auxlen = 0, toklen = tok ? strlen(tok) : 0;
        if (q->incident_id || q->subject || q->client_id) {
            auxlen = 1 + toklen + 1; /* flags, token id, NUL */
            if (auxlen > UINT16_MAX) {
                c->too_long = 1;
                json_decref(ev);
                return 1;
            }
            aux = auxlen > sizeof(small) ? malloc(auxlen) : small;
            if (aux == NULL) {
                json_decref(ev);
                c->failed = 1;
                return 1;
            }
            aux[0] = flags;
            memcpy(aux + 1, tok ? tok : "", toklen + 1);
        }
        rc = sorter_add(&s->ev, t, m->partition, m->offset, aux, auxlen, m->value, m->len);
        if (aux != small) {
            free(aux);
        }
    }
    json_decref(ev);
    if (rc != 0) {
        c->failed = 1;
        return 1;
    }
    return 0;
}

/* The SQLite filter (tt_evidence_sqlite.c events_sql) on one event's aux. */
static int event_matches(kq_src *s, const tt_evidence_query *q, const unsigned char *aux,
                         size_t auxlen)
{
    if (auxlen < 1) {
        return 0;
    }
    unsigned flags = aux[0];
    const char *tok = (const char *)aux + 1; /* NUL-terminated in aux */
    int has_tok = auxlen > 2;
    int is_inc = (flags & AUX_INCIDENT_EVENT) != 0, is_tok = (flags & AUX_TOKEN_EVENT) != 0;
    int ok = 1;
    if (q->incident_id) {
        ok = (is_inc && (flags & AUX_OWN_INCIDENT)) ||
             (is_tok &&
              ((flags & AUX_OWN_INCIDENT) || (has_tok && strset_has(&s->by_incident, tok))));
    }
    if (ok && q->subject) {
        ok = is_inc || (flags & AUX_OWN_SUBJECT) || (has_tok && strset_has(&s->by_subject, tok));
    }
    if (ok && q->client_id) {
        ok = is_inc || (flags & AUX_OWN_CLIENT) || (has_tok && strset_has(&s->by_client, tok));
    }
    return ok;
}

/* The SQLite findings filter on one finding (the analyzer's JSON). */
static int finding_matches(kq_src *s, const tt_evidence_query *q, json_t *f)
{
    const char *tok = jstr(f, "token_id");
    if (q->incident_id && !eq(jstr(f, "incident_id"), q->incident_id) &&
        !(tok && strset_has(&s->by_incident, tok))) {
        return 0;
    }
    if (q->subject && !eq(jstr(f, "subject"), q->subject) &&
        !(tok && strset_has(&s->by_subject, tok))) {
        return 0;
    }
    if (q->client_id && !eq(jstr(f, "client_id"), q->client_id) &&
        !(tok && strset_has(&s->by_client, tok))) {
        return 0;
    }
    return 1;
}

static int read_finding(void *arg, const tt_kafka_msg *m)
{
    read_ctx *c = arg;
    kq_src *s = c->s;
    json_t *f = json_loadb(m->value, m->len, 0, NULL);
    int64_t t = 0;
    const char *why;
    json_t *tm = json_object_get(f, "time_ms");
    int ok = 0;
    if (json_is_integer(tm)) {
        t = json_integer_value(tm);
        ok = 1;
    } else if (f != NULL) {
        ok = tt_time_from_json(json_object_get(f, "time"), &t, &why) == 0;
    }
    if (ok && t >= c->q->from_ms && t < c->q->to_ms && finding_matches(s, c->q, f) &&
        sorter_add(&s->fi, t, m->partition, m->offset, NULL, 0, m->value, m->len) != 0) {
        c->failed = 1;
        json_decref(f);
        return 1;
    }
    json_decref(f);
    return 0;
}

static int64_t read_topic(kq_src *s, const char *topic, int64_t since, read_ctx *c,
                          int (*cb)(void *, const tt_kafka_msg *), char *err, size_t errlen)
{
    tt_kafka_read_opts ko = {.brokers = s->brokers,
                             .topic = topic,
                             .props = &s->props,
                             .since_ms = since,
                             .timeout_ms = s->timeout_ms};
    int64_t n = tt_kafka_read(&ko, cb, c, err, errlen);
    if (n >= 0 && c->too_long) {
        snprintf(err, errlen, "%s: an event's data.token_id is longer than 64 KiB", topic);
        return -1;
    }
    if (n >= 0 && c->failed) {
        snprintf(err, errlen, "spooling %s: %s", topic, errno ? strerror(errno) : "out of memory");
        return -1;
    }
    return n;
}

static int build_events(kq_src *s, const tt_evidence_query *q, char *err, size_t errlen)
{
    if (s->ev_built) {
        return 0;
    }
    if (sorter_init(&s->ev, s->spool_dir, s->sort_mem, err, errlen) != 0) {
        return -1;
    }
    int filtered = q->incident_id || q->subject || q->client_id;
    read_ctx c = {.s = s, .q = q};
    errno = 0;
    /* The token sets need the whole topic; without filters the read starts
     * at the first message whose timestamp (the event time) is >= --from. */
    if (read_topic(s, s->topic, filtered ? INT64_MIN : q->from_ms, &c, read_event, err, errlen) <
        0) {
        return -1;
    }
    if (sorter_finish(&s->ev) != 0) {
        snprintf(err, errlen, "sort file: %s", errno ? strerror(errno) : "out of memory");
        return -1;
    }
    s->ev_built = 1;
    return 0;
}

/* Merge the runs of so and hand each record to cb, skipping byte-identical
 * records of the same time (redelivered events) and, with match, the ones
 * it rejects. Returns the count or -1. */
static int64_t replay(kq_src *s, sorter *so, const tt_evidence_query *q, int filter,
                      tt_evidence_item_cb cb, void *ctx, char *err, size_t errlen)
{
    rdr **heap = calloc(so->nruns ? so->nruns : 1, sizeof(*heap));
    size_t n = 0;
    int64_t count = 0;
    uint64_t dups = 0;
    int rc = heap ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < so->nruns; i++) {
        rdr *r = calloc(1, sizeof(*r));
        if (r == NULL) {
            rc = -1;
            break;
        }
        r->fd = so->fd;
        r->pos = so->runs[i].start;
        r->end = so->runs[i].end;
        int k = rdr_next(r);
        if (k == 0) {
            heap[n++] = r;
        } else {
            free(r->aux);
            free(r);
            rc = k < 0 ? -1 : 0;
        }
    }
    for (size_t i = n; i-- > 0;) {
        heap_down(heap, n, i);
    }
    /* Digests of the records seen at the current time, for duplicates. */
    digest_set seen = {0};
    int64_t seen_time = INT64_MIN;
    while (rc == 0 && n > 0) {
        rdr *r = heap[0];
        unsigned char d[SHA256_DIGEST_LENGTH];
        SHA256(r->body, r->len, d);
        if (r->time != seen_time) {
            seen_time = r->time;
            digest_set_clear(&seen);
        }
        int added = digest_set_add(&seen, d);
        if (added < 0) {
            rc = -1;
            break;
        }
        if (added == 0) {
            dups++;
        } else {
            if (!filter || event_matches(s, q, r->aux, r->auxlen)) {
                if (cb(ctx, (const char *)r->body, r->len) != 0) {
                    snprintf(err, errlen, "stopped at event %lld", (long long)count + 1);
                    rc = -2;
                    break;
                }
                count++;
            }
        }
        int k = rdr_next(r);
        if (k != 0) {
            rc = k < 0 ? -1 : 0;
            free(r->aux);
            free(r);
            heap[0] = heap[--n];
        }
        heap_down(heap, n, 0);
    }
    if (rc == -1) {
        snprintf(err, errlen, "reading the sort file: %s", errno ? strerror(errno) : "failed");
    }
    for (size_t i = 0; i < n; i++) {
        free(heap[i]->aux);
        free(heap[i]);
    }
    free(heap);
    digest_set_free(&seen);
    s->duplicates = dups;
    return rc == 0 ? count : -1;
}

static int64_t kq_each_event(tt_evidence_source *src, const tt_evidence_query *q,
                             tt_evidence_item_cb cb, void *ctx, char *err, size_t errlen)
{
    kq_src *s = (kq_src *)src;
    if (build_events(s, q, err, errlen) != 0) {
        return -1;
    }
    return replay(s, &s->ev, q, q->incident_id || q->subject || q->client_id, cb, ctx, err, errlen);
}

static int64_t kq_each_finding(tt_evidence_source *src, const tt_evidence_query *q,
                               tt_evidence_item_cb cb, void *ctx, char *note, size_t notelen,
                               char *err, size_t errlen)
{
    kq_src *s = (kq_src *)src;
    if (build_events(s, q, err, errlen) != 0) { /* the token sets */
        return -1;
    }
    if (!s->fi_built) {
        if (sorter_init(&s->fi, s->spool_dir, s->sort_mem, err, errlen) != 0) {
            return -1;
        }
        read_ctx c = {.s = s, .q = q};
        char rerr[512] = "";
        errno = 0;
        /* Findings carry their own time, not necessarily the message's:
         * the whole topic is read. */
        int64_t n =
            read_topic(s, s->findings_topic, INT64_MIN, &c, read_finding, rerr, sizeof(rerr));
        if (n < 0 && !c.failed &&
            strstr(rerr, rd_kafka_err2str(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)) != NULL) {
            snprintf(s->fi_note, sizeof(s->fi_note),
                     "the Kafka topic '%.200s' does not exist (no findings were produced to "
                     "Kafka)",
                     s->findings_topic);
        } else if (n < 0) {
            snprintf(err, errlen, "%s", rerr);
            return -1;
        }
        if (sorter_finish(&s->fi) != 0) {
            snprintf(err, errlen, "sort file: %s", errno ? strerror(errno) : "out of memory");
            return -1;
        }
        s->fi_built = 1;
    }
    if (s->fi_note[0]) {
        snprintf(note, notelen, "%s", s->fi_note);
        return 0;
    }
    uint64_t ev_dups = s->duplicates;
    int64_t n = replay(s, &s->fi, q, 0, cb, ctx, err, errlen);
    s->duplicates = ev_dups;
    return n;
}

static const char *kq_note(tt_evidence_source *src, size_t i)
{
    kq_src *s = (kq_src *)src;
    if (i == 0) {
        s->nnotes = 0;
        snprintf(s->notes[s->nnotes++], sizeof(s->notes[0]),
                 "events read from the Kafka topic '%.200s' up to its high watermark at the "
                 "start of the export, ordered by event time, then partition and offset",
                 s->topic);
        if (s->duplicates > 0) {
            snprintf(s->notes[s->nnotes++], sizeof(s->notes[0]),
                     "%llu redelivered message(s) (byte-identical to an event of the same time) "
                     "were exported once",
                     (unsigned long long)s->duplicates);
        }
        if (s->unreadable > 0) {
            snprintf(s->notes[s->nnotes++], sizeof(s->notes[0]),
                     "%llu message(s) in the topic that are not tokentrail events were skipped",
                     (unsigned long long)s->unreadable);
        }
    }
    return i < s->nnotes ? s->notes[i] : NULL;
}

static void kq_close(tt_evidence_source *src)
{
    kq_src *s = (kq_src *)src;
    if (s == NULL) {
        return;
    }
    sorter_free(&s->ev);
    sorter_free(&s->fi);
    strset_free(&s->by_incident);
    strset_free(&s->by_subject);
    strset_free(&s->by_client);
    free(s->brokers);
    free(s->topic);
    free(s->findings_topic);
    free(s->spool_dir);
    tt_strlist_free(&s->props);
    free(s);
}

tt_evidence_source *tt_evidence_source_kafka(const tt_evidence_kafka_opts *o, char *err,
                                             size_t errlen)
{
    kq_src *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->ev.fd = s->fi.fd = -1;
    s->brokers = strdup(o->brokers ? o->brokers : "");
    s->topic = strdup(o->topic ? o->topic : TT_KAFKA_DEFAULT_TOPIC);
    s->findings_topic = strdup(o->findings_topic ? o->findings_topic : KQ_DEFAULT_FINDINGS_TOPIC);
    s->spool_dir = strdup(o->spool_dir ? o->spool_dir : ".");
    /* librdkafka prefetches up to 64 MiB and fetches up to 50 MiB at once by
     * default; bound both so the export's memory stays small. -X wins. */
    int perr = tt_strlist_add(&s->props, "queued.max.messages.kbytes=8192") |
               tt_strlist_add(&s->props, "fetch.max.bytes=8388608");
    const tt_strlist *up = o->props;
    for (size_t i = 0; up != NULL && i < up->n; i++) {
        perr |= tt_strlist_add(&s->props, up->v[i]);
    }
    s->sort_mem = o->sort_mem ? o->sort_mem : KQ_SORT_MEM;
    s->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
    s->pub.kind = "kafka";
    s->pub.location = s->topic;
    s->pub.each_event = kq_each_event;
    s->pub.each_finding = kq_each_finding;
    s->pub.close = kq_close;
    s->pub.note = kq_note;
    s->pub.impl = s;
    if (!s->brokers || !s->topic || !s->findings_topic || !s->spool_dir || perr != 0) {
        snprintf(err, errlen, "out of memory");
        kq_close(&s->pub);
        return NULL;
    }
    return &s->pub;
}
