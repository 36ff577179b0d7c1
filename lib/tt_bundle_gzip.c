/* tt_bundle_gzip.c - reproducible parallel gzip: fixed blocks deflated
 * independently on worker threads and emitted in order. */
#include "tt_bundle_gzip.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#define DICT_SIZE 32768
/* Raw deflate output bound for one block plus the sync-flush marker. */
#define OUT_SIZE (TT_GZIP_BLOCK + TT_GZIP_BLOCK / 8 + 4096)

typedef struct gz_job {
    unsigned char in[TT_GZIP_BLOCK];
    unsigned char dict[DICT_SIZE];
    unsigned char out[OUT_SIZE];
    size_t inlen, dictlen, outlen;
    uLong crc;
    int done;
    int failed;
} gz_job;

struct tt_bundle_gzip {
    int level;
    int nthreads;
    tt_gzip_sink sink;
    void *ctx;
    int failed;
    int header_sent;
    uLong crc;
    uint64_t total_in;

    size_t njobs;
    gz_job *jobs;
    uint64_t seq_fill; /* the job being filled */
    uint64_t seq_emit; /* the next job to hand to the sink */

    /* Shared with workers, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t work;
    pthread_cond_t done;
    uint64_t seq_submitted; /* jobs below this are ready for compression */
    uint64_t seq_taken;     /* jobs below this were taken by a worker */
    int stopping;
    int started;
    pthread_t threads[TT_GZIP_MAX_THREADS];

    z_stream inline_strm; /* for nthreads <= 1 */
    int inline_init;
};

static gz_job *job_at(tt_bundle_gzip *g, uint64_t seq)
{
    return &g->jobs[seq % g->njobs];
}

/* Deflate one block with strm (a raw deflate stream reset here). */
static void compress_job(z_stream *strm, gz_job *j)
{
    j->crc = crc32(0L, j->in, (uInt)j->inlen);
    j->failed = 0;
    if (deflateReset(strm) != Z_OK ||
        (j->dictlen > 0 && deflateSetDictionary(strm, j->dict, (uInt)j->dictlen) != Z_OK)) {
        j->failed = 1;
        return;
    }
    strm->next_in = j->in;
    strm->avail_in = (uInt)j->inlen;
    strm->next_out = j->out;
    strm->avail_out = OUT_SIZE;
    int rc = deflate(strm, Z_SYNC_FLUSH);
    /* OUT_SIZE exceeds deflateBound, so one call consumes everything. */
    if (rc != Z_OK || strm->avail_in != 0 || strm->avail_out == 0) {
        j->failed = 1;
        return;
    }
    j->outlen = OUT_SIZE - strm->avail_out;
}

