/* tt_bundle.c - reproducible tar.gz writing (libarchive tar on top of the
 * parallel gzip writer) and streaming reading (libarchive, gzip filter). */
#include "tt_bundle.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <zlib.h>

#include "tt_bundle_gzip.h"

struct tt_bundle_writer {
    int fd;
    struct archive *ar;
    tt_bundle_gzip *gz;
    uint64_t want, got; /* the open entry: its size, bytes given */
    int in_entry;
    char err[512];
};

static int fd_sink(void *ctx, const void *p, size_t n)
{
    tt_bundle_writer *w = ctx;
    const char *c = p;
    while (n > 0) {
        ssize_t k = write(w->fd, c, n);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            snprintf(w->err, sizeof(w->err), "write: %s", strerror(errno));
            return -1;
        }
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

/* libarchive hands us tar blocks; they go to the gzip writer. */
static la_ssize_t ar_write(struct archive *a, void *ctx, const void *buf, size_t n)
{
    (void)a;
    tt_bundle_writer *w = ctx;
    if (tt_bundle_gzip_write(w->gz, buf, n) != 0) {
        if (w->err[0] == '\0') {
            snprintf(w->err, sizeof(w->err), "gzip compression failed");
        }
        return -1;
    }
    return (la_ssize_t)n;
}

static int set_ar_err(tt_bundle_writer *w, const char *what)
{
    if (w->err[0] == '\0') {
        const char *m = archive_error_string(w->ar);
        snprintf(w->err, sizeof(w->err), "%s: %s", what, m ? m : "failed");
    }
    return -1;
}

tt_bundle_writer *tt_bundle_writer_open(int fd, int level, int threads, char *err, size_t errlen)
{
    tt_bundle_writer *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->fd = fd;
    w->gz = tt_bundle_gzip_new(level, threads, fd_sink, w);
    w->ar = archive_write_new();
    if (w->gz == NULL || w->ar == NULL) {
        snprintf(err, errlen, "cannot start the gzip writer");
        tt_bundle_writer_free(w);
        return NULL;
    }
    /* pax "restricted": plain ustar headers unless a value does not fit
     * (a name over 100 bytes, an entry over 8 GiB); gzip is done by us. */
    if (archive_write_set_format_pax_restricted(w->ar) != ARCHIVE_OK ||
        archive_write_add_filter_none(w->ar) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(w->ar, 10240) != ARCHIVE_OK ||
        archive_write_open(w->ar, w, NULL, ar_write, NULL) != ARCHIVE_OK) {
        snprintf(err, errlen, "libarchive: %s", archive_error_string(w->ar));
        tt_bundle_writer_free(w);
        return NULL;
    }
    return w;
}

int tt_bundle_writer_begin(tt_bundle_writer *w, const char *name, uint64_t size)
{
    if (w->in_entry || strlen(name) > TT_BUNDLE_MAX_NAME || size > INT64_MAX) {
        snprintf(w->err, sizeof(w->err), "%s: bad entry", name);
        return -1;
    }
    struct archive_entry *e = archive_entry_new();
    if (e == NULL) {
        snprintf(w->err, sizeof(w->err), "out of memory");
        return -1;
    }
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)size);
    archive_entry_set_mtime(e, 0, 0);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    int rc = archive_write_header(w->ar, e);
    archive_entry_free(e);
    if (rc != ARCHIVE_OK) {
        return set_ar_err(w, name);
    }
    w->want = size;
    w->got = 0;
    w->in_entry = 1;
    return 0;
}

int tt_bundle_writer_data(tt_bundle_writer *w, const void *p, size_t n)
{
    if (!w->in_entry || n > w->want - w->got) {
        snprintf(w->err, sizeof(w->err), "entry data longer than its declared size");
        return -1;
    }
    const char *c = p;
    while (n > 0) {
        la_ssize_t k = archive_write_data(w->ar, c, n);
        if (k <= 0) {
            return set_ar_err(w, "tar");
        }
        c += k;
        n -= (size_t)k;
        w->got += (uint64_t)k;
    }
    return 0;
}

