/* tt_engine.c - token/incident state, reorder buffer, timers and the checks
 * for lingering access and scope drift.
 *
 * Memory layout (the budget is ~300 bytes per token, see docs/analyze.md):
 *   - tokens live in a slab (`toks`, stable uint32 indexes, free list) and are
 *     found through an open-addressing table of 8-byte slots (tag | index);
 *     the key is the 32-byte binary SHA-256 fingerprint;
 *   - client, subject, incident, scope and service strings are interned to
 *     uint32 ids; a token's granted scopes are one interned *set* id (tokens
 *     share a handful of distinct sets), and the scopes it exercised are a
 *     64-bit mask over the set's positions;
 *   - times are int64 ms; evidence references are the only per-token strings.
 *
 * Ordering: events wait in a min-heap keyed by (time, seq) and are released
 * once they are behind the clock; token timers live in a second min-heap
 * (lazily invalidated). A timer due at D fires before any event with time > D
 * and after every event with time <= D, so the result does not depend on the
 * order in which events arrived (within the lateness). */
#include "tt_engine.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "tt_buf.h"
#include "tt_intern.h"
#include "tt_time.h"

#define NO_TIME INT64_MIN
#define NEVER INT64_MAX
#define REF_MAX (TT_EV_MAX_SOURCE + TT_EV_MAX_ID + 2)
#define BLOB_MAX (1 << 20)
/* A token whose partition is not known (a checkpoint from before partitions
 * were recorded, or a source without partitions). */
#define PART_NONE 0xffff
#define MASK_BITS 64 /* scopes beyond the 64th of a token are not tracked for unused_scopes */

/* token flags */
enum {
    T_REVOKED = 1 << 0,
    T_ENDED = 1 << 1,
    T_REFRESH = 1 << 2,
    T_UNATTRIBUTED = 1 << 3, /* a use did not say which scopes it needed */
    T_LING_IDLE = 1 << 4,
    T_LING_OUTLIVED = 1 << 5,
    T_LING_TTL = 1 << 6,
    T_DIRTY = 1 << 7, /* not persisted (in memory only) */
    T_RAW_ID = 1 << 8,
};
#define T_PERSIST_MASK                                                                             \
    (T_REVOKED | T_ENDED | T_REFRESH | T_UNATTRIBUTED | T_LING_IDLE | T_LING_OUTLIVED |            \
     T_LING_TTL | T_RAW_ID)

typedef struct tok {
    uint8_t key[32];
    int64_t issued_at, expires_at, revoked_at, last_active, ended_at;
    int64_t sched; /* deadline of its live timer entry; NEVER = none */
    uint64_t used_mask;
    uint32_t client, subject, incident, scopeset; /* intern ids; 0 = none */
    uint32_t gen;                                 /* bumped when the slot is reused */
    uint16_t flags, reported;     /* reported: bit per finding kind already emitted */
    uint16_t part;                /* source partition of its events; PART_NONE = unknown */
    char *raw_id;                 /* token_id when it is not a sha256 fingerprint */
    char *ev_issued, *ev_revoked; /* evidence: "source/id" */
} tok;

typedef struct incident {
    uint32_t id; /* intern id of incident_id */
    int opened, dirty;
    int64_t resolved_at; /* NO_TIME while open */
    uint32_t *services;
    size_t n_services;
    char *ev_opened, *ev_resolved;
    uint32_t *toks; /* slab indexes of its tokens (may hold stale ones) */
    size_t n_toks, cap_toks;
} incident;

typedef struct timer {
    int64_t at;
    uint32_t idx, gen;
} timer;

typedef struct scope_info {
    uint8_t done, known;
    uint8_t access;
    uint32_t service; /* intern id */
    int64_t ttl;
} scope_info;

/* A set of 64-bit hashes (0 is never stored). */
typedef struct hset {
    uint64_t *v;
    size_t mask, n;
} hset;

typedef struct win {
    int64_t t;
    uint64_t h;
} win;

/* A reorder-buffer entry: the heap key sits next to the pointer, so sifting
 * compares without touching the (cache-cold) event. */
typedef struct pent {
    int64_t t, seq;
    tt_aev *ev;
    uint64_t home; /* its token's slot hash (key_home), or 0: for prefetching */
} pent;

/* Buffered events up to this size come from a free list of equal blocks
 * (token events take 260-340 bytes) instead of malloc/free per event. */
#define EV_BLOCK 384

struct tt_engine {
    const tt_policy *pol;
    int64_t lateness;
    tt_engine_finding_cb cb;
    void *cb_ctx;

    tt_intern *str;  /* strings: clients, subjects, scopes, services, incidents */
    tt_intern *sets; /* scope sets: arrays of uint32 string ids */

    tok *toks;
    uint32_t n_toks;
    size_t cap_toks;
    uint32_t *free_idx;
    size_t n_free, cap_free;
    uint64_t *slots; /* (tag << 32) | (idx + 1); 0 = empty */
    size_t slot_mask;
    uint64_t live;

    incident *incs;
    size_t n_incs, cap_incs;
    uint32_t *inc_of; /* string id -> incident index + 1 */
    size_t cap_inc_of;

    scope_info *sinfo; /* by string id */
    size_t cap_sinfo;

    hset history;       /* (client id << 32) | scope id ever granted */
    uint64_t *new_hist; /* history entries not yet saved */
    size_t n_new_hist, cap_new_hist;

    uint32_t *dirty; /* token indexes changed since the last save */
    size_t n_dirty, cap_dirty;
    uint8_t (*deleted)[32]; /* evicted token keys not yet deleted from disk */
    size_t n_deleted, cap_deleted;
    size_t n_saved_dirty, n_saved_deleted, n_saved_hist; /* what the last save wrote */

    pent *pend; /* reorder buffer: min-heap by (time, seq) */
    size_t n_pend, cap_pend;
    int64_t *pend_gone; /* seqs of saved buffered events released since */
    size_t n_gone, cap_gone, n_saved_gone;
    tt_aev **pend_saving; /* written by the last save, marked saved by save_done */
    void *ev_free;        /* free EV_BLOCK blocks, linked through their first bytes */
    size_t n_saving, cap_saving;
    timer *timers; /* min-heap by at */
    size_t n_timers, cap_timers;

    hset seen; /* dedup: hashes of buffered and recent events */
    win *ring; /* recent released events, oldest first */
    size_t ring_head, ring_n, ring_cap;

    int64_t max_seen, now, clock;
    int64_t part_mod; /* seq % part_mod is an event's partition; 0 = no partitions */
    int oom;
    tt_engine_stats st;
};

/* ---------------------------------------------------------------- helpers */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) {
        return 0;
    }
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        c *= 2;
    }
    void *q = realloc(*p, c * elem);
    if (q == NULL) {
        return -1;
    }
    memset((char *)q + *cap * elem, 0, (c - *cap) * elem);
    *p = q;
    *cap = c;
    return 0;
}

static int64_t sat_add(int64_t a, int64_t b)
{
    if (a == NO_TIME) {
        return NO_TIME;
    }
    return a > NEVER - b ? NEVER : a + b;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* ---------------------------------------------------------------- hset */

static int hset_init(hset *s)
{
    s->v = calloc(64, sizeof(uint64_t));
    s->mask = 63;
    s->n = 0;
    return s->v ? 0 : -1;
}

static int hset_has(const hset *s, uint64_t h)
{
    for (size_t i = h & s->mask;; i = (i + 1) & s->mask) {
        if (s->v[i] == h) {
            return 1;
        }
        if (s->v[i] == 0) {
            return 0;
        }
    }
}

static int hset_add(hset *s, uint64_t h)
{
    if ((s->n + 1) * 2 > s->mask + 1) {
        size_t size = (s->mask + 1) * 2;
        uint64_t *v = calloc(size, sizeof(uint64_t));
        if (v == NULL) {
            return -1;
        }
        for (size_t i = 0; i <= s->mask; i++) {
            if (s->v[i]) {
                size_t j = s->v[i] & (size - 1);
                while (v[j]) {
                    j = (j + 1) & (size - 1);
                }
                v[j] = s->v[i];
            }
        }
        free(s->v);
        s->v = v;
        s->mask = size - 1;
    }
    size_t i = h & s->mask;
    while (s->v[i] && s->v[i] != h) {
        i = (i + 1) & s->mask;
    }
    if (s->v[i] == 0) {
        s->v[i] = h;
        s->n++;
    }
    return 0;
}

/* Backward-shift deletion keeps linear probing tombstone-free. */
static void hset_del(hset *s, uint64_t h)
{
    size_t i = h & s->mask;
    while (s->v[i] != h) {
        if (s->v[i] == 0) {
            return;
        }
        i = (i + 1) & s->mask;
    }
    s->v[i] = 0;
    s->n--;
    for (size_t j = (i + 1) & s->mask; s->v[j]; j = (j + 1) & s->mask) {
        size_t home = s->v[j] & s->mask;
        /* move v[j] into the hole when its home is not in (i, j] */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            s->v[i] = s->v[j];
            s->v[j] = 0;
            i = j;
        }
    }
}

/* ---------------------------------------------------------------- tokens */

/* Lowercase hex digit value + 1; 0 for every other byte (the fingerprint
 * alphabet is exactly tt_is_fingerprint's: 0-9 a-f). */
