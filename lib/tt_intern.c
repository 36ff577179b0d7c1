/* tt_intern.c - open-addressing hash of interned byte strings. */
#include "tt_intern.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_BYTES (64 * 1024)

typedef struct ent {
    const char *s; /* into a chunk; NUL-terminated */
    uint32_t len;
    uint32_t pad;
    uint64_t hash;
} ent;

struct tt_intern {
    ent *ents; /* index = id - 1 */
    uint32_t n, cap;
    uint32_t *slots; /* id or 0; power-of-two size */
    size_t mask;
    char **chunks; /* string storage, never moved (so pointers stay valid) */
    size_t n_chunks;
    size_t chunk_used, chunk_cap;
    size_t bytes;
};

uint64_t tt_hash64(const void *bytes, size_t len)
{
    /* FNV-1a with a murmur finaliser: fast for short keys, well mixed. */
    const unsigned char *p = bytes;
    uint64_t h = UINT64_C(1469598103934665603);
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= UINT64_C(1099511628211);
    }
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

tt_intern *tt_intern_new(void)
{
    tt_intern *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return NULL;
    }
    t->slots = calloc(64, sizeof(uint32_t));
    if (t->slots == NULL) {
        free(t);
        return NULL;
    }
    t->mask = 63;
    return t;
}

void tt_intern_free(tt_intern *t)
{
    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < t->n_chunks; i++) {
        free(t->chunks[i]);
    }
    free(t->chunks);
    free(t->ents);
    free(t->slots);
    free(t);
}

uint32_t tt_intern_find(const tt_intern *t, const void *bytes, size_t len)
{
    uint64_t h = tt_hash64(bytes, len);
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        uint32_t id = t->slots[i];
        if (id == 0) {
            return 0;
        }
        const ent *e = &t->ents[id - 1];
        if (e->hash == h && e->len == len && memcmp(e->s, bytes, len) == 0) {
            return id;
        }
    }
}

static int grow_slots(tt_intern *t)
{
    size_t size = (t->mask + 1) * 2;
    uint32_t *s = calloc(size, sizeof(uint32_t));
    if (s == NULL) {
        return -1;
    }
    for (uint32_t id = 1; id <= t->n; id++) {
        size_t i = t->ents[id - 1].hash & (size - 1);
        while (s[i] != 0) {
            i = (i + 1) & (size - 1);
        }
        s[i] = id;
    }
    t->bytes += (size - (t->mask + 1)) * sizeof(uint32_t);
    free(t->slots);
    t->slots = s;
    t->mask = size - 1;
    return 0;
}

static char *store_bytes(tt_intern *t, const void *bytes, size_t len)
{
    if (t->chunk_used + len + 1 > t->chunk_cap) {
        size_t cap = len + 1 > CHUNK_BYTES ? len + 1 : CHUNK_BYTES;
        char **cs = realloc(t->chunks, (t->n_chunks + 1) * sizeof(char *));
        if (cs == NULL) {
            return NULL;
        }
        t->chunks = cs;
        char *c = malloc(cap);
        if (c == NULL) {
            return NULL;
        }
        t->chunks[t->n_chunks++] = c;
        t->chunk_used = 0;
        t->chunk_cap = cap;
        t->bytes += cap;
    }
    char *dst = t->chunks[t->n_chunks - 1] + t->chunk_used;
    memcpy(dst, bytes, len);
    dst[len] = '\0';
    t->chunk_used += len + 1;
    return dst;
}

uint32_t tt_intern_get(tt_intern *t, const void *bytes, size_t len)
{
    uint32_t id = tt_intern_find(t, bytes, len);
    if (id != 0) {
        return id;
    }
    if (t->n >= TT_INTERN_MAX || len > UINT32_MAX - 1) {
        return 0;
    }
    if ((size_t)(t->n + 1) * 2 > t->mask + 1 && grow_slots(t) != 0) {
        return 0;
    }
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 64;
        ent *e = realloc(t->ents, cap * sizeof(ent));
        if (e == NULL) {
            return 0;
        }
        t->bytes += (cap - t->cap) * sizeof(ent);
        t->ents = e;
        t->cap = cap;
    }
    const char *s = store_bytes(t, bytes, len);
    if (s == NULL) {
        return 0;
    }
    uint64_t h = tt_hash64(bytes, len);
    t->ents[t->n] = (ent){s, (uint32_t)len, 0, h};
    id = ++t->n;
    size_t i = h & t->mask;
    while (t->slots[i] != 0) {
        i = (i + 1) & t->mask;
    }
    t->slots[i] = id;
    return id;
}

const char *tt_intern_str(const tt_intern *t, uint32_t id)
{
    return t->ents[id - 1].s;
}

size_t tt_intern_len(const tt_intern *t, uint32_t id)
{
    return t->ents[id - 1].len;
}

uint32_t tt_intern_count(const tt_intern *t)
{
    return t->n;
}

size_t tt_intern_bytes(const tt_intern *t)
{
    return sizeof(*t) + t->bytes + 64 * sizeof(uint32_t);
}
