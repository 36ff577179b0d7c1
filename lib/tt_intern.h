/* tt_intern.h - string interning: equal byte strings get the same small
 * integer id, so hot state can hold 4-byte ids instead of strings. */
#ifndef TT_INTERN_H
#define TT_INTERN_H

#include <stddef.h>
#include <stdint.h>

/* Most distinct strings one table holds (ids are 1..TT_INTERN_MAX). */
#define TT_INTERN_MAX (UINT32_C(1) << 28)

typedef struct tt_intern tt_intern;

/* NULL when out of memory. */
tt_intern *tt_intern_new(void);

/* Accepts NULL. Every pointer returned by tt_intern_str dies with it. */
void tt_intern_free(tt_intern *t);

/* The id of bytes[0..len), adding it when new. Returns 0 when out of memory
 * or over TT_INTERN_MAX. Ids are dense: 1, 2, 3 ... in order of first sight. */
uint32_t tt_intern_get(tt_intern *t, const void *bytes, size_t len);

/* The id, or 0 when the bytes were never interned. */
uint32_t tt_intern_find(const tt_intern *t, const void *bytes, size_t len);

/* The interned bytes (NUL-terminated) and their length; id must be valid. */
const char *tt_intern_str(const tt_intern *t, uint32_t id);
size_t tt_intern_len(const tt_intern *t, uint32_t id);

/* Number of ids handed out (the largest id). */
uint32_t tt_intern_count(const tt_intern *t);

/* Bytes of memory held, for metrics and benchmarks. */
size_t tt_intern_bytes(const tt_intern *t);

/* A 64-bit hash of bytes (also used by other modules for hash tables). */
uint64_t tt_hash64(const void *bytes, size_t len);

#endif