static const uint8_t hex1[256] = {
    ['0'] = 1, ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

/* Decode a "sha256:" + 64 lowercase hex fingerprint in one pass (the check
 * and the decode were two, and this runs for every token event). 0 when
 * token_id is not a fingerprint (key is then garbage). */
static int fingerprint_key(const char *token_id, uint8_t key[32])
{
    if (strncmp(token_id, "sha256:", 7) != 0) {
        return 0;
    }
    const unsigned char *h = (const unsigned char *)token_id + 7;
    for (int i = 0; i < 32; i++) {
        unsigned hi = hex1[h[2 * i]];
        if (hi == 0) {
            return 0; /* also stops at the NUL of a short id */
        }
        unsigned lo = hex1[h[2 * i + 1]];
        if (lo == 0) {
            return 0;
        }
        key[i] = (uint8_t)((hi - 1) << 4 | (lo - 1));
    }
    return h[64] == '\0';
}

/* The 32-byte key of a token_id: the fingerprint's bytes, or SHA-256 of
 * "raw:" + id for ids that are not fingerprints (so they cannot collide with one). */
static int token_key(const char *token_id, uint8_t key[32])
{
    if (fingerprint_key(token_id, key)) {
        return 0;
    }
    unsigned int n = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(md, "raw:", 4) == 1 &&
             EVP_DigestUpdate(md, token_id, strlen(token_id)) == 1 &&
             EVP_DigestFinal_ex(md, key, &n) == 1;
    EVP_MD_CTX_free(md);
    return ok ? 1 : -1;
}

static void token_id_str(const tok *t, char out[TT_FINGERPRINT_BUFSZ], const char **res)
{
    if (t->flags & T_RAW_ID) {
        *res = t->raw_id;
        return;
    }
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < 32; i++) {
        out[7 + 2 * i] = hex[t->key[i] >> 4];
        out[8 + 2 * i] = hex[t->key[i] & 15];
    }
    out[71] = '\0';
    *res = out;
}

static uint64_t key_home(const uint8_t key[32])
{
    uint64_t h;
    memcpy(&h, key + 8, 8);
    return h;
}

static uint32_t key_tag(const uint8_t key[32])
{
    uint32_t t;
    memcpy(&t, key, 4);
    return t;
}

/* key_home of a fingerprint token_id without decoding all of it; 0 when it
 * is not one (only a prefetch hint: a wrong value costs nothing). */
static uint64_t token_home(const char *token_id)
{
    if (token_id == NULL || strncmp(token_id, "sha256:", 7) != 0) {
        return 0;
    }
    const unsigned char *h = (const unsigned char *)token_id + 7;
    for (int i = 0; i < 16; i++) {
        if (hex1[h[i]] == 0) {
            return 0; /* also stops at the NUL of a short id */
        }
    }
    uint8_t b[8];
    for (int i = 0; i < 8; i++) {
        unsigned hi = hex1[h[16 + 2 * i]], lo = hex1[h[17 + 2 * i]];
        if (hi == 0 || lo == 0) {
            return 0;
        }
        b[i] = (uint8_t)((hi - 1) << 4 | (lo - 1));
    }
    uint64_t v;
    memcpy(&v, b, 8);
    return v;
}

static uint32_t tok_find(const tt_engine *e, const uint8_t key[32])
{
    uint32_t tag = key_tag(key);
    for (size_t i = key_home(key) & e->slot_mask;; i = (i + 1) & e->slot_mask) {
        uint64_t s = e->slots[i];
        if (s == 0) {
            return UINT32_MAX;
        }
        uint32_t idx = (uint32_t)(s & 0xffffffffu) - 1;
        if ((uint32_t)(s >> 32) == tag && memcmp(e->toks[idx].key, key, 32) == 0) {
            return idx;
        }
    }
}

static void slot_put(uint64_t *slots, size_t mask, const uint8_t key[32], uint32_t idx)
{
    size_t i = key_home(key) & mask;
    while (slots[i]) {
        i = (i + 1) & mask;
    }
    slots[i] = (uint64_t)key_tag(key) << 32 | (uint64_t)(idx + 1);
}

/* A new zeroed token slot with this key, indexed. UINT32_MAX when out of memory. */
static uint32_t tok_insert(tt_engine *e, const uint8_t key[32])
{
    if ((e->live + 1) * 10 > (e->slot_mask + 1) * 7) {
        size_t size = (e->slot_mask + 1) * 2;
        uint64_t *s = calloc(size, sizeof(uint64_t));
        if (s == NULL) {
            return UINT32_MAX;
        }
        for (size_t i = 0; i <= e->slot_mask; i++) {
            if (e->slots[i]) {
                uint32_t idx = (uint32_t)(e->slots[i] & 0xffffffffu) - 1;
                slot_put(s, size - 1, e->toks[idx].key, idx);
            }
        }
        free(e->slots);
        e->slots = s;
        e->slot_mask = size - 1;
    }
    uint32_t idx;
    if (e->n_free > 0) {
        idx = e->free_idx[--e->n_free];
    } else {
        if (e->n_toks == UINT32_MAX - 1 ||
            grow((void **)&e->toks, &e->cap_toks, e->n_toks + 1, sizeof(tok)) != 0) {
            return UINT32_MAX;
        }
        idx = e->n_toks++;
    }
    tok *t = &e->toks[idx];
    uint32_t gen = t->gen + 1;
    memset(t, 0, sizeof(*t));
    t->gen = gen;
    memcpy(t->key, key, 32);
    t->revoked_at = NO_TIME;
    t->ended_at = NO_TIME;
    t->sched = NEVER;
    slot_put(e->slots, e->slot_mask, key, idx);
    e->live++;
    return idx;
}

static void tok_unindex(tt_engine *e, uint32_t idx)
{
    const uint8_t *key = e->toks[idx].key;
    size_t i = key_home(key) & e->slot_mask;
    while ((uint32_t)(e->slots[i] & 0xffffffffu) != idx + 1) {
        i = (i + 1) & e->slot_mask;
    }
    e->slots[i] = 0;
    for (size_t j = (i + 1) & e->slot_mask; e->slots[j]; j = (j + 1) & e->slot_mask) {
        uint32_t jdx = (uint32_t)(e->slots[j] & 0xffffffffu) - 1;
        size_t home = key_home(e->toks[jdx].key) & e->slot_mask;
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            e->slots[i] = e->slots[j];
            e->slots[j] = 0;
            i = j;
        }
    }
}

static void mark_dirty(tt_engine *e, uint32_t idx)
{
    tok *t = &e->toks[idx];
    if (t->flags & T_DIRTY) {
        return;
    }
    if (grow((void **)&e->dirty, &e->cap_dirty, e->n_dirty + 1, sizeof(uint32_t)) != 0) {
        e->oom = 1;
        return;
    }
    t->flags |= T_DIRTY;
    e->dirty[e->n_dirty++] = idx;
}

/* ---------------------------------------------------------------- interning */

static uint32_t sid(tt_engine *e, const char *s)
{
    if (s == NULL) {
        return 0;
    }
    uint32_t id = tt_intern_get(e->str, s, strlen(s));
    if (id == 0) {
        e->oom = 1;
    }
    return id;
}

static const char *sstr(const tt_engine *e, uint32_t id)
{
    return id ? tt_intern_str(e->str, id) : NULL;
}

/* The scope ids of a set, in scope-name order. Returns the count. */
static size_t set_ids(const tt_engine *e, uint32_t set, uint32_t out[TT_EV_MAX_LIST])
{
    size_t n = tt_intern_len(e->sets, set) / 4;
    memcpy(out, tt_intern_str(e->sets, set), n * 4);
    return n;
}

static uint32_t set_of(tt_engine *e, const char *const *scopes, size_t n)
{
    uint32_t ids[TT_EV_MAX_LIST];
    for (size_t i = 0; i < n; i++) {
        ids[i] = sid(e, scopes[i]);
    }
    uint32_t id = tt_intern_get(e->sets, ids, n * 4);
    if (id == 0) {
        e->oom = 1;
    }
    return id;
}

static const scope_info *scope_of(tt_engine *e, uint32_t id)
{
    static const scope_info none = {1, 0, 0, 0, 0};
    if (grow((void **)&e->sinfo, &e->cap_sinfo, (size_t)id + 1, sizeof(scope_info)) != 0) {
        e->oom = 1;
        return &none;
    }
    scope_info *si = &e->sinfo[id];
    if (!si->done) {
        const tt_policy_scope *ps = tt_policy_scope_find(e->pol, sstr(e, id));
        si->done = 1;
        si->known = ps != NULL;
        si->access = ps ? (uint8_t)ps->access : 0;
        si->service = ps ? sid(e, ps->service) : 0;
        si->ttl = tt_policy_scope_ttl(e->pol, sstr(e, id));
    }
    return si;
}

/* ---------------------------------------------------------------- incidents */

static incident *inc_get(tt_engine *e, uint32_t id, int create)
{
    if (id == 0) {
        return NULL;
    }
    if (id < e->cap_inc_of && e->inc_of[id]) {
        return &e->incs[e->inc_of[id] - 1];
    }
    if (!create) {
        return NULL;
    }
    if (grow((void **)&e->inc_of, &e->cap_inc_of, (size_t)id + 1, sizeof(uint32_t)) != 0 ||
        grow((void **)&e->incs, &e->cap_incs, e->n_incs + 1, sizeof(incident)) != 0) {
        e->oom = 1;
        return NULL;
    }
    incident *in = &e->incs[e->n_incs];
    memset(in, 0, sizeof(*in));
    in->id = id;
    in->resolved_at = NO_TIME;
    e->inc_of[id] = (uint32_t)++e->n_incs;
    return in;
}

static void inc_add_tok(tt_engine *e, incident *in, uint32_t idx)
{
    if (grow((void **)&in->toks, &in->cap_toks, in->n_toks + 1, sizeof(uint32_t)) != 0) {
        e->oom = 1;
        return;
    }
    in->toks[in->n_toks++] = idx;
}