int tt_bundle_writer_end(tt_bundle_writer *w)
{
    if (!w->in_entry || w->got != w->want) {
        snprintf(w->err, sizeof(w->err), "entry data shorter than its declared size");
        return -1;
    }
    w->in_entry = 0;
    if (archive_write_finish_entry(w->ar) != ARCHIVE_OK) {
        return set_ar_err(w, "tar");
    }
    return 0;
}

int tt_bundle_writer_finish(tt_bundle_writer *w)
{
    if (w->in_entry) {
        snprintf(w->err, sizeof(w->err), "an entry is still open");
        return -1;
    }
    if (archive_write_close(w->ar) != ARCHIVE_OK) {
        return set_ar_err(w, "tar");
    }
    if (tt_bundle_gzip_finish(w->gz) != 0) {
        if (w->err[0] == '\0') {
            snprintf(w->err, sizeof(w->err), "gzip compression failed");
        }
        return -1;
    }
    return 0;
}

uint64_t tt_bundle_writer_bytes(const tt_bundle_writer *w)
{
    return tt_bundle_gzip_total_in(w->gz);
}

const char *tt_bundle_writer_error(const tt_bundle_writer *w)
{
    return w->err;
}

void tt_bundle_writer_free(tt_bundle_writer *w)
{
    if (w == NULL) {
        return;
    }
    if (w->ar) {
        archive_write_free(w->ar); /* after finish this only frees */
    }
    tt_bundle_gzip_free(w->gz);
    free(w);
}

/* ---- reading ---- */

/* The gzip layer is ours, not libarchive's: libarchive does not check the
 * gzip trailer, and a bundle with a wrong CRC-32 or length, or with bytes
 * after the gzip stream, is corrupt and must be reported as such. */
#define IN_BLOCK (256 * 1024)
#define OUT_BLOCK (1 << 20)

struct tt_bundle_reader {
    struct archive *ar;
    FILE *fp;
    z_stream zs;
    int zinit;
    int zdone; /* the gzip member ended and its trailer checked out */
    int zfailed;
    int64_t consumed;
    unsigned char *in, *out;
    char err[512];
};

/* Produce the next piece of decompressed tar bytes: the count, 0 at the
 * end of the gzip stream, -1 on corruption (r->err says what). */
static long gz_read(tt_bundle_reader *r)
{
    if (r->zfailed) {
        return -1;
    }
    if (r->zdone) {
        return 0;
    }
    r->zs.next_out = r->out;
    r->zs.avail_out = OUT_BLOCK;
    while (r->zs.avail_out == OUT_BLOCK) {
        if (r->zs.avail_in == 0) {
            size_t n = fread(r->in, 1, IN_BLOCK, r->fp);
            if (n == 0) {
                snprintf(r->err, sizeof(r->err), "%s",
                         ferror(r->fp) ? "read error" : "truncated gzip stream");
                r->zfailed = 1;
                return -1;
            }
            r->consumed += (int64_t)n;
            r->zs.next_in = r->in;
            r->zs.avail_in = (uInt)n;
        }
        int rc = inflate(&r->zs, Z_NO_FLUSH);
        if (rc == Z_STREAM_END) {
            /* inflate has checked the CRC-32 and length of the trailer. */
            unsigned char extra;
            if (r->zs.avail_in > 0 || fread(&extra, 1, 1, r->fp) == 1) {
                snprintf(r->err, sizeof(r->err), "data after the end of the gzip stream");
                r->zfailed = 1;
                return -1;
            }
            r->zdone = 1;
            break;
        }
        if (rc != Z_OK) {
            snprintf(r->err, sizeof(r->err), "corrupt gzip stream: %s",
                     r->zs.msg ? r->zs.msg : "inflate failed");
            r->zfailed = 1;
            return -1;
        }
    }
    return (long)(OUT_BLOCK - r->zs.avail_out);
}

