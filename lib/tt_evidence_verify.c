/* tt_evidence_verify.c - `evidence verify`: check a bundle's signature,
 * entries and event chain in one streaming pass, naming every problem. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "tt_bundle.h"
#include "tt_chain.h"
#include "tt_evidence.h"
#include "tt_sign.h"
#include "tt_time.h"

#define READ_BUF (1 << 20)

typedef struct vfile {
    const char *path; /* borrowed from the manifest JSON */
    int64_t size;
    unsigned char sha[TT_CHAIN_DIGEST];
    int seen;
} vfile;

typedef struct vstate {
    tt_evidence_problem_cb cb;
    void *ctx;
    tt_evidence_verify_result *res;
    json_t *man;
    vfile *files;
    size_t nfiles;
    uint64_t n; /* signed event count */
    unsigned char final[TT_CHAIN_DIGEST];
    uint64_t interval;
    size_t ncp;
    unsigned char (*cp)[TT_CHAIN_DIGEST];
    EVP_MD_CTX *file_md, *line_md;
    EVP_MD *sha;
    tt_chain *chain; /* the running chain over the lines read */

    /* events.ndjson */
    uint64_t k; /* complete lines seen */
    int in_line;
    unsigned char link[TT_CHAIN_DIGEST];
    int bad;     /* the first chain problem was reported */
    int pending; /* waiting for line k+1 to classify line pk */
    uint64_t pk;
    unsigned char ph[TT_CHAIN_DIGEST];
} vstate;