static int inc_has_service(const incident *in, uint32_t svc)
{
    for (size_t i = 0; i < in->n_services; i++) {
        if (in->services[i] == svc) {
            return 1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- heaps */

static int pend_less(const pent *a, const pent *b)
{
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static int pend_push(tt_engine *e, tt_aev *ev)
{
    if (grow((void **)&e->pend, &e->cap_pend, e->n_pend + 1, sizeof(pent)) != 0) {
        return -1;
    }
    pent x = {ev->time_ms, ev->seq, ev, token_home(ev->token_id)};
    size_t i = e->n_pend++;
    while (i > 0 && pend_less(&x, &e->pend[(i - 1) / 2])) {
        e->pend[i] = e->pend[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    e->pend[i] = x;
    return 0;
}

static tt_aev *pend_pop(tt_engine *e)
{
    tt_aev *top = e->pend[0].ev;
    pent last = e->pend[--e->n_pend];
    size_t i = 0, n = e->n_pend;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) {
            break;
        }
        if (c + 1 < n && pend_less(&e->pend[c + 1], &e->pend[c])) {
            c++;
        }
        if (!pend_less(&e->pend[c], &last)) {
            break;
        }
        e->pend[i] = e->pend[c];
        i = c;
    }
    if (n > 0) {
        e->pend[i] = last;
    }
    return top;
}

static void timer_push(tt_engine *e, timer tm)
{
    if (grow((void **)&e->timers, &e->cap_timers, e->n_timers + 1, sizeof(timer)) != 0) {
        e->oom = 1;
        return;
    }
    size_t i = e->n_timers++;
    while (i > 0 && tm.at < e->timers[(i - 1) / 2].at) {
        e->timers[i] = e->timers[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    e->timers[i] = tm;
}

static timer timer_pop(tt_engine *e)
{
    timer top = e->timers[0];
    timer last = e->timers[--e->n_timers];
    size_t i = 0, n = e->n_timers;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) {
            break;
        }
        if (c + 1 < n && e->timers[c + 1].at < e->timers[c].at) {
            c++;
        }
        if (e->timers[c].at >= last.at) {
            break;
        }
        e->timers[i] = e->timers[c];
        i = c;
    }
    if (n > 0) {
        e->timers[i] = last;
    }
    return top;
}

/* ---------------------------------------------------------------- findings */

typedef struct emit_args {
    const char *scopes[TT_FINDING_MAX_SCOPES];
    size_t n_scopes;
    const char *ev[TT_FINDING_MAX_EVIDENCE];
    size_t n_ev;
} emit_args;

/* Start an emit_args with one piece of evidence (or none). Only the counted
 * entries are ever read, so the 2 KB scope array is left uninitialised: these
 * are set up for every issued and every ended token, and zeroing them was a
 * visible share of the run. */
static void args_init(emit_args *a, const char *ev)
{
    a->n_scopes = 0;
    a->ev[0] = ev;
    a->n_ev = ev ? 1 : 0;
}

static void emit(tt_engine *e, tt_finding_kind k, int64_t when, tok *t, uint32_t inc_id,
                 const emit_args *a, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static void emit(tt_engine *e, tt_finding_kind k, int64_t when, tok *t, uint32_t inc_id,
                 const emit_args *a, const char *fmt, ...)
{
    tt_finding f;
    memset(&f, 0, sizeof(f));
    char tid[TT_FINGERPRINT_BUFSZ];
    f.kind = k;
    f.severity = tt_finding_kind_severity(k);
    f.time_ms = when;
    if (t != NULL) {
        token_id_str(t, tid, &f.token_id);
        f.client_id = sstr(e, t->client);
        f.subject = sstr(e, t->subject);
        inc_id = inc_id ? inc_id : t->incident;
        t->reported |= (uint16_t)(1u << k);
    }
    f.incident_id = sstr(e, inc_id);
    for (size_t i = 0; i < a->n_scopes; i++) {
        f.scopes[f.n_scopes++] = a->scopes[i];
    }
    for (size_t i = 0; i < a->n_ev; i++) {
        if (a->ev[i] != NULL) {
            f.evidence[f.n_evidence++] = a->ev[i];
        }
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f.message, sizeof(f.message), fmt, ap);
    va_end(ap);
    tt_finding_make_id(&f);
    e->st.findings[k]++;
    if (e->cb) {
        e->cb(e->cb_ctx, &f);
    }
}

static void join(const char *const *v, size_t n, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out + len, cap - len, "%s%s", i ? " " : "", v[i]);
        if (w < 0 || (size_t)w >= cap - len) {
            if (cap > 4) {
                memcpy(out + cap - 4, "...", 4);
            }
            return;
        }
        len += (size_t)w;
    }
}

static const char *short_tok(const tok *t, char buf[32])
{
    char tid[TT_FINGERPRINT_BUFSZ];
    const char *id;
    token_id_str(t, tid, &id);
    snprintf(buf, 32, "%.19s", id);
    return buf;
}

/* ---------------------------------------------------------------- lingering gauges */

static void ling_set(tt_engine *e, tok *t, uint16_t flag, tt_finding_kind k)
{
    if (!(t->flags & flag)) {
        t->flags |= flag;
        e->st.lingering[k]++;
    }
}

static void ling_clear(tt_engine *e, tok *t, uint16_t flag, tt_finding_kind k)
{
    if (t->flags & flag) {
        t->flags &= (uint16_t)~flag;
        e->st.lingering[k]--;
    }
}

static void ling_clear_all(tt_engine *e, tok *t)
{
    ling_clear(e, t, T_LING_IDLE, TT_FK_IDLE_TOKEN);
    ling_clear(e, t, T_LING_OUTLIVED, TT_FK_OUTLIVED_INCIDENT);
    ling_clear(e, t, T_LING_TTL, TT_FK_TTL_OVER_POLICY);
}

/* ---------------------------------------------------------------- timers */

static int revoked_by(const tok *t, int64_t when)
{
    return (t->flags & T_REVOKED) && t->revoked_at <= when;
}

/* When the token's revocation takes effect: revoked + revocation_grace (uses
 * before then are in-flight requests); NEVER when it is not revoked. */
static int64_t revoke_effective(const tt_engine *e, const tok *t)
{
    if (!(t->flags & T_REVOKED)) {
        return NEVER;
    }
    return sat_add(t->revoked_at, e->pol->defaults.revocation_grace_ms);
}

/* Did the token end by revocation rather than by expiry? Only when the
 * revocation took effect strictly before expires_at: a revocation at expiry,
 * or one whose grace reaches it, leaves the token to end by expiry. This one
 * rule decides both used_after_revoke vs used_after_expiry and what
 * unused_scopes says (docs/findings.md). */
static int ended_by_revoke(const tt_engine *e, const tok *t)
{
    return revoke_effective(e, t) < t->expires_at;
}

/* Did the token end (or will it end) by revocation, and at which instant?
 * For a token that has ended, what end_token recorded: a later change of
 * revocation_grace, or a revocation applied after the token ended by expiry,
 * does not turn an expiry into a revocation after the fact (one token would
 * get both used_after_revoke and used_after_expiry). Else the rule now. */
static int revoke_end(const tt_engine *e, const tok *t, int64_t *at)
{
    if (t->flags & T_ENDED) {
        if ((t->flags & T_REVOKED) && t->ended_at < t->expires_at) {
            *at = t->ended_at;
            return 1;
        }
        return 0;
    }
    if (ended_by_revoke(e, t)) {
        *at = revoke_effective(e, t);
        return 1;
    }
    return 0;
}

/* The instant the token ends: its revocation's effect or its expiry. */
static int64_t end_deadline(const tt_engine *e, const tok *t)
{
    return ended_by_revoke(e, t) ? revoke_effective(e, t) : t->expires_at;
}

/* outlived_incident is true from resolved + incident_grace, but not before
 * the token exists: for a token issued after that, from its issuance. */
static int64_t outlived_deadline(const tt_engine *e, const tok *t)
{
    const incident *in = t->incident ? inc_get((tt_engine *)e, t->incident, 0) : NULL;
    if (in == NULL || in->resolved_at == NO_TIME ||
        (t->reported & (1u << TT_FK_OUTLIVED_INCIDENT))) {
        return NEVER;
    }
    return max64(sat_add(in->resolved_at, e->pol->defaults.incident_grace_ms), t->issued_at);
}

static int64_t idle_deadline(const tt_engine *e, const tok *t)
{
    if (e->pol->defaults.idle_after_ms <= 0 || (t->reported & (1u << TT_FK_IDLE_TOKEN))) {
        return NEVER;
    }
    return sat_add(t->last_active, e->pol->defaults.idle_after_ms);
}

static int64_t tok_deadline(const tt_engine *e, const tok *t)
{
    if (t->flags & T_ENDED) {
        return sat_add(t->ended_at, e->pol->defaults.retention_ms);
    }
    int64_t d = end_deadline(e, t);
    int64_t o = outlived_deadline(e, t);
    if (o < t->expires_at && !revoked_by(t, o)) {
        d = min64(d, o);
    }
    int64_t i = idle_deadline(e, t);
    if (i < t->expires_at && !revoked_by(t, i)) {
        d = min64(d, i);
    }
    return d;
}

static void schedule(tt_engine *e, uint32_t idx)
{
    tok *t = &e->toks[idx];
    int64_t d = tok_deadline(e, t);
    if (d < t->sched) {
        t->sched = d;
        timer_push(e, (timer){d, idx, t->gen});
    }
}

static void tok_free_strings(tok *t)
{
    free(t->raw_id);
    free(t->ev_issued);
    free(t->ev_revoked);
    t->raw_id = t->ev_issued = t->ev_revoked = NULL;
}

static void evict(tt_engine *e, uint32_t idx)
{
    tok *t = &e->toks[idx];
    if (grow((void **)&e->deleted, &e->cap_deleted, e->n_deleted + 1, 32) != 0 ||
        grow((void **)&e->free_idx, &e->cap_free, e->n_free + 1, sizeof(uint32_t)) != 0) {
        e->oom = 1; /* keep it; retried at its next timer */
        return;
    }
    memcpy(e->deleted[e->n_deleted++], t->key, 32);
    ling_clear_all(e, t);
    tok_unindex(e, idx);
    tok_free_strings(t);
    t->flags = 0; /* drops T_DIRTY: a pending dirty entry for this slot is skipped */
    t->sched = NEVER;
    t->gen++;
    e->free_idx[e->n_free++] = idx;
    e->live--;
}

/* The token ended at `when` (end_deadline: the revocation's effect or the
 * expiry); unused_scopes is stamped with it, the deadline that passed. */
static void end_token(tt_engine *e, uint32_t idx, int64_t when)
{
    tok *t = &e->toks[idx];
    int by_revoke = ended_by_revoke(e, t);
    t->flags |= T_ENDED;
    t->ended_at = when;
    ling_clear_all(e, t);
    mark_dirty(e, idx);
    if (t->flags & T_UNATTRIBUTED || t->scopeset == 0) {
        return;
    }
    uint32_t ids[TT_EV_MAX_LIST];
    size_t n = set_ids(e, t->scopeset, ids);
    emit_args a;
    args_init(&a, NULL);
    for (size_t i = 0; i < n && i < MASK_BITS; i++) {
        if (!(t->used_mask & (UINT64_C(1) << i))) {
            a.scopes[a.n_scopes++] = sstr(e, ids[i]);
        }
    }
    if (a.n_scopes == 0) {
        return;
    }
    a.ev[a.n_ev++] = t->ev_issued;
    if (by_revoke) {
        a.ev[a.n_ev++] = t->ev_revoked;
    }
    char list[256], tb[32];
    join(a.scopes, a.n_scopes, list, sizeof(list));
    emit(e, TT_FK_UNUSED_SCOPES, when, t, 0, &a,
         "token %s of %s ended (%s) without using %zu of its %zu scopes: %s", short_tok(t, tb),
         sstr(e, t->client), by_revoke ? "revoked" : "expired", a.n_scopes, n, list);
}

/* Everything due for token idx at time D (all events with time <= D applied). */
static void fire(tt_engine *e, uint32_t idx, int64_t D)
{
    tok *t = &e->toks[idx];
    char tb[32], db[TT_DURATION_BUFSZ];
    if (t->flags & T_ENDED) {
        if (sat_add(t->ended_at, e->pol->defaults.retention_ms) <= D) {
            evict(e, idx);
        }
        return;
    }
    int64_t o = outlived_deadline(e, t);
    if (o <= D && o < t->expires_at && !revoked_by(t, o)) {
        const incident *in = inc_get(e, t->incident, 0);
        emit_args a = {.ev = {t->ev_issued, in->ev_resolved}, .n_ev = 2};
        if (t->issued_at > sat_add(in->resolved_at, e->pol->defaults.incident_grace_ms)) {
            emit(e, TT_FK_OUTLIVED_INCIDENT, o, t, 0, &a,
                 "token %s of %s was issued %s after incident %s was resolved and is still valid",
                 short_tok(t, tb), sstr(e, t->client),
                 tt_time_format_duration(t->issued_at - in->resolved_at, db), sstr(e, t->incident));
        } else {
            emit(e, TT_FK_OUTLIVED_INCIDENT, o, t, 0, &a,
                 "token %s of %s is still valid %s after incident %s was resolved",
                 short_tok(t, tb), sstr(e, t->client),
                 tt_time_format_duration(e->pol->defaults.incident_grace_ms, db),
                 sstr(e, t->incident));
        }
        ling_set(e, t, T_LING_OUTLIVED, TT_FK_OUTLIVED_INCIDENT);
        mark_dirty(e, idx);
    }
    int64_t i = idle_deadline(e, t);
    if (i <= D && i < t->expires_at && !revoked_by(t, i)) {
        emit_args a = {.ev = {t->ev_issued}, .n_ev = 1};
        emit(e, TT_FK_IDLE_TOKEN, i, t, 0, &a, "token %s of %s is valid but unused for %s",
             short_tok(t, tb), sstr(e, t->client),
             tt_time_format_duration(e->pol->defaults.idle_after_ms, db));
        ling_set(e, t, T_LING_IDLE, TT_FK_IDLE_TOKEN);
        mark_dirty(e, idx);
    }
    int64_t end = end_deadline(e, t);
    if (end <= D) {
        end_token(e, idx, end);
    }
}

/* ---------------------------------------------------------------- events */

static char *dupref(const tt_aev *ev)
{
    char ref[REF_MAX];
    tt_aev_ref(ev, ref, sizeof(ref));
    return strdup(ref);
}

static void check_issue(tt_engine *e, uint32_t idx, const tt_aev *ev, const char *ref)
{
    tok *t = &e->toks[idx];
    const tt_policy_defaults *d = &e->pol->defaults;
    const tt_policy_client *pc = tt_policy_client_find(e->pol, ev->client_id);
    const char *client = ev->client_id;
    char tb[32], list[256], b1[TT_DURATION_BUFSZ], b2[TT_DURATION_BUFSZ];
    emit_args unknown, outside, fresh, ttl, wr;
    args_init(&unknown, ref);
    args_init(&outside, ref);
    args_init(&fresh, ref);
    args_init(&ttl, ref);
    args_init(&wr, ref);
    incident *in = inc_get(e, t->incident, 0);
    if (in != NULL) {
        wr.ev[wr.n_ev++] = in->ev_opened;
    }
    int64_t lifetime = ev->expires_at - ev->issued_at;
    int64_t limit = ev->n_scopes ? NEVER : d->max_ttl_ms;
    uint32_t cl = t->client;
    for (size_t i = 0; i < ev->n_scopes; i++) {
        const char *s = ev->scopes[i];
        uint32_t id = sid(e, s);
        const scope_info *si = scope_of(e, id);
        limit = min64(limit, si->ttl);
        if (lifetime > si->ttl) {
            ttl.scopes[ttl.n_scopes++] = s;
        }
        if (!si->known) {
            unknown.scopes[unknown.n_scopes++] = s;
        } else if (pc == NULL || !tt_policy_client_allows(pc, s)) {
            outside.scopes[outside.n_scopes++] = s;
        }
        uint64_t h = (uint64_t)cl << 32 | id;
        if (!hset_has(&e->history, h)) {
            if (hset_add(&e->history, h) != 0 ||
                grow((void **)&e->new_hist, &e->cap_new_hist, e->n_new_hist + 1, 8) != 0) {
                e->oom = 1;
            } else {
                e->new_hist[e->n_new_hist++] = h;
            }
            fresh.scopes[fresh.n_scopes++] = s;
        }
        if (in != NULL && si->known && si->access >= TT_ACCESS_WRITE &&
            !inc_has_service(in, si->service)) {
            wr.scopes[wr.n_scopes++] = s;
        }
    }
    int refresh_bad = ev->refresh && !tt_policy_refresh_allowed(e->pol, client);
    if (lifetime > limit || refresh_bad || unknown.n_scopes || outside.n_scopes || fresh.n_scopes ||
        wr.n_scopes) {
        short_tok(t, tb); /* only when something is reported: it formats */
    }
    if (lifetime > limit) {
        tt_time_format_duration(lifetime, b1);
        tt_time_format_duration(limit, b2);
        join(ttl.scopes, ttl.n_scopes, list, sizeof(list));
        emit(e, TT_FK_TTL_OVER_POLICY, ev->time_ms, t, 0, &ttl,
             "token %s of %s lives %s, over the %s max_ttl of its scopes (%s)", tb, client, b1, b2,
             ttl.n_scopes ? list : "defaults");
        ling_set(e, t, T_LING_TTL, TT_FK_TTL_OVER_POLICY);
    }
    if (refresh_bad) {
        emit_args a = {.ev = {ref}, .n_ev = 1};
        emit(e, TT_FK_REFRESH_NOT_ALLOWED, ev->time_ms, t, 0, &a,
             "refresh token %s issued to %s, whose policy forbids refresh tokens", tb, client);
    }
    if (unknown.n_scopes) {
        join(unknown.scopes, unknown.n_scopes, list, sizeof(list));
        emit(e, TT_FK_UNKNOWN_SCOPE, ev->time_ms, t, 0, &unknown,
             "token %s of %s has scopes not in the inventory: %s", tb, client, list);
    }
    if (outside.n_scopes) {
        join(outside.scopes, outside.n_scopes, list, sizeof(list));
        emit(e, TT_FK_SCOPE_OUTSIDE_BASELINE, ev->time_ms, t, 0, &outside,
             pc ? "token %s of %s has scopes outside the client's baseline: %s"
                : "token %s of %s (a client without a policy entry) has scopes: %s",
             tb, client, list);
    }
    if (fresh.n_scopes) {
        join(fresh.scopes, fresh.n_scopes, list, sizeof(list));
        emit(e, TT_FK_NEW_SCOPE_FOR_CLIENT, ev->time_ms, t, 0, &fresh,
             "client %s was granted scopes it never held before: %s", client, list);
    }
    if (wr.n_scopes) {
        join(wr.scopes, wr.n_scopes, list, sizeof(list));
        emit(e, TT_FK_WRITE_OUTSIDE_INCIDENT, ev->time_ms, t, 0, &wr,
             in->opened ? "token %s of %s for incident %s has write access outside the incident's "
                          "services: %s"
                        : "token %s of %s names incident %s, which was not open when the token "
                          "was issued, and has write access: %s",
             tb, client, ev->incident_id, list);
    }
}

static void on_issued(tt_engine *e, const tt_aev *ev)
{
    uint8_t key[32];
    int raw = token_key(ev->token_id, key);
    if (raw < 0) {
        e->oom = 1;
        return;
    }
    if (tok_find(e, key) != UINT32_MAX) {
        return; /* issued twice (another event id): the first one counts */
    }
    uint32_t idx = tok_insert(e, key);
    if (idx == UINT32_MAX) {
        e->oom = 1;
        return;
    }
    tok *t = &e->toks[idx];
    t->issued_at = ev->issued_at;
    t->expires_at = ev->expires_at;
    t->last_active = ev->issued_at;
    t->client = sid(e, ev->client_id);
    t->subject = sid(e, ev->subject);
    t->incident = sid(e, ev->incident_id);
    t->scopeset = set_of(e, ev->scopes, ev->n_scopes);
    t->ev_issued = dupref(ev);
    t->part = e->part_mod > 0 && ev->seq >= 0 ? (uint16_t)(ev->seq % e->part_mod) : PART_NONE;
    if (raw) {
        t->raw_id = strdup(ev->token_id);
        t->flags |= T_RAW_ID;
    }
    if (ev->refresh) {
        t->flags |= T_REFRESH;
    }
    if (t->ev_issued == NULL || (raw && t->raw_id == NULL)) {
        e->oom = 1;
    }
    if (t->incident) {
        incident *in = inc_get(e, t->incident, 1);
        if (in) {
            inc_add_tok(e, in, idx);
        }
    }
    check_issue(e, idx, ev, t->ev_issued);
    mark_dirty(e, idx);
    schedule(e, idx);
}

static uint32_t find_ev_token(tt_engine *e, const tt_aev *ev)
{
    uint8_t key[32];
    if (token_key(ev->token_id, key) < 0) {
        e->oom = 1;
        return UINT32_MAX;
    }
    uint32_t idx = tok_find(e, key);
    if (idx == UINT32_MAX) {
        e->st.unknown_token++;
    }
    return idx;
}

static void on_used(tt_engine *e, const tt_aev *ev)
{
    uint32_t idx = find_ev_token(e, ev);
    if (idx == UINT32_MAX) {
        return;
    }
    tok *t = &e->toks[idx];
    int64_t when = ev->time_ms;
    if (!(t->flags & T_ENDED)) {
        t->last_active = max64(t->last_active, when);
        ling_clear(e, t, T_LING_IDLE, TT_FK_IDLE_TOKEN);
        if (!ev->has_scopes) {
            t->flags |= T_UNATTRIBUTED;
        } else {
            uint32_t ids[TT_EV_MAX_LIST];
            size_t n = set_ids(e, t->scopeset, ids);
            for (size_t j = 0; j < ev->n_scopes; j++) {
                uint32_t id = tt_intern_find(e->str, ev->scopes[j], strlen(ev->scopes[j]));
                for (size_t i = 0; id && i < n && i < MASK_BITS; i++) {
                    if (ids[i] == id) {
                        t->used_mask |= UINT64_C(1) << i;
                    }
                }
            }
        }
    }
    char ref[REF_MAX], tb[32], b1[TT_DURATION_BUFSZ];
    int64_t revoke_at;
    if (revoke_end(e, t, &revoke_at) && when > revoke_at) {
        if (!(t->reported & (1u << TT_FK_USED_AFTER_REVOKE))) {
            tt_aev_ref(ev, ref, sizeof(ref));
            emit_args a = {.ev = {t->ev_revoked, ref}, .n_ev = 2};
            for (size_t i = 0; i < ev->n_scopes; i++) {
                a.scopes[a.n_scopes++] = ev->scopes[i];
            }
            tt_time_format_duration(when - t->revoked_at, b1);
            emit(e, TT_FK_USED_AFTER_REVOKE, when, t, 0, &a,
                 "token %s of %s was used %s after it was revoked", short_tok(t, tb),
                 sstr(e, t->client), b1);
        }
    } else if (when > t->expires_at) {
        if (!(t->reported & (1u << TT_FK_USED_AFTER_EXPIRY))) {
            tt_aev_ref(ev, ref, sizeof(ref));
            emit_args a = {.ev = {t->ev_issued, ref}, .n_ev = 2};
            for (size_t i = 0; i < ev->n_scopes; i++) {
                a.scopes[a.n_scopes++] = ev->scopes[i];
            }
            tt_time_format_duration(when - t->expires_at, b1);
            emit(e, TT_FK_USED_AFTER_EXPIRY, when, t, 0, &a,
                 "token %s of %s was used %s after it expired", short_tok(t, tb),
                 sstr(e, t->client), b1);
        }
    }
    mark_dirty(e, idx);
    schedule(e, idx);
}

static void on_revoked(tt_engine *e, const tt_aev *ev)
{
    uint32_t idx = find_ev_token(e, ev);
    if (idx == UINT32_MAX) {
        return;
    }
    tok *t = &e->toks[idx];
    if (t->flags & T_REVOKED) {
        return;
    }
    t->flags |= T_REVOKED;
    t->revoked_at = ev->time_ms;
    t->ev_revoked = dupref(ev);
    if (t->ev_revoked == NULL) {
        e->oom = 1;
    }
    ling_clear(e, t, T_LING_IDLE, TT_FK_IDLE_TOKEN);
    ling_clear(e, t, T_LING_OUTLIVED, TT_FK_OUTLIVED_INCIDENT);
    mark_dirty(e, idx);
    schedule(e, idx);
}

static void on_incident(tt_engine *e, const tt_aev *ev)
{
    incident *in = inc_get(e, sid(e, ev->incident_id), 1);
    if (in == NULL) {
        return;
    }
    if (ev->type == TT_EV_INCIDENT_OPENED) {
        if (in->opened) {
            return;
        }
        uint32_t *sv = ev->n_services ? calloc(ev->n_services, sizeof(uint32_t)) : NULL;
        char *ref = dupref(ev);
        if ((ev->n_services && sv == NULL) || ref == NULL) {
            free(sv);
            free(ref);
            e->oom = 1;
            return;
        }
        for (size_t i = 0; i < ev->n_services; i++) {
            sv[i] = sid(e, ev->services[i]);
        }
        in->services = sv;
        in->n_services = ev->n_services;
        in->ev_opened = ref;
        in->opened = 1;
        in->dirty = 1;
        return;
    }
    if (in->resolved_at != NO_TIME) {
        return;
    }
    in->ev_resolved = dupref(ev);
    if (in->ev_resolved == NULL) {
        e->oom = 1;
        return;
    }
    in->resolved_at = ev->resolved_at != TT_AEV_NO_TIME ? ev->resolved_at : ev->time_ms;
    in->dirty = 1;
    for (size_t i = 0; i < in->n_toks; i++) {
        uint32_t idx = in->toks[i];
        if (idx < e->n_toks && e->toks[idx].incident == in->id && e->toks[idx].ev_issued) {
            schedule(e, idx);
        }
    }
}

static void apply(tt_engine *e, const tt_aev *ev)
{
    e->st.events_processed++;
    switch (ev->type) {
    case TT_EV_TOKEN_ISSUED: on_issued(e, ev); break;
    case TT_EV_TOKEN_USED: on_used(e, ev); break;
    case TT_EV_TOKEN_REVOKED: on_revoked(e, ev); break;
    case TT_EV_INCIDENT_OPENED:
    case TT_EV_INCIDENT_RESOLVED: on_incident(e, ev); break;
    default: break;
    }
}

/* ---------------------------------------------------------------- dedup */

static uint64_t ev_hash(const tt_aev *ev)
{
    /* source and id hashed separately and combined: no copy, no formatting */
    uint64_t h = tt_hash64(ev->source, strlen(ev->source)) * UINT64_C(0x9e3779b97f4a7c15) ^
                 tt_hash64(ev->id, strlen(ev->id));
    return h ? h : 1;
}

static void ring_push(tt_engine *e, int64_t t, uint64_t h)
{
    if (e->ring_n == e->ring_cap) {
        size_t cap = e->ring_cap ? e->ring_cap * 2 : 1024;
        win *r = malloc(cap * sizeof(win));
        if (r == NULL) {
            hset_del(&e->seen, h); /* forget it rather than leak it in the set */
            return;
        }
        for (size_t i = 0; i < e->ring_n; i++) {
            r[i] = e->ring[(e->ring_head + i) % e->ring_cap];
        }
        free(e->ring);
        e->ring = r;
        e->ring_head = 0;
        e->ring_cap = cap;
    }
    e->ring[(e->ring_head + e->ring_n++) % e->ring_cap] = (win){t, h};
}

static void ring_expire(tt_engine *e)
{
    int64_t horizon = e->now == NO_TIME ? NO_TIME : e->now - e->lateness;
    while (e->ring_n > 0 && e->ring[e->ring_head].t < horizon) {
        hset_del(&e->seen, e->ring[e->ring_head].h);
        e->ring_head = (e->ring_head + 1) % e->ring_cap;
        e->ring_n--;
    }
}

/* ---------------------------------------------------------------- event copies */

/* A copy of ev for the reorder buffer (free with ev_release). NULL when out
 * of memory. */
static tt_aev *ev_copy(tt_engine *e, const tt_aev *ev)
{
    void *mem = e->ev_free;
    if (mem != NULL) {
        memcpy(&e->ev_free, mem, sizeof(void *));
    } else {
        mem = malloc(EV_BLOCK);
        if (mem == NULL) {
            return NULL;
        }
    }
    tt_aev *c = tt_aev_clone_into(ev, mem, EV_BLOCK, 1);
    if (c != NULL) {
        return c;
    }
    /* too big for a block: give it back, take an exact allocation */
    memcpy(mem, &e->ev_free, sizeof(void *));
    e->ev_free = mem;
    size_t need = tt_aev_clone_size(ev);
    c = malloc(need);
    return c ? tt_aev_clone_into(ev, c, need, 0) : NULL;
}

/* Accepts NULL. */
static void ev_release(tt_engine *e, tt_aev *ev)
{
    if (ev == NULL) {
        return;
    }
    if (!ev->pooled) {
        free(ev);
        return;
    }
    memcpy(ev, &e->ev_free, sizeof(void *));
    e->ev_free = ev;
}

/* ---------------------------------------------------------------- public */

tt_engine *tt_engine_new(const tt_policy *policy, int64_t lateness_ms, tt_engine_finding_cb cb,
                         void *ctx)
{
    tt_engine *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        return NULL;
    }
    e->pol = policy;
    e->lateness = lateness_ms < 0 ? 0 : lateness_ms;
    e->cb = cb;
    e->cb_ctx = ctx;
    e->max_seen = e->now = e->clock = NO_TIME;
    e->str = tt_intern_new();
    e->sets = tt_intern_new();
    e->slots = calloc(1024, sizeof(uint64_t));
    e->slot_mask = 1023;
    if (e->str == NULL || e->sets == NULL || e->slots == NULL || hset_init(&e->history) != 0 ||
        hset_init(&e->seen) != 0) {
        tt_engine_free(e);
        return NULL;
    }
    /* A client's scope history starts at its baseline: only grants beyond it are "new". */
    for (size_t i = 0; i < policy->n_clients; i++) {
        uint32_t c = sid(e, policy->clients[i].name);
        for (size_t j = 0; j < policy->clients[i].n_allowed; j++) {
            uint64_t h = (uint64_t)c << 32 | sid(e, policy->clients[i].allowed[j]);
            if (e->oom || hset_add(&e->history, h) != 0) {
                tt_engine_free(e);
                return NULL;
            }
        }
    }
    return e;
}

void tt_engine_free(tt_engine *e)
{
    if (e == NULL) {
        return;
    }
    for (uint32_t i = 0; i < e->n_toks; i++) {
        tok_free_strings(&e->toks[i]);
    }
    for (size_t i = 0; i < e->n_incs; i++) {
        free(e->incs[i].services);
        free(e->incs[i].ev_opened);
        free(e->incs[i].ev_resolved);
        free(e->incs[i].toks);
    }
    for (size_t i = 0; i < e->n_pend; i++) {
        ev_release(e, e->pend[i].ev);
    }
    while (e->ev_free != NULL) {
        void *next;
        memcpy(&next, e->ev_free, sizeof(next));
        free(e->ev_free);
        e->ev_free = next;
    }
    free(e->toks);
    free(e->free_idx);
    free(e->slots);
    free(e->incs);
    free(e->inc_of);
    free(e->sinfo);
    free(e->history.v);
    free(e->new_hist);
    free(e->dirty);
    free(e->deleted);
    free(e->pend);
    free(e->pend_gone);
    free(e->pend_saving);
    free(e->timers);
    free(e->seen.v);
    free(e->ring);
    tt_intern_free(e->str);
    tt_intern_free(e->sets);
    free(e);
}

static int enqueue(tt_engine *e, const tt_aev *ev, uint64_t h)
{
    tt_aev *c = ev_copy(e, ev);
    if (c != NULL) {
        c->hash = h;
    }
    if (c == NULL || hset_add(&e->seen, h) != 0) {
        ev_release(e, c);
        return -1;
    }
    if (pend_push(e, c) != 0) {
        hset_del(&e->seen, h);
        ev_release(e, c);
        return -1;
    }
    return 0;
}

int tt_engine_offer(tt_engine *e, const tt_aev *ev)
{
    e->st.events_offered++;
    uint64_t h = ev_hash(ev);
    if (hset_has(&e->seen, h)) {
        e->st.duplicates++;
        return 1;
    }
    if (enqueue(e, ev, h) != 0) {
        return -1;
    }
    if (e->now != NO_TIME && ev->time_ms < e->now) {
        e->st.late++;
    }
    e->max_seen = max64(e->max_seen, ev->time_ms);
    return 0;
}

int64_t tt_engine_watermark(const tt_engine *e)
{
    return e->max_seen == NO_TIME ? NO_TIME : e->max_seen - e->lateness;
}

static int run(tt_engine *e, int64_t ev_limit, int64_t clock)
{
    e->oom = 0;
    /* On out-of-memory stop at once: the caller retries later, and a timer
     * that could not finish would otherwise be popped again and again. */
    while (!e->oom) {
        tt_aev *ev = e->n_pend && e->pend[0].t <= ev_limit ? e->pend[0].ev : NULL;
        int64_t tlimit = ev ? e->pend[0].t : max64(clock, e->now);
        if (e->n_timers && e->timers[0].at < tlimit) {
            timer tm = timer_pop(e);
            tok *t = &e->toks[tm.idx];
            if (t->gen != tm.gen || t->sched != tm.at) {
                continue; /* superseded */
            }
            t->sched = NEVER;
            e->now = max64(e->now, tm.at);
            fire(e, tm.idx, tm.at);
            if (t->gen == tm.gen) {
                schedule(e, tm.idx);
            }
            continue;
        }
        if (ev == NULL) {
            break;
        }
        pend_pop(e);
        /* Events and tokens are far apart in memory and applying one is a
         * string of cache misses: start loading the next event and its
         * token's slot while this one is applied. */
        if (e->n_pend > 0) {
            const char *nx = (const char *)e->pend[0].ev;
            __builtin_prefetch(nx);
            __builtin_prefetch(nx + 64);
            __builtin_prefetch(nx + 128);
            __builtin_prefetch(nx + 192);
            if (e->pend[0].home != 0) {
                __builtin_prefetch(&e->slots[e->pend[0].home & e->slot_mask]);
            }
        }
        if (ev->saved) {
            if (grow((void **)&e->pend_gone, &e->cap_gone, e->n_gone + 1, 8) != 0) {
                pend_push(e, ev); /* the slot it left is free: cannot fail */
                e->oom = 1;
                break;
            }
            e->pend_gone[e->n_gone++] = ev->seq;
        }
        e->now = max64(e->now, ev->time_ms);
        apply(e, ev);
        ring_push(e, ev->time_ms, ev->hash);
        ev_release(e, ev);
        ring_expire(e);
    }
    e->clock = max64(e->clock, max64(clock, e->now));
    return e->oom ? -1 : 0;
}

int tt_engine_advance(tt_engine *e, int64_t clock_ms)
{
    return run(e, clock_ms, clock_ms);
}

int tt_engine_flush(tt_engine *e, int64_t clock_ms)
{
    return run(e, NEVER, clock_ms);
}

void tt_engine_get_stats(const tt_engine *e, tt_engine_stats *st)
{
    *st = e->st;
    st->max_event_ms = e->max_seen;
    st->watermark_ms = tt_engine_watermark(e);
    st->clock_ms = e->clock;
    st->tokens = e->live;
    st->buffered = e->n_pend;
    size_t mem = sizeof(*e) + (size_t)e->cap_toks * sizeof(tok) + (e->slot_mask + 1) * 8 +
                 (size_t)e->cap_free * 4 + e->cap_timers * sizeof(timer) + e->cap_dirty * 4 +
                 e->cap_deleted * 32 + (e->history.mask + 1) * 8 + (e->seen.mask + 1) * 8 +
                 e->ring_cap * sizeof(win) + e->cap_sinfo * sizeof(scope_info) +
                 tt_intern_bytes(e->str) + tt_intern_bytes(e->sets);
    /* evidence strings: malloc rounds a short string up to 32 bytes */
    mem += (size_t)e->live * 64;
    st->memory_bytes = mem;
}

/* ---------------------------------------------------------------- codec */

static int w_i64(tt_buf *b, int64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++) {
        x[i] = (uint8_t)((uint64_t)v >> (8 * i));
    }
    return tt_buf_add(b, x, 8);
}

static int w_str(tt_buf *b, const char *s)
{
    if (s == NULL) {
        return w_i64(b, -1);
    }
    size_t n = strlen(s);
    return w_i64(b, (int64_t)n) | tt_buf_add(b, s, n);
}

/* w_str of an interned string (0 = NULL), with its known length. */
static int w_sid(tt_buf *b, const tt_engine *e, uint32_t id)
{
    if (id == 0) {
        return w_i64(b, -1);
    }
    size_t n = tt_intern_len(e->str, id);
    return w_i64(b, (int64_t)n) | tt_buf_add(b, tt_intern_str(e->str, id), n);
}

typedef struct rd {
    const uint8_t *p, *end;
    int bad;
} rd;

static int64_t r_i64(rd *r)
{
    if (r->end - r->p < 8) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)r->p[i] << (8 * i);
    }
    r->p += 8;
    return (int64_t)v;
}