static int init_strm(z_stream *s, int level)
{
    memset(s, 0, sizeof(*s));
    return deflateInit2(s, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK ? 0 : -1;
}

static void *worker_main(void *arg)
{
    tt_bundle_gzip *g = arg;
    z_stream strm;
    int ok = init_strm(&strm, g->level) == 0;
    pthread_mutex_lock(&g->mu);
    for (;;) {
        while (g->seq_taken == g->seq_submitted && !g->stopping) {
            pthread_cond_wait(&g->work, &g->mu);
        }
        if (g->seq_taken == g->seq_submitted) {
            break;
        }
        gz_job *j = job_at(g, g->seq_taken++);
        pthread_mutex_unlock(&g->mu);
        if (ok) {
            compress_job(&strm, j);
        } else {
            j->failed = 1;
        }
        pthread_mutex_lock(&g->mu);
        j->done = 1;
        pthread_cond_broadcast(&g->done);
    }
    pthread_mutex_unlock(&g->mu);
    if (ok) {
        deflateEnd(&strm);
    }
    return NULL;
}

static int sink_all(tt_bundle_gzip *g, const void *p, size_t n)
{
    if (g->failed) {
        return -1;
    }
    if (g->sink(g->ctx, p, n) != 0) {
        g->failed = 1;
        return -1;
    }
    return 0;
}

static int send_header(tt_bundle_gzip *g)
{
    /* ID1 ID2 CM=8 FLG=0 MTIME=0 XFL=0 OS=3: no name, no time. */
    static const unsigned char hdr[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    if (g->header_sent) {
        return 0;
    }
    g->header_sent = 1;
    return sink_all(g, hdr, sizeof(hdr));
}

/* Wait for the oldest job, hand its output to the sink, free its slot. */
static int emit_oldest(tt_bundle_gzip *g)
{
    gz_job *j = job_at(g, g->seq_emit);
    if (g->nthreads > 1) {
        pthread_mutex_lock(&g->mu);
        while (!j->done) {
            pthread_cond_wait(&g->done, &g->mu);
        }
        pthread_mutex_unlock(&g->mu);
    }
    g->seq_emit++;
    if (j->failed) {
        g->failed = 1;
        return -1;
    }
    g->crc = crc32_combine(g->crc, j->crc, (z_off_t)j->inlen);
    return sink_all(g, j->out, j->outlen);
}

/* Hand the job being filled to compression and start the next one. */
static int submit(tt_bundle_gzip *g)
{
    gz_job *j = job_at(g, g->seq_fill);
    if (g->nthreads > 1) {
        pthread_mutex_lock(&g->mu);
        j->done = 0;
        g->seq_submitted = g->seq_fill + 1;
        pthread_cond_signal(&g->work);
        pthread_mutex_unlock(&g->mu);
    } else {
        compress_job(&g->inline_strm, j);
        j->done = 1;
    }
    g->seq_fill++;
    while (g->seq_fill - g->seq_emit >= g->njobs) {
        if (emit_oldest(g) != 0) {
            return -1;
        }
    }
    /* In threaded mode, also emit whatever is already finished, so output
     * flows steadily; never wait here. */
    while (g->nthreads > 1 && g->seq_emit < g->seq_fill) {
        gz_job *old = job_at(g, g->seq_emit);
        pthread_mutex_lock(&g->mu);
        int d = old->done;
        pthread_mutex_unlock(&g->mu);
        if (!d || emit_oldest(g) != 0) {
            break;
        }
    }
    gz_job *next = job_at(g, g->seq_fill);
    /* The previous block's tail primes the next block (pigz's trick). */
    size_t keep = j->inlen < DICT_SIZE ? j->inlen : DICT_SIZE;
    memcpy(next->dict, j->in + j->inlen - keep, keep);
    next->dictlen = keep;
    next->inlen = 0;
    return g->failed ? -1 : 0;
}

tt_bundle_gzip *tt_bundle_gzip_new(int level, int threads, tt_gzip_sink sink, void *ctx)
{
    if (level < 1 || level > 9 || threads < 0 || threads > TT_GZIP_MAX_THREADS) {
        return NULL;
    }
    tt_bundle_gzip *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        return NULL;
    }
    g->level = level;
    g->nthreads = threads;
    g->sink = sink;
    g->ctx = ctx;
    g->crc = crc32(0L, Z_NULL, 0);
    g->njobs = threads > 1 ? (size_t)(2 * threads + 2) : 1;
    g->jobs = calloc(g->njobs, sizeof(gz_job));
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->work, NULL);
    pthread_cond_init(&g->done, NULL);
    if (g->jobs == NULL) {
        tt_bundle_gzip_free(g);
        return NULL;
    }
    if (threads <= 1) {
        if (init_strm(&g->inline_strm, level) != 0) {
            tt_bundle_gzip_free(g);
            return NULL;
        }
        g->inline_init = 1;
        return g;
    }
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&g->threads[i], NULL, worker_main, g) != 0) {
            tt_bundle_gzip_free(g);
            return NULL;
        }
        g->started++;
    }
    return g;
}

int tt_bundle_gzip_write(tt_bundle_gzip *g, const void *p, size_t n)
{
    if (g->failed || send_header(g) != 0) {
        return -1;
    }
    const unsigned char *src = p;
    g->total_in += n;
    while (n > 0) {
        gz_job *j = job_at(g, g->seq_fill);
        size_t room = TT_GZIP_BLOCK - j->inlen;
        size_t take = n < room ? n : room;
        memcpy(j->in + j->inlen, src, take);
        j->inlen += take;
        src += take;
        n -= take;
        if (j->inlen == TT_GZIP_BLOCK && submit(g) != 0) {
            return -1;
        }
    }
    return 0;
}

int tt_bundle_gzip_finish(tt_bundle_gzip *g)
{
    if (g->failed || send_header(g) != 0) {
        return -1;
    }
    if (job_at(g, g->seq_fill)->inlen > 0 && submit(g) != 0) {
        return -1;
    }
    while (g->seq_emit < g->seq_fill) {
        if (emit_oldest(g) != 0) {
            return -1;
        }
    }
    /* A final, empty fixed-Huffman block (BFINAL=1, BTYPE=01, EOB), then the
     * trailer: CRC-32 and length mod 2^32, little-endian. */
    unsigned char tail[10] = {0x03, 0x00};
    uint32_t crc = (uint32_t)g->crc, isize = (uint32_t)g->total_in;
    for (int i = 0; i < 4; i++) {
        tail[2 + i] = (unsigned char)(crc >> (8 * i));
        tail[6 + i] = (unsigned char)(isize >> (8 * i));
    }
    return sink_all(g, tail, sizeof(tail));
}

uint64_t tt_bundle_gzip_total_in(const tt_bundle_gzip *g)
{
    return g->total_in;
}

void tt_bundle_gzip_free(tt_bundle_gzip *g)
{
    if (g == NULL) {
        return;
    }
    if (g->started > 0) {
        pthread_mutex_lock(&g->mu);
        g->stopping = 1;
        pthread_cond_broadcast(&g->work);
        pthread_mutex_unlock(&g->mu);
        for (int i = 0; i < g->started; i++) {
            pthread_join(g->threads[i], NULL);
        }
    }
    if (g->inline_init) {
        deflateEnd(&g->inline_strm);
    }
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->work);
    pthread_cond_destroy(&g->done);
    free(g->jobs);
    free(g);
}