static void problem(vstate *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(vstate *v, const char *fmt, ...)
{
    v->res->ok = 0;
    v->res->problems++;
    if (v->res->problems > TT_EVIDENCE_MAX_PROBLEMS) {
        return;
    }
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    v->cb(v->ctx, msg);
}

/* link_i as signed, when the manifest pins it. 0 or -1. */
static int expected_link(const vstate *v, uint64_t i, unsigned char out[TT_CHAIN_DIGEST])
{
    if (i == 0) {
        tt_chain_seed(out);
        return 0;
    }
    if (i == v->n) {
        memcpy(out, v->final, TT_CHAIN_DIGEST);
        return 0;
    }
    if (i < v->n && i % v->interval == 0 && i / v->interval <= v->ncp) {
        memcpy(out, v->cp[i / v->interval - 1], TT_CHAIN_DIGEST);
        return 0;
    }
    return -1;
}

/* 1 when step(expected link_a, h) is expected link_b. */
static int fits(const vstate *v, uint64_t a, const unsigned char *h, uint64_t b)
{
    unsigned char la[TT_CHAIN_DIGEST], lb[TT_CHAIN_DIGEST], got[TT_CHAIN_DIGEST];
    if (h == NULL || expected_link(v, a, la) != 0 || expected_link(v, b, lb) != 0) {
        return 0;
    }
    tt_chain_step(la, h, got);
    return memcmp(got, lb, TT_CHAIN_DIGEST) == 0;
}

/* Line pk broke the chain; h2 is the digest of line pk+1 (NULL at the end).
 * With a checkpoint at every event the cause can be told apart. */
static void classify(vstate *v, uint64_t pk, const unsigned char *h1, const unsigned char *h2)
{
    unsigned long long k = (unsigned long long)pk;
    int is_next = fits(v, pk, h1, pk + 1);
    int second_is_k = fits(v, pk - 1, h2, pk);
    if (is_next && second_is_k) {
        problem(v,
                "events.ndjson: lines %llu and %llu are out of order (line %llu holds signed "
                "event %llu)",
                k, k + 1, k, k + 1);
    } else if (is_next) {
        problem(v,
                "events.ndjson: signed event %llu is missing (line %llu holds signed event "
                "%llu)",
                k, k, k + 1);
    } else if (second_is_k) {
        problem(v, "events.ndjson: line %llu is an inserted event, not in the signed chain", k);
    } else {
        problem(v, "events.ndjson: line %llu was modified (it does not match signed event %llu)", k,
                k);
    }
}

static void on_line(vstate *v, const unsigned char h[TT_CHAIN_DIGEST])
{
    v->k++;
    tt_chain_add_digest(v->chain, h);
    memcpy(v->link, tt_chain_link(v->chain), TT_CHAIN_DIGEST);
    if (v->bad) {
        return;
    }
    if (v->pending) {
        v->pending = 0;
        v->bad = 1;
        classify(v, v->pk, v->ph, h);
        return;
    }
    if (v->k > v->n) {
        v->bad = 1;
        problem(v, "events.ndjson: line %llu is an inserted event beyond the %llu signed events",
                (unsigned long long)v->k, (unsigned long long)v->n);
        return;
    }
    unsigned char want[TT_CHAIN_DIGEST];
    if (expected_link(v, v->k, want) != 0 || memcmp(want, v->link, TT_CHAIN_DIGEST) == 0) {
        return;
    }
    if (v->interval == 1) {
        v->pending = 1;
        v->pk = v->k;
        memcpy(v->ph, h, TT_CHAIN_DIGEST);
        return;
    }
    v->bad = 1;
    uint64_t lo = v->k - (v->k % v->interval == 0 ? v->interval : v->k % v->interval) + 1;
    problem(v,
            "events.ndjson: the first change from the signed chain is in lines %llu..%llu "
            "(checkpoints every %llu events)",
            (unsigned long long)lo, (unsigned long long)v->k, (unsigned long long)v->interval);
}

static void end_line(vstate *v)
{
    unsigned char h[TT_CHAIN_DIGEST];
    unsigned int n = 0;
    EVP_DigestFinal_ex(v->line_md, h, &n);
    v->in_line = 0;
    on_line(v, h);
}

static void events_data(vstate *v, const char *p, size_t n)
{
    while (n > 0) {
        if (!v->in_line) {
            EVP_DigestInit_ex2(v->line_md, v->sha, NULL);
            v->in_line = 1;
        }
        const char *nl = memchr(p, '\n', n);
        size_t seg = nl ? (size_t)(nl - p) : n;
        EVP_DigestUpdate(v->line_md, p, seg);
        if (nl == NULL) {
            return;
        }
        end_line(v);
        p += seg + 1;
        n -= seg + 1;
    }
}

static void events_end(vstate *v)
{
    if (v->in_line) {
        problem(v, "events.ndjson: the last line (%llu) has no newline",
                (unsigned long long)v->k + 1);
        end_line(v);
    }
    if (v->pending) {
        v->pending = 0;
        v->bad = 1;
        classify(v, v->pk, v->ph, NULL);
    }
    if (!v->bad && v->k < v->n) {
        problem(v,
                "events.ndjson: signed events %llu..%llu are missing (the file ends after line "
                "%llu)",
                (unsigned long long)v->k + 1, (unsigned long long)v->n, (unsigned long long)v->k);
    }
    if (v->k != v->n) {
        problem(v, "events.ndjson: %llu lines, but the manifest signs %llu events",
                (unsigned long long)v->k, (unsigned long long)v->n);
    }
    v->res->events = v->k;
}

/* Read the rest of the manifest's structure; problems for what is wrong.
 * Returns 0 when verification can go on. */
static int load_manifest(vstate *v, const char *text, size_t len)
{
    json_error_t je;
    v->man = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(v->man)) {
        problem(v, "manifest.json: not a JSON object: %s", je.text);
        return -1;
    }
    const char *fmt = json_string_value(json_object_get(v->man, "format"));
    if (fmt == NULL || strcmp(fmt, TT_EVIDENCE_FORMAT) != 0) {
        problem(v, "manifest.json: format is not %s", TT_EVIDENCE_FORMAT);
        return -1;
    }
    json_t *files = json_object_get(v->man, "files");
    json_t *ch = json_object_get(v->man, "chain");
    json_t *cps = json_object_get(ch, "checkpoints");
    json_int_t n = json_integer_value(json_object_get(ch, "events"));
    json_int_t iv = json_integer_value(json_object_get(ch, "checkpoint_interval"));
    if (!json_is_array(files) || !json_is_array(cps) || n < 0 || iv < 1 ||
        json_array_size(cps) > TT_CHAIN_MAX_CHECKPOINTS ||
        tt_chain_unhex(json_string_value(json_object_get(ch, "final")), v->final,
                       TT_CHAIN_DIGEST) != 0 ||
        json_array_size(files) > TT_EVIDENCE_MAX_ENTRIES) {
        problem(v, "manifest.json: malformed files or chain section");
        return -1;
    }
    v->n = (uint64_t)n;
    v->interval = (uint64_t)iv;
    v->ncp = json_array_size(cps);
    v->cp = calloc(v->ncp + 1, TT_CHAIN_DIGEST);
    v->nfiles = json_array_size(files);
    v->files = calloc(v->nfiles + 1, sizeof(vfile));
    if (v->cp == NULL || v->files == NULL) {
        problem(v, "out of memory");
        return -1;
    }
    for (size_t j = 0; j < v->ncp; j++) {
        if (tt_chain_unhex(json_string_value(json_array_get(cps, j)), v->cp[j], TT_CHAIN_DIGEST) !=
            0) {
            problem(v, "manifest.json: malformed checkpoint %zu", j);
            return -1;
        }
    }
    for (size_t i = 0; i < v->nfiles; i++) {
        json_t *f = json_array_get(files, i);
        vfile *vf = &v->files[i];
        vf->path = json_string_value(json_object_get(f, "path"));
        vf->size = json_integer_value(json_object_get(f, "size"));
        if (vf->path == NULL || tt_chain_unhex(json_string_value(json_object_get(f, "sha256")),
                                               vf->sha, TT_CHAIN_DIGEST) != 0) {
            problem(v, "manifest.json: malformed entry %zu of files", i);
            return -1;
        }
    }
    return 0;
}