/* A string from the blob, NUL-terminated in `out` (cap bytes); NULL when absent. */
static const char *r_str(rd *r, char *out, size_t cap)
{
    int64_t n = r_i64(r);
    if (r->bad || n == -1) {
        return NULL;
    }
    if (n < 0 || (size_t)n >= cap || r->end - r->p < n) {
        r->bad = 1;
        return NULL;
    }
    memcpy(out, r->p, (size_t)n);
    out[n] = '\0';
    r->p += n;
    return out;
}

#define BLOB_VERSION 1
/* Token blobs: version 2 appends the token's partition. */
#define TOKEN_BLOB_VERSION 2

static int encode_token(const tt_engine *e, const tok *t, tt_buf *b)
{
    uint32_t ids[TT_EV_MAX_LIST];
    size_t n = t->scopeset ? set_ids(e, t->scopeset, ids) : 0;
    int rc = w_i64(b, TOKEN_BLOB_VERSION) | w_i64(b, t->issued_at) | w_i64(b, t->expires_at) |
             w_i64(b, t->revoked_at) | w_i64(b, t->last_active) | w_i64(b, t->ended_at) |
             w_i64(b, (int64_t)t->used_mask) | w_i64(b, t->flags & T_PERSIST_MASK) |
             w_i64(b, t->reported) | w_str(b, t->raw_id) | w_sid(b, e, t->client) |
             w_sid(b, e, t->subject) | w_sid(b, e, t->incident) | w_str(b, t->ev_issued) |
             w_str(b, t->ev_revoked) | w_i64(b, (int64_t)n);
    for (size_t i = 0; i < n; i++) {
        rc |= w_sid(b, e, ids[i]);
    }
    return rc | w_i64(b, t->part);
}

