/* tt_chain.c - the evidence hash chain: link_i = SHA-256(link_{i-1} ||
 * SHA-256(event_i)), with a bounded set of checkpoints. */
#include "tt_chain.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

struct tt_chain {
    EVP_MD *sha; /* fetched once: a fetch per digest costs a lock and a malloc */
    EVP_MD_CTX *md;
    unsigned char link[TT_CHAIN_DIGEST];
    uint64_t count;
    uint64_t interval;
    size_t ncp;
    unsigned char cp[TT_CHAIN_MAX_CHECKPOINTS][TT_CHAIN_DIGEST];
};

/* SHA-256 through the EVP one-shot with the implicitly fetched digest.
 * EVP_Digest with EVP_sha256() avoids a provider fetch per call, which
 * matters at millions of events. */
void tt_chain_sha256(const void *p, size_t len, unsigned char out[TT_CHAIN_DIGEST])
{
    unsigned int n = 0;
    if (EVP_Digest(p, len, out, &n, EVP_sha256(), NULL) != 1 || n != TT_CHAIN_DIGEST) {
        /* Only fails when OpenSSL is out of memory or misconfigured; a zero
         * digest then makes every verification fail rather than pass. */
        memset(out, 0, TT_CHAIN_DIGEST);
    }
}

void tt_chain_seed(unsigned char out[TT_CHAIN_DIGEST])
{
    tt_chain_sha256(TT_CHAIN_SEED, strlen(TT_CHAIN_SEED), out);
}

void tt_chain_step(const unsigned char prev[TT_CHAIN_DIGEST],
                   const unsigned char digest[TT_CHAIN_DIGEST], unsigned char out[TT_CHAIN_DIGEST])
{
    unsigned char both[2 * TT_CHAIN_DIGEST];
    memcpy(both, prev, TT_CHAIN_DIGEST);
    memcpy(both + TT_CHAIN_DIGEST, digest, TT_CHAIN_DIGEST);
    tt_chain_sha256(both, sizeof(both), out);
}

tt_chain *tt_chain_new(void)
{
    tt_chain *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->sha = EVP_MD_fetch(NULL, "SHA256", NULL);
    c->md = EVP_MD_CTX_new();
    if (c->sha == NULL || c->md == NULL) {
        tt_chain_free(c);
        return NULL;
    }
    tt_chain_seed(c->link);
    c->interval = 1;
    return c;
}

void tt_chain_free(tt_chain *c)
{
    if (c == NULL) {
        return;
    }
    EVP_MD_CTX_free(c->md);
    EVP_MD_free(c->sha);
    free(c);
}

/* SHA-256 of up to two pieces with the chain's context. */
static void chain_digest(tt_chain *c, const void *a, size_t alen, const void *b, size_t blen,
                         unsigned char out[TT_CHAIN_DIGEST])
{
    unsigned int n = 0;
    if (EVP_DigestInit_ex2(c->md, c->sha, NULL) != 1 || EVP_DigestUpdate(c->md, a, alen) != 1 ||
        (blen > 0 && EVP_DigestUpdate(c->md, b, blen) != 1) ||
        EVP_DigestFinal_ex(c->md, out, &n) != 1) {
        memset(out, 0, TT_CHAIN_DIGEST); /* fails every verification, never passes one */
    }
}

void tt_chain_add_digest(tt_chain *c, const unsigned char digest[TT_CHAIN_DIGEST])
{
    chain_digest(c, c->link, TT_CHAIN_DIGEST, digest, TT_CHAIN_DIGEST, c->link);
    c->count++;
    if (c->count % c->interval != 0) {
        return;
    }
    if (c->ncp == TT_CHAIN_MAX_CHECKPOINTS) {
        /* Keep the checkpoints at even multiples: new j = 2j+1 old. */
        for (size_t j = 0; j < TT_CHAIN_MAX_CHECKPOINTS / 2; j++) {
            memcpy(c->cp[j], c->cp[2 * j + 1], TT_CHAIN_DIGEST);
        }
        c->ncp = TT_CHAIN_MAX_CHECKPOINTS / 2;
        c->interval *= 2;
        if (c->count % c->interval != 0) {
            return;
        }
    }
    memcpy(c->cp[c->ncp++], c->link, TT_CHAIN_DIGEST);
}

void tt_chain_add(tt_chain *c, const void *event, size_t len)
{
    unsigned char d[TT_CHAIN_DIGEST];
    chain_digest(c, event, len, NULL, 0, d);
    tt_chain_add_digest(c, d);
}

const unsigned char *tt_chain_link(const tt_chain *c)
{
    return c->link;
}

uint64_t tt_chain_count(const tt_chain *c)
{
    return c->count;
}

uint64_t tt_chain_interval(const tt_chain *c)
{
    return c->interval;
}

size_t tt_chain_checkpoints(const tt_chain *c)
{
    return c->ncp;
}

const unsigned char *tt_chain_checkpoint(const tt_chain *c, size_t j)
{
    return j < c->ncp ? c->cp[j] : NULL;
}

void tt_chain_hex(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

int tt_chain_unhex(const char *s, unsigned char *out, size_t n)
{
    if (s == NULL || strlen(s) != 2 * n) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}