/* Read an entry fully into buf (at most max bytes). Returns its size or -1. */
static long read_small(tt_bundle_reader *r, unsigned char *buf, size_t max)
{
    size_t got = 0;
    for (;;) {
        long k = tt_bundle_reader_read(r, buf + got, max - got);
        if (k < 0) {
            return -1;
        }
        if (k == 0) {
            return (long)got;
        }
        got += (size_t)k;
        if (got == max) {
            unsigned char extra;
            k = tt_bundle_reader_read(r, &extra, 1);
            return k == 0 ? (long)got : -2;
        }
    }
}

static vfile *find_file(vstate *v, const char *name, size_t hint)
{
    if (hint < v->nfiles && strcmp(v->files[hint].path, name) == 0) {
        return &v->files[hint];
    }
    for (size_t i = 0; i < v->nfiles; i++) {
        if (strcmp(v->files[i].path, name) == 0) {
            return &v->files[i];
        }
    }
    return NULL;
}

static void show_progress(int on, tt_bundle_reader *r, int64_t total, int done)
{
    static int64_t last;
    int64_t now = tt_time_mono_ns();
    if (!on || (!done && now - last < 250000000)) {
        return;
    }
    last = now;
    fprintf(stderr, "\r\033[Kevidence verify: %.1f of %.1f MB%s",
            (double)tt_bundle_reader_offset(r) / 1e6, (double)total / 1e6, done ? "\n" : "");
}

/* The first two entries: manifest.json and manifest.sig, and the signature.
 * Returns 0 to go on checking the files, -1 to stop (problems reported). */
static int check_head(vstate *v, tt_bundle_reader *r, EVP_PKEY *pub, unsigned char *buf)
{
    const char *name;
    int64_t size;
    tt_bundle_kind kind;
    int rc = tt_bundle_reader_next(r, &name, &size, &kind);
    if (rc <= 0) {
        problem(v,
                rc == 0 ? "missing entry: manifest.json (the archive is empty)"
                        : "archive is truncated or corrupt: %s",
                tt_bundle_reader_error(r));
        return -1;
    }
    if (strcmp(name, "manifest.json") != 0) {
        problem(v, "the first entry is '%.255s', not manifest.json", name);
        return -1;
    }
    long mlen = read_small(r, buf, TT_EVIDENCE_MAX_MANIFEST);
    if (mlen < 0) {
        problem(v,
                mlen == -2 ? "manifest.json: larger than the limit"
                           : "archive is truncated or corrupt: %s",
                tt_bundle_reader_error(r));
        return -1;
    }
    rc = tt_bundle_reader_next(r, &name, &size, &kind);
    if (rc <= 0 || strcmp(name, "manifest.sig") != 0) {
        problem(v,
                rc < 0 ? "archive is truncated or corrupt: %s"
                       : "missing entry: manifest.sig (must follow manifest.json)%s",
                rc < 0 ? tt_bundle_reader_error(r) : "");
        return -1;
    }
    unsigned char sig[TT_SIGN_SIGLEN + 1];
    long slen = read_small(r, sig, sizeof(sig));
    if (slen == -1) {
        problem(v, "archive is truncated or corrupt: %s", tt_bundle_reader_error(r));
        return -1;
    }
    char have[TT_FINGERPRINT_BUFSZ] = "?";
    tt_sign_fingerprint(pub, have);
    json_t *j = json_loadb((const char *)buf, (size_t)mlen, 0, NULL);
    const char *signer =
        json_string_value(json_object_get(json_object_get(j, "signing_key"), "fingerprint"));
    snprintf(v->res->signer, sizeof(v->res->signer), "%s", signer ? signer : "");
    json_decref(j);
    if (slen != TT_SIGN_SIGLEN || !tt_sign_verify(pub, buf, (size_t)mlen, sig, TT_SIGN_SIGLEN)) {
        if (v->res->signer[0] && strcmp(v->res->signer, have) != 0) {
            problem(v, "wrong key: the bundle names signing key %s, --pubkey is %s", v->res->signer,
                    have);
        } else {
            problem(v,
                    "manifest.sig: the signature does not match manifest.json with key %s "
                    "(manifest or signature modified)",
                    have);
        }
        return -1;
    }
    return load_manifest(v, (const char *)buf, (size_t)mlen);
}