static int encode_incident(const tt_engine *e, const incident *in, tt_buf *b)
{
    int rc = w_i64(b, BLOB_VERSION) | w_i64(b, in->opened) | w_i64(b, in->resolved_at) |
             w_str(b, in->ev_opened) | w_str(b, in->ev_resolved) |
             w_i64(b, (int64_t)in->n_services);
    for (size_t i = 0; i < in->n_services; i++) {
        rc |= w_str(b, sstr(e, in->services[i]));
    }
    return rc;
}

static int encode_aev(const tt_aev *ev, tt_buf *b)
{
    int rc = w_i64(b, BLOB_VERSION) | w_i64(b, ev->type) | w_i64(b, ev->time_ms) |
             w_i64(b, ev->issued_at) | w_i64(b, ev->expires_at) | w_i64(b, ev->resolved_at) |
             w_i64(b, ev->refresh) | w_i64(b, ev->has_scopes) | w_str(b, ev->source) |
             w_str(b, ev->id) | w_str(b, ev->token_id) | w_str(b, ev->client_id) |
             w_str(b, ev->subject) | w_str(b, ev->incident_id) | w_i64(b, (int64_t)ev->n_scopes);
    for (size_t i = 0; i < ev->n_scopes; i++) {
        rc |= w_str(b, ev->scopes[i]);
    }
    rc |= w_i64(b, (int64_t)ev->n_services);
    for (size_t i = 0; i < ev->n_services; i++) {
        rc |= w_str(b, ev->services[i]);
    }
    return rc;
}

