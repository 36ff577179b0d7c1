/* tt_bundle_gzip.h - a reproducible, parallel gzip writer (after pigz).
 *
 * Input is cut into fixed TT_GZIP_BLOCK-byte blocks. Each block is deflated on
 * its own (primed with the previous block's last 32 KiB as dictionary) and
 * ended with Z_SYNC_FLUSH, so the compressed blocks concatenate into one
 * deflate stream; their CRCs are joined with crc32_combine. Because the cut
 * points depend only on the byte count, the output is the same bytes for any
 * number of threads and any sizes of write calls. The header has mtime 0, no
 * file name and OS 3 (Unix), so identical input gives an identical file. */
#ifndef TT_BUNDLE_GZIP_H
#define TT_BUNDLE_GZIP_H

#include <stddef.h>
#include <stdint.h>

#define TT_GZIP_BLOCK (256 * 1024)
#define TT_GZIP_MAX_THREADS 16

/* Where compressed bytes go: returns 0, or -1 to fail the stream. Called only
 * from the thread that calls tt_bundle_gzip_write / _finish, in order. */
typedef int (*tt_gzip_sink)(void *ctx, const void *p, size_t n);

typedef struct tt_bundle_gzip tt_bundle_gzip;

/* level 1..9; threads 0 or 1 = compress in the caller's thread, otherwise
 * that many worker threads (at most TT_GZIP_MAX_THREADS). The gzip header is
 * sent to the sink by the first write or by finish. Returns NULL when out of
 * memory or threads cannot be started (nothing is left running then). */
tt_bundle_gzip *tt_bundle_gzip_new(int level, int threads, tt_gzip_sink sink, void *ctx);

/* Compress n bytes. Returns 0, or -1 after a sink or zlib failure (sticky:
 * every later call fails too). Memory use is fixed: at most 2 * threads + 2
 * blocks are in flight, then the call waits for the oldest. */
int tt_bundle_gzip_write(tt_bundle_gzip *g, const void *p, size_t n);

/* Flush all blocks, end the deflate stream and write the trailer. 0 or -1. */
int tt_bundle_gzip_finish(tt_bundle_gzip *g);

/* Input bytes taken so far. */
uint64_t tt_bundle_gzip_total_in(const tt_bundle_gzip *g);

/* Stop the workers and free; accepts NULL and unfinished streams. */
void tt_bundle_gzip_free(tt_bundle_gzip *g);

#endif