static void check_entries(vstate *v, tt_bundle_reader *r, unsigned char *buf, int prog,
                          int64_t total)
{
    size_t next = 0;
    for (;;) {
        const char *name;
        int64_t size;
        tt_bundle_kind kind;
        int rc = tt_bundle_reader_next(r, &name, &size, &kind);
        if (rc == 0) {
            break;
        }
        if (rc < 0) {
            problem(v, "archive is truncated or corrupt: %s", tt_bundle_reader_error(r));
            return;
        }
        if (kind == TT_BUNDLE_DIR) {
            continue; /* a directory carries no content; tar adds them on repacking */
        }
        char nm[TT_BUNDLE_MAX_NAME + 1];
        snprintf(nm, sizeof(nm), "%s", name);
        vfile *f = find_file(v, nm, next);
        if (kind == TT_BUNDLE_OTHER || f == NULL) {
            problem(v, "unexpected entry: %s%s", nm,
                    kind == TT_BUNDLE_OTHER ? " (not a regular file)" : " (not in the manifest)");
            continue;
        }
        if (f->seen) {
            problem(v, "duplicate entry: %s", nm);
            continue;
        }
        size_t idx = (size_t)(f - v->files);
        if (idx < next) {
            problem(v, "entry out of order: %s", nm);
        }
        f->seen = 1;
        next = idx + 1;
        int events = strcmp(nm, "events.ndjson") == 0;
        EVP_DigestInit_ex2(v->file_md, v->sha, NULL);
        int64_t got = 0;
        long k;
        while ((k = tt_bundle_reader_read(r, buf, READ_BUF)) > 0) {
            EVP_DigestUpdate(v->file_md, buf, (size_t)k);
            if (events) {
                events_data(v, (const char *)buf, (size_t)k);
            }
            got += k;
            show_progress(prog, r, total, 0);
        }
        v->res->bytes += (uint64_t)got;
        if (k < 0) {
            problem(v, "archive is truncated or corrupt: %s: %s", nm, tt_bundle_reader_error(r));
            return;
        }
        if (events) {
            events_end(v);
        }
        unsigned char h[TT_CHAIN_DIGEST];
        unsigned int hl = 0;
        EVP_DigestFinal_ex(v->file_md, h, &hl);
        v->res->files++;
        if (got != f->size) {
            problem(v, "%s: %lld bytes, the manifest says %lld", nm, (long long)got,
                    (long long)f->size);
        }
        if (memcmp(h, f->sha, TT_CHAIN_DIGEST) != 0) {
            char hx[TT_CHAIN_HEXSZ], wx[TT_CHAIN_HEXSZ];
            tt_chain_hex(h, TT_CHAIN_DIGEST, hx);
            tt_chain_hex(f->sha, TT_CHAIN_DIGEST, wx);
            problem(v, "%s: SHA-256 %s does not match the manifest (%s)", nm, hx, wx);
        }
    }
    for (size_t i = 0; i < v->nfiles; i++) {
        if (!v->files[i].seen) {
            problem(v, "missing entry: %s", v->files[i].path);
        }
    }
}

int tt_evidence_verify(const char *bundle, EVP_PKEY *pub, int prog, tt_evidence_problem_cb cb,
                       void *ctx, tt_evidence_verify_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof(*res));
    res->ok = 1;
    vstate v = {.cb = cb, .ctx = ctx, .res = res};
    tt_chain_seed(v.link);
    unsigned char *buf =
        malloc(TT_EVIDENCE_MAX_MANIFEST > READ_BUF ? TT_EVIDENCE_MAX_MANIFEST : READ_BUF);
    v.file_md = EVP_MD_CTX_new();
    v.line_md = EVP_MD_CTX_new();
    v.sha = EVP_MD_fetch(NULL, "SHA256", NULL);
    v.chain = tt_chain_new();
    if (buf == NULL || v.file_md == NULL || v.line_md == NULL || v.sha == NULL || v.chain == NULL) {
        snprintf(err, errlen, "out of memory");
        free(buf);
        EVP_MD_CTX_free(v.file_md);
        EVP_MD_CTX_free(v.line_md);
        EVP_MD_free(v.sha);
        tt_chain_free(v.chain);
        return -1;
    }
    char oerr[512];
    struct stat sb;
    int64_t total = stat(bundle, &sb) == 0 ? (int64_t)sb.st_size : 0;
    tt_bundle_reader *r = tt_bundle_reader_open(bundle, oerr, sizeof(oerr));
    if (r == NULL) {
        problem(&v, "cannot read the archive: %s", oerr);
    } else if (check_head(&v, r, pub, buf) == 0) {
        check_entries(&v, r, buf, prog, total);
        show_progress(prog, r, total, 1);
    }
    tt_bundle_reader_free(r);
    free(buf);
    free(v.files);
    free(v.cp);
    json_decref(v.man);
    EVP_MD_CTX_free(v.file_md);
    EVP_MD_CTX_free(v.line_md);
    EVP_MD_free(v.sha);
    tt_chain_free(v.chain);
    return 0;
}