static int cmp_key32(const void *x, const void *y)
{
    return memcmp(x, y, 32);
}

/* Put the dirty tokens (and deleted keys) in key order, so a save writes the
 * checkpoint's key index sequentially instead of at random: with a million
 * tokens the index is far larger than SQLite's page cache, and random inserts
 * made each token cost a page read and write. Order within a save is free:
 * it is one transaction. Sorting on the key's first 4 bytes (as SQLite
 * orders blobs) is enough for locality, and keeps the scratch at 16 bytes a token. */
static void sort_dirty(tt_engine *e)
{
    if (e->n_deleted > 1) {
        qsort(e->deleted, e->n_deleted, 32, cmp_key32);
    }
    if (e->n_dirty < 2) {
        return;
    }
    size_t n = e->n_dirty;
    uint64_t *v = malloc(2 * n * sizeof(*v));
    if (v == NULL) {
        return; /* unsorted is only slower */
    }
    for (size_t i = 0; i < n; i++) {
        const uint8_t *key = e->toks[e->dirty[i]].key;
        uint64_t k =
            (uint64_t)key[0] << 24 | (uint64_t)key[1] << 16 | (uint64_t)key[2] << 8 | key[3];
        v[i] = k << 32 | e->dirty[i];
    }
    /* LSD radix sort on the 4 key bytes (the high half), 8 bits a pass:
     * qsort's comparisons cost more than the writes it saves */
    uint64_t *from = v, *to = v + n;
    for (int shift = 32; shift < 64; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++) {
            count[((from[i] >> shift) & 0xff) + 1]++;
        }
        for (int d = 0; d < 256; d++) {
            count[d + 1] += count[d];
        }
        for (size_t i = 0; i < n; i++) {
            to[count[(from[i] >> shift) & 0xff]++] = from[i];
        }
        uint64_t *tmp = from;
        from = to;
        to = tmp;
    }
    for (size_t i = 0; i < n; i++) {
        e->dirty[i] = (uint32_t)(from[i] & 0xffffffffu);
    }
    free(v);
}