static la_ssize_t ar_read(struct archive *a, void *ctx, const void **buf)
{
    tt_bundle_reader *r = ctx;
    long n = gz_read(r);
    if (n < 0) {
        archive_set_error(a, EIO, "%s", r->err);
        return -1;
    }
    *buf = r->out;
    return (la_ssize_t)n;
}

static int set_rd_err(tt_bundle_reader *r)
{
    if (r->zfailed) {
        return -1; /* r->err already says what the gzip layer found */
    }
    const char *m = archive_error_string(r->ar);
    snprintf(r->err, sizeof(r->err), "%s", m ? m : "unreadable archive");
    return -1;
}

tt_bundle_reader *tt_bundle_reader_open(const char *path, char *err, size_t errlen)
{
    tt_bundle_reader *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->in = malloc(IN_BLOCK);
    r->out = malloc(OUT_BLOCK);
    r->fp = fopen(path, "rb");
    if (r->fp == NULL) {
        snprintf(err, errlen, "%.300s: %s", path, strerror(errno));
        tt_bundle_reader_free(r);
        return NULL;
    }
    /* windowBits 16+15: gzip wrapper only, trailer checked. */
    if (r->in == NULL || r->out == NULL || inflateInit2(&r->zs, 16 + 15) != Z_OK) {
        snprintf(err, errlen, "out of memory");
        tt_bundle_reader_free(r);
        return NULL;
    }
    r->zinit = 1;
    r->ar = archive_read_new();
    if (r->ar == NULL || archive_read_support_filter_none(r->ar) != ARCHIVE_OK ||
        archive_read_support_format_tar(r->ar) != ARCHIVE_OK) {
        snprintf(err, errlen, "cannot set up libarchive");
        tt_bundle_reader_free(r);
        return NULL;
    }
    if (archive_read_open(r->ar, r, NULL, ar_read, NULL) != ARCHIVE_OK) {
        snprintf(err, errlen, "%.300s: %s", path,
                 r->zfailed                    ? r->err
                 : archive_error_string(r->ar) ? archive_error_string(r->ar)
                                               : "not a tar.gz");
        tt_bundle_reader_free(r);
        return NULL;
    }
    return r;
}

int tt_bundle_reader_next(tt_bundle_reader *r, const char **name, int64_t *size,
                          tt_bundle_kind *kind)
{
    struct archive_entry *e = NULL;
    int rc = archive_read_next_header(r->ar, &e);
    if (rc == ARCHIVE_EOF) {
        /* The tar end marker: read the rest of the gzip stream (padding) so
         * its trailer is checked too. */
        long n;
        do {
            n = gz_read(r);
        } while (n > 0);
        return n < 0 ? -1 : 0;
    }
    if (rc != ARCHIVE_OK) {
        /* ARCHIVE_WARN included: libarchive uses it for damaged headers. */
        return set_rd_err(r);
    }
    *name = archive_entry_pathname(e);
    if (*name == NULL) {
        *name = "";
    }
    *size = archive_entry_size(e);
    mode_t t = archive_entry_filetype(e);
    *kind = t == AE_IFREG ? TT_BUNDLE_FILE : t == AE_IFDIR ? TT_BUNDLE_DIR : TT_BUNDLE_OTHER;
    return 1;
}

long tt_bundle_reader_read(tt_bundle_reader *r, void *buf, size_t n)
{
    la_ssize_t k = archive_read_data(r->ar, buf, n);
    if (k < 0) {
        return set_rd_err(r);
    }
    return (long)k;
}

int64_t tt_bundle_reader_offset(const tt_bundle_reader *r)
{
    return r->consumed;
}

const char *tt_bundle_reader_error(const tt_bundle_reader *r)
{
    return r->err;
}

void tt_bundle_reader_free(tt_bundle_reader *r)
{
    if (r == NULL) {
        return;
    }
    if (r->ar) {
        archive_read_free(r->ar);
    }
    if (r->zinit) {
        inflateEnd(&r->zs);
    }
    if (r->fp) {
        fclose(r->fp);
    }
    free(r->in);
    free(r->out);
    free(r);
}
