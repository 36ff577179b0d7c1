/* tt_chain.h - the evidence hash chain over events, with checkpoints.
 *
 *   link_0 = SHA-256("tokentrail-chain-v1")            (the 19 ASCII bytes)
 *   link_i = SHA-256(link_{i-1} || SHA-256(event_i))   (32 + 32 raw bytes)
 *
 * event_i is the exact bytes of line i of events.ndjson without its "\n".
 * Checkpoints record link_k for every k that is a multiple of `interval`, so a
 * verifier can name the first window (or, with interval 1, the first event)
 * where a bundle departs from what was signed. See docs/evidence.md. */
#ifndef TT_CHAIN_H
#define TT_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#define TT_CHAIN_SEED "tokentrail-chain-v1"
#define TT_CHAIN_DIGEST 32
/* Room for 64 hex digits and the NUL. */
#define TT_CHAIN_HEXSZ 65
/* Most checkpoints kept. When one more is due, every other one is dropped and
 * the interval doubles, so memory stays fixed whatever the event count; a
 * chain of up to this many events has a checkpoint at every event. */
#define TT_CHAIN_MAX_CHECKPOINTS 4096

typedef struct tt_chain tt_chain;

/* A chain at link_0 with interval 1. Returns NULL when out of memory. */
tt_chain *tt_chain_new(void);

/* Free; accepts NULL. */
void tt_chain_free(tt_chain *c);

/* Append one event (its bytes) or its SHA-256. Never fails. */
void tt_chain_add(tt_chain *c, const void *event, size_t len);
void tt_chain_add_digest(tt_chain *c, const unsigned char digest[TT_CHAIN_DIGEST]);

/* The current link (link_count) and number of events added. */
const unsigned char *tt_chain_link(const tt_chain *c);
uint64_t tt_chain_count(const tt_chain *c);

/* Checkpoints: checkpoint j (0-based) is link_{(j+1)*interval}. */
uint64_t tt_chain_interval(const tt_chain *c);
size_t tt_chain_checkpoints(const tt_chain *c);
const unsigned char *tt_chain_checkpoint(const tt_chain *c, size_t j);

/* The building blocks, for verifiers: link_0, one step, one event digest. */
void tt_chain_seed(unsigned char out[TT_CHAIN_DIGEST]);
void tt_chain_step(const unsigned char prev[TT_CHAIN_DIGEST],
                   const unsigned char digest[TT_CHAIN_DIGEST], unsigned char out[TT_CHAIN_DIGEST]);
void tt_chain_sha256(const void *p, size_t len, unsigned char out[TT_CHAIN_DIGEST]);

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void tt_chain_hex(const unsigned char *b, size_t n, char *out);
/* Parse exactly 2n lowercase or uppercase hex digits; returns 0 or -1. */
int tt_chain_unhex(const char *s, unsigned char *out, size_t n);

#endif