int tt_engine_save(tt_engine *e, const tt_engine_saver *s, void *ctx)
{
    tt_buf b;
    tt_buf_init(&b, BLOB_MAX);
    int rc = 0;
    sort_dirty(e);
    for (size_t i = 0; rc == 0 && i < e->n_deleted; i++) {
        rc = s->token(ctx, e->deleted[i], NULL, 0);
    }
    for (size_t i = 0; rc == 0 && i < e->n_dirty; i++) {
        tok *t = &e->toks[e->dirty[i]];
        if (!(t->flags & T_DIRTY)) {
            continue; /* evicted since */
        }
        tt_buf_reset(&b);
        rc = encode_token(e, t, &b) ? -1 : s->token(ctx, t->key, b.data, b.len);
    }
    for (size_t i = 0; rc == 0 && i < e->n_incs; i++) {
        if (e->incs[i].dirty) {
            tt_buf_reset(&b);
            rc = encode_incident(e, &e->incs[i], &b)
                     ? -1
                     : s->incident(ctx, sstr(e, e->incs[i].id), b.data, b.len);
        }
    }
    for (size_t i = 0; rc == 0 && i < e->n_new_hist; i++) {
        rc = s->client_scope(ctx, sstr(e, (uint32_t)(e->new_hist[i] >> 32)),
                             sstr(e, (uint32_t)(e->new_hist[i] & 0xffffffffu)));
    }
    for (size_t i = 0; rc == 0 && i < e->n_gone; i++) {
        rc = s->pending(ctx, e->pend_gone[i], NULL, 0);
    }
    e->n_saving = 0;
    for (size_t i = 0; rc == 0 && i < e->n_pend; i++) {
        tt_aev *ev = e->pend[i].ev;
        if (ev->saved) {
            continue;
        }
        if (grow((void **)&e->pend_saving, &e->cap_saving, e->n_saving + 1, sizeof(tt_aev *)) !=
            0) {
            rc = -1;
            break;
        }
        e->pend_saving[e->n_saving++] = ev;
        tt_buf_reset(&b);
        rc = encode_aev(ev, &b) ? -1 : s->pending(ctx, ev->seq, b.data, b.len);
    }
    if (rc == 0) {
        rc = s->meta(ctx, "max_event_ms", e->max_seen) | s->meta(ctx, "now_ms", e->now) |
             s->meta(ctx, "clock_ms", e->clock);
    }
    tt_buf_free(&b);
    e->n_saved_dirty = e->n_dirty;
    e->n_saved_deleted = e->n_deleted;
    e->n_saved_hist = e->n_new_hist;
    e->n_saved_gone = e->n_gone;
    return rc ? -1 : 0;
}

/* Drop the first k of n elements (memmove with a NULL array is undefined even for 0 bytes). */
static void drop_front(void *v, size_t elem, size_t n, size_t k)
{
    if (v != NULL && n > k) {
        memmove(v, (char *)v + k * elem, (n - k) * elem);
    }
}

void tt_engine_save_done(tt_engine *e)
{
    /* Only what the save wrote: nothing runs between save and save_done, but
     * being exact costs nothing. */
    for (size_t i = 0; i < e->n_saved_dirty; i++) {
        e->toks[e->dirty[i]].flags &= (uint16_t)~T_DIRTY;
    }
    drop_front(e->dirty, 4, e->n_dirty, e->n_saved_dirty);
    e->n_dirty -= e->n_saved_dirty;
    drop_front(e->deleted, 32, e->n_deleted, e->n_saved_deleted);
    e->n_deleted -= e->n_saved_deleted;
    drop_front(e->new_hist, 8, e->n_new_hist, e->n_saved_hist);
    e->n_new_hist -= e->n_saved_hist;
    for (size_t i = 0; i < e->n_incs; i++) {
        e->incs[i].dirty = 0;
    }
    drop_front(e->pend_gone, 8, e->n_gone, e->n_saved_gone);
    e->n_gone -= e->n_saved_gone;
    for (size_t i = 0; i < e->n_saving; i++) {
        e->pend_saving[i]->saved = 1;
    }
    e->n_saving = 0;
    e->n_saved_dirty = e->n_saved_deleted = e->n_saved_hist = e->n_saved_gone = 0;
}

static int load_token(tt_engine *e, const uint8_t key[32], const void *blob, size_t len, int dirty)
{
    rd r = {blob, (const uint8_t *)blob + len, 0};
    char raw[TT_EV_MAX_ID + 1], client[TT_EV_MAX_ID + 1], subj[TT_EV_MAX_TEXT + 1];
    char inc[TT_EV_MAX_ID + 1], evi[REF_MAX], evr[REF_MAX];
    int64_t version = r_i64(&r);
    if ((version != 1 && version != TOKEN_BLOB_VERSION) || tok_find(e, key) != UINT32_MAX) {
        return -1;
    }
    tok v;
    memset(&v, 0, sizeof(v));
    v.issued_at = r_i64(&r);
    v.expires_at = r_i64(&r);
    v.revoked_at = r_i64(&r);
    v.last_active = r_i64(&r);
    v.ended_at = r_i64(&r);
    v.used_mask = (uint64_t)r_i64(&r);
    v.flags = (uint16_t)(r_i64(&r) & T_PERSIST_MASK);
    v.reported = (uint16_t)r_i64(&r);
    const char *rawp = r_str(&r, raw, sizeof(raw));
    const char *cl = r_str(&r, client, sizeof(client));
    const char *su = r_str(&r, subj, sizeof(subj));
    const char *ic = r_str(&r, inc, sizeof(inc));
    const char *ei = r_str(&r, evi, sizeof(evi));
    const char *er = r_str(&r, evr, sizeof(evr));
    int64_t n = r_i64(&r);
    if (r.bad || n < 0 || n > TT_EV_MAX_LIST || ei == NULL) {
        return -1;
    }
    char scope_buf[TT_EV_MAX_LIST][TT_EV_MAX_SCOPE + 1];
    const char *scopes[TT_EV_MAX_LIST];
    for (int64_t i = 0; i < n; i++) {
        scopes[i] = r_str(&r, scope_buf[i], sizeof(scope_buf[i]));
        if (scopes[i] == NULL) {
            return -1;
        }
    }
    int64_t part = version >= 2 ? r_i64(&r) : PART_NONE;
    if (r.bad || r.p != r.end || part < 0 || part > PART_NONE) {
        return -1;
    }
    uint32_t idx = tok_insert(e, key);
    if (idx == UINT32_MAX) {
        return -1;
    }
    tok *t = &e->toks[idx];
    uint32_t gen = t->gen;
    v.gen = gen;
    memcpy(v.key, key, 32);
    v.sched = NEVER;
    *t = v;
    t->client = sid(e, cl);
    t->subject = sid(e, su);
    t->incident = sid(e, ic);
    t->scopeset = set_of(e, scopes, (size_t)n);
    t->part = (uint16_t)part;
    t->ev_issued = strdup(ei);
    t->ev_revoked = er ? strdup(er) : NULL;
    t->raw_id = rawp ? strdup(rawp) : NULL;
    if (t->ev_issued == NULL || (er && t->ev_revoked == NULL) || (rawp && t->raw_id == NULL)) {
        e->oom = 1;
    }
    if (t->flags & T_LING_IDLE) {
        e->st.lingering[TT_FK_IDLE_TOKEN]++;
    }
    if (t->flags & T_LING_OUTLIVED) {
        e->st.lingering[TT_FK_OUTLIVED_INCIDENT]++;
    }
    if (t->flags & T_LING_TTL) {
        e->st.lingering[TT_FK_TTL_OVER_POLICY]++;
    }
    if (t->incident) {
        incident *in = inc_get(e, t->incident, 1);
        if (in) {
            inc_add_tok(e, in, idx);
        }
    }
    schedule(e, idx);
    if (dirty) {
        mark_dirty(e, idx);
    }
    int rc = e->oom ? -1 : 0;
    e->oom = 0;
    return rc;
}

