/* tt_bundle.h - the evidence archive on disk: a reproducible tar.gz written
 * with libarchive (tar) and tt_bundle_gzip (gzip), and read back entry by
 * entry for verification. The writer sets every entry's metadata to fixed
 * values (mtime 0, uid/gid 0, empty owner names, mode 0644, regular file), so
 * the bytes depend only on the entries' names, sizes, contents and order. */
#ifndef TT_BUNDLE_H
#define TT_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

/* Longest entry name, bytes. */
#define TT_BUNDLE_MAX_NAME 255

typedef struct tt_bundle_writer tt_bundle_writer;

/* Start an archive written to fd (not closed by the writer), gzip level 1..9,
 * threads as for tt_bundle_gzip_new. Returns NULL with err filled. */
tt_bundle_writer *tt_bundle_writer_open(int fd, int level, int threads, char *err, size_t errlen);

/* Add an entry of exactly `size` bytes: begin, then data until size bytes were
 * given, then end (which fails when fewer or more bytes came). 0 or -1. */
int tt_bundle_writer_begin(tt_bundle_writer *w, const char *name, uint64_t size);
int tt_bundle_writer_data(tt_bundle_writer *w, const void *p, size_t n);
int tt_bundle_writer_end(tt_bundle_writer *w);

/* Write the tar end marker and the gzip trailer. 0 or -1. */
int tt_bundle_writer_finish(tt_bundle_writer *w);

/* Uncompressed bytes written so far (for progress). */
uint64_t tt_bundle_writer_bytes(const tt_bundle_writer *w);

/* The first error, "" when none. */
const char *tt_bundle_writer_error(const tt_bundle_writer *w);

void tt_bundle_writer_free(tt_bundle_writer *w); /* accepts NULL */

typedef struct tt_bundle_reader tt_bundle_reader;

typedef enum {
    TT_BUNDLE_FILE = 0,
    TT_BUNDLE_DIR,
    TT_BUNDLE_OTHER /* link, device, fifo ...: never in a bundle we write */
} tt_bundle_kind;

/* Open a .tar.gz for reading. Returns NULL with err filled. */
tt_bundle_reader *tt_bundle_reader_open(const char *path, char *err, size_t errlen);

/* Advance to the next entry: 1 with *name (valid until the next call),
 * *size and *kind set; 0 at the end of the archive; -1 when the archive is
 * truncated or corrupt (tt_bundle_reader_error says how). */
int tt_bundle_reader_next(tt_bundle_reader *r, const char **name, int64_t *size,
                          tt_bundle_kind *kind);

/* Read the current entry's data: the number of bytes (> 0), 0 at its end,
 * -1 when the archive is truncated or corrupt. */
long tt_bundle_reader_read(tt_bundle_reader *r, void *buf, size_t n);

/* Compressed bytes consumed so far (for progress). */
int64_t tt_bundle_reader_offset(const tt_bundle_reader *r);

const char *tt_bundle_reader_error(const tt_bundle_reader *r);

void tt_bundle_reader_free(tt_bundle_reader *r); /* accepts NULL */

#endif