int tt_engine_load_token(tt_engine *e, const uint8_t key[32], const void *blob, size_t len)
{
    return load_token(e, key, blob, len, 0);
}

int tt_engine_load_incident(tt_engine *e, const char *incident_id, const void *blob, size_t len)
{
    rd r = {blob, (const uint8_t *)blob + len, 0};
    char evo[REF_MAX], evr[REF_MAX], svc[TT_EV_MAX_SCOPE + 1];
    if (r_i64(&r) != BLOB_VERSION) {
        return -1;
    }
    int64_t opened = r_i64(&r), resolved = r_i64(&r);
    const char *eo = r_str(&r, evo, sizeof(evo));
    const char *er = r_str(&r, evr, sizeof(evr));
    int64_t n = r_i64(&r);
    if (r.bad || n < 0 || n > TT_EV_MAX_LIST) {
        return -1;
    }
    incident *in = inc_get(e, sid(e, incident_id), 1);
    if (in == NULL || in->ev_opened || in->ev_resolved) {
        return -1;
    }
    in->services = n ? calloc((size_t)n, sizeof(uint32_t)) : NULL;
    for (int64_t i = 0; i < n; i++) {
        const char *s = r_str(&r, svc, sizeof(svc));
        if (s == NULL || in->services == NULL) {
            return -1;
        }
        in->services[in->n_services++] = sid(e, s);
    }
    in->opened = opened != 0;
    in->resolved_at = resolved;
    in->ev_opened = eo ? strdup(eo) : NULL;
    in->ev_resolved = er ? strdup(er) : NULL;
    /* tokens loaded before their incident are rescheduled with its resolution */
    for (size_t i = 0; i < in->n_toks; i++) {
        schedule(e, in->toks[i]);
    }
    return r.bad || r.p != r.end ? -1 : 0;
}

int tt_engine_load_client_scope(tt_engine *e, const char *client_id, const char *scope)
{
    uint64_t h = (uint64_t)sid(e, client_id) << 32 | sid(e, scope);
    return e->oom || hset_add(&e->history, h) != 0 ? -1 : 0;
}

static int load_pending(tt_engine *e, int64_t seq, const void *blob, size_t len, int saved)
{
    rd r = {blob, (const uint8_t *)blob + len, 0};
    if (r_i64(&r) != BLOB_VERSION) {
        return -1;
    }
    /* strings are decoded into one scratch arena of the blob's size */
    char *arena = malloc(len + 16);
    const char **lists = malloc(2 * TT_EV_MAX_LIST * sizeof(char *));
    int rc = -1;
    if (arena == NULL || lists == NULL) {
        goto out;
    }
    char *o = arena;
    size_t left = len + 16;
#define NEXT_STR(dst)                                                                              \
    do {                                                                                           \
        (dst) = r_str(&r, o, left);                                                                \
        if ((dst) != NULL) {                                                                       \
            size_t used_ = strlen(dst) + 1;                                                        \
            o += used_;                                                                            \
            left -= used_;                                                                         \
        }                                                                                          \
    } while (0)
    tt_aev ev;
    memset(&ev, 0, sizeof(ev));
    ev.seq = seq;
    ev.type = (tt_event_type)r_i64(&r);
    ev.time_ms = r_i64(&r);
    ev.issued_at = r_i64(&r);
    ev.expires_at = r_i64(&r);
    ev.resolved_at = r_i64(&r);
    ev.refresh = (int)r_i64(&r);
    ev.has_scopes = (int)r_i64(&r);
    NEXT_STR(ev.source);
    NEXT_STR(ev.id);
    NEXT_STR(ev.token_id);
    NEXT_STR(ev.client_id);
    NEXT_STR(ev.subject);
    NEXT_STR(ev.incident_id);
    int64_t n = r_i64(&r);
    if (r.bad || n < 0 || n > TT_EV_MAX_LIST || ev.source == NULL || ev.id == NULL) {
        goto out;
    }
    ev.scopes = lists;
    for (int64_t i = 0; i < n; i++) {
        NEXT_STR(lists[i]);
    }
    ev.n_scopes = (size_t)n;
    n = r_i64(&r);
    if (r.bad || n < 0 || n > TT_EV_MAX_LIST) {
        goto out;
    }
    ev.services = lists + TT_EV_MAX_LIST;
    for (int64_t i = 0; i < n; i++) {
        NEXT_STR(lists[TT_EV_MAX_LIST + i]);
    }
    ev.n_services = (size_t)n;
#undef NEXT_STR
    if (r.bad || r.p != r.end) {
        goto out;
    }
    ev.saved = saved; /* 1: it is in the checkpoint already */
    uint64_t h = ev_hash(&ev);
    rc = !saved && hset_has(&e->seen, h) ? 1 : enqueue(e, &ev, h);
out:
    free(arena);
    free(lists);
    return rc;
}

int tt_engine_load_pending(tt_engine *e, int64_t seq, const void *blob, size_t len)
{
    return load_pending(e, seq, blob, len, 1);
}

int tt_engine_load_meta(tt_engine *e, const char *key, int64_t value)
{
    if (strcmp(key, "max_event_ms") == 0) {
        e->max_seen = value;
    } else if (strcmp(key, "now_ms") == 0) {
        e->now = value;
    } else if (strcmp(key, "clock_ms") == 0) {
        e->clock = value;
    }
    return 0;
}

/* ---------------------------------------------------------------- partitions */

void tt_engine_set_partitions(tt_engine *e, int64_t modulus)
{
    e->part_mod = modulus > 0 && modulus <= PART_NONE ? modulus : 0;
}

static int is_token_event(const tt_aev *ev)
{
    return ev->type == TT_EV_TOKEN_ISSUED || ev->type == TT_EV_TOKEN_USED ||
           ev->type == TT_EV_TOKEN_REVOKED;
}

static int in_part(const tt_engine *e, const tt_aev *ev, int32_t part)
{
    return e->part_mod > 0 && ev->seq >= 0 && is_token_event(ev) && ev->seq % e->part_mod == part;
}

static void pend_heapify(tt_engine *e)
{
    for (size_t k = e->n_pend / 2; k-- > 0;) {
        pent x = e->pend[k];
        size_t i = k;
        for (;;) {
            size_t c = 2 * i + 1;
            if (c >= e->n_pend) {
                break;
            }
            if (c + 1 < e->n_pend && pend_less(&e->pend[c + 1], &e->pend[c])) {
                c++;
            }
            if (!pend_less(&e->pend[c], &x)) {
                break;
            }
            e->pend[i] = e->pend[c];
            i = c;
        }
        e->pend[i] = x;
    }
}

int tt_engine_drop_partition(tt_engine *e, int32_t part, uint64_t *dropped)
{
    uint64_t n = 0;
    e->oom = 0;
    for (uint32_t idx = 0; idx < e->n_toks; idx++) {
        tok *t = &e->toks[idx];
        if (t->ev_issued != NULL && t->part == part) {
            evict(e, idx); /* its timers are stale by gen; deleted at the next save */
            if (e->oom) {
                return -1;
            }
            n++;
        }
    }
    size_t keep = 0;
    int short_of_memory = 0;
    for (size_t i = 0; i < e->n_pend; i++) {
        tt_aev *ev = e->pend[i].ev;
        if (!in_part(e, ev, part)) {
            e->pend[keep++] = e->pend[i];
            continue;
        }
        if (ev->saved) {
            if (grow((void **)&e->pend_gone, &e->cap_gone, e->n_gone + 1, 8) != 0) {
                /* keep the rest: consistent, and the caller gives up on the hand-over */
                short_of_memory = 1;
                for (; i < e->n_pend; i++) {
                    e->pend[keep++] = e->pend[i];
                }
                break;
            }
            e->pend_gone[e->n_gone++] = ev->seq;
        }
        hset_del(&e->seen, ev->hash);
        ev_release(e, ev);
        n++;
    }
    e->n_pend = keep;
    pend_heapify(e);
    if (dropped) {
        *dropped = n;
    }
    return short_of_memory ? -1 : 0;
}

int tt_engine_transfer(tt_engine *from, tt_engine *to, uint64_t *n_tokens, uint64_t *n_events)
{
    tt_buf b;
    tt_buf_init(&b, BLOB_MAX);
    int rc = 0;
    uint64_t nt = 0, ne = 0;
    for (uint32_t idx = 0; rc == 0 && idx < from->n_toks; idx++) {
        const tok *t = &from->toks[idx];
        if (t->ev_issued == NULL) {
            continue; /* a free slot */
        }
        tt_buf_reset(&b);
        rc = encode_token(from, t, &b) || load_token(to, t->key, b.data, b.len, 1) ? -1 : 0;
        nt++;
    }
    for (size_t i = 0; rc == 0 && i < from->n_pend; i++) {
        const tt_aev *ev = from->pend[i].ev;
        if (!is_token_event(ev)) {
            continue; /* incidents: `to` reads them itself */
        }
        tt_buf_reset(&b);
        int r = encode_aev(ev, &b) ? -1 : load_pending(to, ev->seq, b.data, b.len, 0);
        rc = r < 0 ? -1 : 0; /* 1: `to` has it already */
        ne++;
    }
    tt_buf_free(&b);
    if (n_tokens) {
        *n_tokens = nt;
    }
    if (n_events) {
        *n_events = ne;
    }
    return rc;
}
