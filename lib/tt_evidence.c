/* tt_evidence.c - `evidence export`: spool and hash the items of a range,
 * build and sign the manifest, then stream everything into a reproducible
 * tar.gz. The verifier is in tt_evidence_verify.c. */
#include "tt_evidence.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "tt_bundle.h"
#include "tt_chain.h"
#include "tt_event.h"
#include "tt_sign.h"
#include "tt_time.h"

#define SPOOL_BUF (1 << 20)
#define COPY_BUF (1 << 20)

const char tt_evidence_readme[] =
    "tokentrail evidence bundle (" TT_EVIDENCE_FORMAT ")\n"
    "=============================================\n"
    "\n"
    "This archive is a signed extract of a tokentrail event store: the OAuth\n"
    "token and incident events of one time range, with what was concluded\n"
    "from them. The files, in archive order:\n"
    "\n"
    "  manifest.json    what was exported (query, time range, counts, the\n"
    "                   tokentrail version), the size and SHA-256 of every\n"
    "                   other file, the hash chain over the events, and the\n"
    "                   fingerprint of the signing key.\n"
    "  manifest.sig     Ed25519 signature of the exact bytes of manifest.json\n"
    "                   (64 raw bytes).\n"
    "  README.txt       this file.\n"
    "  events.ndjson    the events, one JSON object per line, exactly as the\n"
    "                   collector stored them (raw tokens were replaced by\n"
    "                   sha256: fingerprints at ingest), ordered by event\n"
    "                   time, then arrival.\n"
    "  findings.ndjson  analyzer findings in the range, one per line (empty\n"
    "                   when the store holds none; manifest.json says why).\n"
    "  drills/...       fire-drill reports (report.json) run in the range.\n"
    "  policy.yaml      the analyzer policy in force, when one was given.\n"
    "\n"
    "How to verify with tokentrail\n"
    "-----------------------------\n"
    "\n"
    "  tokentrail evidence verify bundle.tar.gz --pubkey signer.pub\n"
    "\n"
    "exits 0 only when the signature, every file and the whole event chain\n"
    "check out, and otherwise names each problem (which file, which line).\n"
    "\n"
    "How to verify by hand (sha256sum, openssl, jq, python3)\n"
    "-------------------------------------------------------\n"
    "\n"
    "Unpack into an empty directory: tar -xzf bundle.tar.gz -C dir && cd dir\n"
    "\n"
    "1. The key. The signer's public key fingerprint is the SHA-256 of the raw\n"
    "   32-byte Ed25519 key; compare it with manifest.json .signing_key:\n"
    "     openssl pkey -pubin -in signer.pub -outform DER | tail -c 32 | sha256sum\n"
    "\n"
    "2. The signature over manifest.json:\n"
    "     openssl pkeyutl -verify -pubin -inkey signer.pub -rawin \\\n"
    "         -in manifest.json -sigfile manifest.sig\n"
    "   must print \"Signature Verified Successfully\".\n"
    "\n"
    "3. Every file against the signed manifest:\n"
    "     jq -r '.files[] | \"\\(.sha256)  \\(.path)\"' manifest.json | sha256sum -c\n"
    "   and check that the archive holds no other files than these plus\n"
    "   manifest.json and manifest.sig (tar -tzf bundle.tar.gz).\n"
    "\n"
    "4. The event chain (it shows that no event was changed, removed, added or\n"
    "   moved, and lets a verifier point at the first one that was):\n"
    "     link_0 = SHA-256(\"tokentrail-chain-v1\")\n"
    "     link_i = SHA-256(link_(i-1) || SHA-256(line_i))\n"
    "   with raw 32-byte digests and line_i the bytes of line i of\n"
    "   events.ndjson without its newline. link_N (N = .chain.events) must be\n"
    "   .chain.final; checkpoint j is link_((j+1) * .chain.checkpoint_interval).\n"
    "     python3 -c 'import hashlib,json,sys\n"
    "     h=lambda b: hashlib.sha256(b).digest()\n"
    "     m=json.load(open(\"manifest.json\")); l=h(b\"tokentrail-chain-v1\"); n=0\n"
    "     for line in open(\"events.ndjson\",\"rb\"):\n"
    "         n+=1; l=h(l+h(line.rstrip(b\"\\n\")))\n"
    "     print(n==m[\"chain\"][\"events\"] and l.hex()==m[\"chain\"][\"final\"])'\n"
    "   must print True.\n"
    "\n"
    "Steps 2 and 3 alone already prove every byte; the chain is what pins a\n"
    "difference to one event.\n";

/* One archive entry whose bytes sit in the spool (or in memory). */
typedef struct ev_entry {
    char name[TT_BUNDLE_MAX_NAME + 1];
    uint64_t off, size;
    unsigned char sha[TT_CHAIN_DIGEST];
    const void *mem; /* non-NULL: the bytes are here, not in the spool */
    int replay;      /* 1: the events, read again from the source */
} ev_entry;

typedef struct export_state {
    const tt_evidence_export_opts *o;
    int spool_fd;
    unsigned char *sbuf;
    size_t slen;
    uint64_t soff; /* bytes of the spool written (flushed + buffered) */
    ev_entry *ent;
    size_t nent;
    EVP_MD_CTX *md;
    tt_chain *chain;
    uint64_t items, bytes;
    uint64_t by_type[TT_EV__COUNT];
    int64_t last_progress_ns;
    const char *what;    /* for progress and errors: "events", "findings" */
    int no_spool;        /* hash only: the items are read again when archived */
    tt_bundle_writer *w; /* the replay's destination */
    uint64_t replayed, replayed_bytes;
    char err[512];
} export_state;

static int spool_flush(export_state *x)
{
    size_t done = 0;
    while (done < x->slen) {
        ssize_t k = write(x->spool_fd, x->sbuf + done, x->slen - done);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            snprintf(x->err, sizeof(x->err), "spool file: %s", strerror(errno));
            return -1;
        }
        done += (size_t)k;
    }
    x->slen = 0;
    return 0;
}

static int spool_add(export_state *x, const void *p, size_t n)
{
    const unsigned char *c = p;
    while (n > 0) {
        if (x->slen == SPOOL_BUF && spool_flush(x) != 0) {
            return -1;
        }
        size_t take = SPOOL_BUF - x->slen < n ? SPOOL_BUF - x->slen : n;
        memcpy(x->sbuf + x->slen, c, take);
        x->slen += take;
        x->soff += take;
        c += take;
        n -= take;
    }
    return 0;
}

static void progress(export_state *x, int force, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void progress(export_state *x, int force, const char *fmt, ...)
{
    if (!x->o->progress) {
        return;
    }
    int64_t now = tt_time_mono_ns();
    if (!force && now - x->last_progress_ns < 250000000) {
        return;
    }
    x->last_progress_ns = now;
    char line[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "\r\033[Kevidence export: %s", line);
    fflush(stderr);
}

/* Start a spooled entry. */
static ev_entry *entry_begin(export_state *x, const char *name)
{
    if (x->nent == TT_EVIDENCE_MAX_ENTRIES) {
        snprintf(x->err, sizeof(x->err), "more than %d bundle entries", TT_EVIDENCE_MAX_ENTRIES);
        return NULL;
    }
    ev_entry *e = &x->ent[x->nent++];
    memset(e, 0, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->off = x->soff;
    EVP_DigestInit_ex(x->md, EVP_sha256(), NULL);
    return e;
}

static void entry_end(export_state *x, ev_entry *e)
{
    e->size = x->soff - e->off;
    unsigned int n = 0;
    EVP_DigestFinal_ex(x->md, e->sha, &n);
}

/* The `type` of a normalised event: the first `","type":"` is structural,
 * because specversion, id and source precede it and quotes inside strings
 * are escaped. */
static tt_event_type body_type(const char *body, size_t len)
{
    static const char key[] = "\",\"type\":\"";
    const char *p = memmem(body, len, key, sizeof(key) - 1);
    if (p == NULL) {
        return TT_EV_UNKNOWN;
    }
    p += sizeof(key) - 1;
    const char *q = memchr(p, '"', len - (size_t)(p - body));
    char name[32];
    if (q == NULL || (size_t)(q - p) >= sizeof(name)) {
        return TT_EV_UNKNOWN;
    }
    memcpy(name, p, (size_t)(q - p));
    name[q - p] = '\0';
    return tt_event_type_from_name(name);
}

static int item_cb(void *ctx, const char *body, size_t len)
{
    export_state *x = ctx;
    if (len > TT_EVIDENCE_MAX_EVENT) {
        snprintf(x->err, sizeof(x->err), "%s item %llu is larger than %d bytes", x->what,
                 (unsigned long long)x->items + 1, TT_EVIDENCE_MAX_EVENT);
        return -1;
    }
    /* One item per line: a newline inside would shift every later line. */
    if (memchr(body, '\n', len) != NULL) {
        snprintf(x->err, sizeof(x->err), "%s item %llu contains a newline", x->what,
                 (unsigned long long)x->items + 1);
        return -1;
    }
    if (!x->no_spool && (spool_add(x, body, len) != 0 || spool_add(x, "\n", 1) != 0)) {
        return -1;
    }
    EVP_DigestUpdate(x->md, body, len);
    EVP_DigestUpdate(x->md, "\n", 1);
    if (x->chain) {
        tt_chain_add(x->chain, body, len);
        x->by_type[body_type(body, len)]++;
    }
    x->items++;
    x->bytes += len + 1;
    if ((x->items & 0x3fff) == 0) {
        progress(x, 0, "reading %s: %llu, %.1f MB", x->what, (unsigned long long)x->items,
                 (double)x->bytes / 1e6);
    }
    return 0;
}

/* Append a whole file (at most max bytes) to the spool as one entry.
 * Returns 0, or -1 with x->err set. If data is non-NULL, the contents are
 * also returned in *data (NUL-terminated; the caller frees). */
static int spool_file(export_state *x, const char *path, const char *name, size_t max, char **data)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        snprintf(x->err, sizeof(x->err), "%s: %s", path, strerror(errno));
        return -1;
    }
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, fp) : 0;
    int bad = buf == NULL || ferror(fp);
    fclose(fp);
    if (bad || n > max) {
        snprintf(x->err, sizeof(x->err), "%s: %s", path,
                 bad ? "cannot read" : "larger than the limit for this file");
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    ev_entry *e = entry_begin(x, name);
    if (e == NULL || spool_add(x, buf, n) != 0) {
        free(buf);
        return -1;
    }
    EVP_DigestUpdate(x->md, buf, n);
    entry_end(x, e);
    if (data) {
        *data = buf;
    } else {
        free(buf);
    }
    return 0;
}

/* ---- drill reports ---- */

typedef struct path_list {
    char **v;
    size_t n;
} path_list;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Collect rel paths of regular files named report.json under root/rel. */
static int walk(export_state *x, const char *root, const char *rel, int depth, path_list *pl)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s%s%s", root, rel[0] ? "/" : "", rel);
    DIR *d = opendir(dir);
    if (d == NULL) {
        snprintf(x->err, sizeof(x->err), "%.300s: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *de;
    for (de = readdir(d); de != NULL && rc == 0; de = readdir(d)) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        char sub[4096], full[8192];
        int w = snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
        if (w < 0 || (size_t)w >= sizeof(sub)) {
            continue;
        }
        snprintf(full, sizeof(full), "%s/%s", root, sub);
        struct stat st;
        if (lstat(full, &st) != 0) {
            continue;
        }
        if (S_ISDIR(st.st_mode) && depth < TT_EVIDENCE_MAX_DRILL_DEPTH) {
            rc = walk(x, root, sub, depth + 1, pl);
        } else if (S_ISREG(st.st_mode) && strcmp(de->d_name, "report.json") == 0) {
            if (pl->n == TT_EVIDENCE_MAX_DRILLS) {
                snprintf(x->err, sizeof(x->err), "%s: more than %d drill reports", root,
                         TT_EVIDENCE_MAX_DRILLS);
                rc = -1;
            } else if (strlen(sub) + strlen("drills/") <= TT_BUNDLE_MAX_NAME) {
                pl->v[pl->n] = strdup(sub);
                rc = pl->v[pl->n] ? 0 : -1;
                pl->n += pl->v[pl->n] != NULL;
            }
        }
    }
    closedir(d);
    return rc;
}

/* The run time of a drill report: the first readable timestamp among these
 * top-level keys. Returns 0 or -1. */
static int drill_time(const char *text, int64_t *out)
{
    static const char *const keys[] = {"started_at", "started", "run_at", "time", "started_ms"};
    json_t *j = json_loads(text, 0, NULL);
    int rc = -1;
    for (size_t i = 0; j && rc != 0 && i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *v = json_object_get(j, keys[i]);
        const char *why;
        if (v && tt_time_from_json(v, out, &why) == 0) {
            rc = 0;
        }
    }
    json_decref(j);
    return rc;
}

static int add_drills(export_state *x, uint64_t *n_in, uint64_t *n_undated)
{
    path_list pl = {.v = calloc(TT_EVIDENCE_MAX_DRILLS, sizeof(char *))};
    if (pl.v == NULL) {
        snprintf(x->err, sizeof(x->err), "out of memory");
        return -1;
    }
    int rc = walk(x, x->o->drills_dir, "", 0, &pl);
    if (rc == 0) {
        qsort(pl.v, pl.n, sizeof(char *), cmp_str);
    }
    for (size_t i = 0; rc == 0 && i < pl.n; i++) {
        char full[8192], name[TT_BUNDLE_MAX_NAME + 8];
        snprintf(full, sizeof(full), "%s/%s", x->o->drills_dir, pl.v[i]);
        snprintf(name, sizeof(name), "drills/%s", pl.v[i]);
        /* Spool first, then decide: the bytes hashed are the bytes read. */
        uint64_t mark = x->soff;
        size_t nent = x->nent;
        char *text = NULL;
        rc = spool_file(x, full, name, TT_EVIDENCE_MAX_DRILL_REPORT, &text);
        if (rc != 0) {
            break;
        }
        int64_t t;
        if (drill_time(text, &t) != 0) {
            (*n_undated)++;
            x->nent = nent; /* drop it; its spooled bytes are simply unused */
        } else if (t < x->o->q.from_ms || t >= x->o->q.to_ms) {
            x->nent = nent;
        } else {
            (*n_in)++;
        }
        (void)mark;
        free(text);
    }
    for (size_t i = 0; i < pl.n; i++) {
        free(pl.v[i]);
    }
    free(pl.v);
    return rc;
}

/* ---- manifest ---- */

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static char *build_manifest(export_state *x, const char *findings_note, uint64_t n_findings,
                            uint64_t n_drills, uint64_t n_undated, const char *fp, size_t *len)
{
    const tt_evidence_export_opts *o = x->o;
    char from[TT_TIME_BUFSZ], to[TT_TIME_BUFSZ], hex[TT_CHAIN_HEXSZ];
    tt_time_format(o->q.from_ms, from);
    tt_time_format(o->q.to_ms, to);

    json_t *m = json_object();
    json_object_set_new(m, "format", json_string(TT_EVIDENCE_FORMAT));
    json_object_set_new(m, "tokentrail_version", json_string(TT_VERSION));
    json_t *q = json_object();
    json_object_set_new(q, "source", json_string(o->src->kind));
    json_object_set_new(q, "from", json_string(from));
    json_object_set_new(q, "to", json_string(to));
    json_object_set_new(q, "incident_id", str_or_null(o->q.incident_id));
    json_object_set_new(q, "subject", str_or_null(o->q.subject));
    json_object_set_new(q, "client_id", str_or_null(o->q.client_id));
    json_object_set_new(m, "query", q);

    json_t *c = json_object();
    json_object_set_new(c, "events", json_integer((json_int_t)tt_chain_count(x->chain)));
    json_t *bt = json_object();
    for (int t = TT_EV_UNKNOWN + 1; t < TT_EV__COUNT; t++) {
        json_object_set_new(bt, tt_event_type_name((tt_event_type)t),
                            json_integer((json_int_t)x->by_type[t]));
    }
    if (x->by_type[TT_EV_UNKNOWN] > 0) {
        json_object_set_new(bt, "unknown", json_integer((json_int_t)x->by_type[TT_EV_UNKNOWN]));
    }
    json_object_set_new(c, "events_by_type", bt);
    json_object_set_new(c, "findings", json_integer((json_int_t)n_findings));
    json_object_set_new(c, "drill_reports", json_integer((json_int_t)n_drills));
    json_object_set_new(m, "counts", c);

    json_t *ch = json_object();
    json_object_set_new(ch, "algorithm",
                        json_string("link_0 = sha256(\"" TT_CHAIN_SEED "\"); link_i = "
                                    "sha256(link_(i-1) || sha256(line_i of events.ndjson "
                                    "without its newline))"));
    json_object_set_new(ch, "events", json_integer((json_int_t)tt_chain_count(x->chain)));
    tt_chain_hex(tt_chain_link(x->chain), TT_CHAIN_DIGEST, hex);
    json_object_set_new(ch, "final", json_string(hex));
    json_object_set_new(ch, "checkpoint_interval",
                        json_integer((json_int_t)tt_chain_interval(x->chain)));
    json_t *cps = json_array();
    for (size_t j = 0; j < tt_chain_checkpoints(x->chain); j++) {
        tt_chain_hex(tt_chain_checkpoint(x->chain, j), TT_CHAIN_DIGEST, hex);
        json_array_append_new(cps, json_string(hex));
    }
    json_object_set_new(ch, "checkpoints", cps);
    json_object_set_new(m, "chain", ch);

    json_t *files = json_array();
    for (size_t i = 0; i < x->nent; i++) {
        json_t *f = json_object();
        tt_chain_hex(x->ent[i].sha, TT_CHAIN_DIGEST, hex);
        json_object_set_new(f, "path", json_string(x->ent[i].name));
        json_object_set_new(f, "size", json_integer((json_int_t)x->ent[i].size));
        json_object_set_new(f, "sha256", json_string(hex));
        json_array_append_new(files, f);
    }
    json_object_set_new(m, "files", files);

    json_t *notes = json_array();
    if (findings_note[0]) {
        json_array_append_new(notes, json_sprintf("findings.ndjson is empty: %s", findings_note));
    }
    for (size_t i = 0; o->src->note != NULL; i++) {
        const char *sn = o->src->note(o->src, i);
        if (sn == NULL) {
            break;
        }
        json_array_append_new(notes, json_string(sn));
    }
    if (n_undated > 0) {
        json_array_append_new(notes, json_sprintf("%llu drill report(s) without a readable run "
                                                  "time were left out",
                                                  (unsigned long long)n_undated));
    }
    json_object_set_new(m, "notes", notes);

    json_t *k = json_object();
    json_object_set_new(k, "algorithm", json_string("ed25519"));
    json_object_set_new(k, "fingerprint", json_string(fp));
    json_object_set_new(k, "signature",
                        json_string("manifest.sig: raw 64-byte Ed25519 "
                                    "signature of the bytes of manifest.json"));
    json_object_set_new(m, "signing_key", k);

    char *s = json_dumps(m, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    json_decref(m);
    if (s == NULL) {
        return NULL;
    }
    /* End with a newline: friendlier to cat and diff; it is signed too. */
    size_t n = strlen(s);
    char *out = realloc(s, n + 2);
    if (out == NULL) {
        free(s);
        return NULL;
    }
    out[n] = '\n';
    out[n + 1] = '\0';
    *len = n + 1;
    return out;
}

/* ---- writing the archive ---- */

/* The second read of the events, straight into the archive. The source
 * reads from the same snapshot, so these are the bytes hashed before; the
 * count and size are checked, and the writer refuses a byte more than the
 * declared size. */
static int replay_cb(void *ctx, const char *body, size_t len)
{
    export_state *x = ctx;
    if (tt_bundle_writer_data(x->w, body, len) != 0 || tt_bundle_writer_data(x->w, "\n", 1) != 0) {
        return -1;
    }
    x->replayed++;
    x->replayed_bytes += len + 1;
    if ((x->replayed & 0x3fff) == 0) {
        progress(x, 0, "compressing: %.1f MB", (double)tt_bundle_writer_bytes(x->w) / 1e6);
    }
    return 0;
}

static int write_mem(tt_bundle_writer *w, const char *name, const void *p, size_t n)
{
    return tt_bundle_writer_begin(w, name, n) == 0 && tt_bundle_writer_data(w, p, n) == 0 &&
                   tt_bundle_writer_end(w) == 0
               ? 0
               : -1;
}

static int write_archive(export_state *x, int fd, const char *manifest, size_t mlen,
                         const unsigned char *sig)
{
    const tt_evidence_export_opts *o = x->o;
    int threads = o->threads;
    if (threads <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus < 1 ? 1 : cpus > 8 ? 8 : (int)cpus;
    }
    char err[256];
    tt_bundle_writer *w =
        tt_bundle_writer_open(fd, o->level ? o->level : 6, threads, err, sizeof(err));
    if (w == NULL) {
        snprintf(x->err, sizeof(x->err), "%s", err);
        return -1;
    }
    unsigned char *buf = malloc(COPY_BUF);
    int rc = buf ? 0 : -1;
    uint64_t total = x->soff;
    if (rc == 0) {
        rc = write_mem(w, "manifest.json", manifest, mlen);
    }
    if (rc == 0) {
        rc = write_mem(w, "manifest.sig", sig, TT_SIGN_SIGLEN);
    }
    for (size_t i = 0; rc == 0 && i < x->nent; i++) {
        ev_entry *e = &x->ent[i];
        rc = tt_bundle_writer_begin(w, e->name, e->size);
        if (rc == 0 && e->replay) {
            char serr[256] = "";
            x->w = w;
            x->replayed = x->replayed_bytes = 0;
            int64_t n = o->src->each_event(o->src, &o->q, replay_cb, x, serr, sizeof(serr));
            if (n < 0 || x->replayed_bytes != e->size) {
                snprintf(x->err, sizeof(x->err), "events changed between the two reads%s%s",
                         serr[0] ? ": " : "", serr);
                rc = -1;
            }
        }
        if (e->mem) {
            rc = rc == 0 ? tt_bundle_writer_data(w, e->mem, e->size) : -1;
        }
        for (uint64_t done = 0; rc == 0 && !e->mem && !e->replay && done < e->size;) {
            size_t want = e->size - done < COPY_BUF ? (size_t)(e->size - done) : COPY_BUF;
            ssize_t k = pread(x->spool_fd, buf, want, (off_t)(e->off + done));
            if (k <= 0) {
                snprintf(x->err, sizeof(x->err), "spool file: %s",
                         k < 0 ? strerror(errno) : "short read");
                rc = -1;
                break;
            }
            rc = tt_bundle_writer_data(w, buf, (size_t)k);
            done += (uint64_t)k;
            progress(x, 0, "compressing: %.1f of %.1f MB", (double)tt_bundle_writer_bytes(w) / 1e6,
                     (double)total / 1e6);
        }
        if (rc == 0) {
            rc = tt_bundle_writer_end(w);
        }
    }
    if (rc == 0) {
        rc = tt_bundle_writer_finish(w);
    }
    if (rc != 0 && x->err[0] == '\0') {
        snprintf(x->err, sizeof(x->err), "%s: %s", o->out_path, tt_bundle_writer_error(w));
    }
    free(buf);
    tt_bundle_writer_free(w);
    return rc;
}

static int open_spool(export_state *x)
{
    const tt_evidence_export_opts *o = x->o;
    char dirbuf[4096], tmpl[4200];
    const char *dir = o->spool_dir;
    if (dir == NULL) {
        snprintf(dirbuf, sizeof(dirbuf), "%s", o->out_path);
        dir = dirname(dirbuf);
    }
    snprintf(tmpl, sizeof(tmpl), "%s/.tokentrail-evidence-spool.XXXXXX", dir);
    x->spool_fd = mkostemp(tmpl, O_CLOEXEC);
    if (x->spool_fd < 0) {
        snprintf(x->err, sizeof(x->err), "%.300s: cannot create a spool file: %s", dir,
                 strerror(errno));
        return -1;
    }
    /* Unlinked at once: the space is returned however the process ends. */
    unlink(tmpl);
    return 0;
}

int tt_evidence_export(const tt_evidence_export_opts *o, tt_evidence_export_stats *st, char *err,
                       size_t errlen)
{
    export_state x = {.o = o, .spool_fd = -1};
    char fp[TT_FINGERPRINT_BUFSZ], partial[4200], note[256] = "";
    char *manifest = NULL;
    int out_fd = -1, rc = -1;
    uint64_t n_findings = 0, n_drills = 0, n_undated = 0;
    struct stat sb;
    memset(st, 0, sizeof(*st));

    snprintf(partial, sizeof(partial), "%s.partial", o->out_path);
    if (!o->overwrite && stat(o->out_path, &sb) == 0) {
        snprintf(err, errlen, "%s: already exists (use --force to replace it)", o->out_path);
        return -1;
    }
    if (tt_sign_fingerprint(o->key, fp) != 0) {
        snprintf(err, errlen, "the signing key has no Ed25519 public half");
        return -1;
    }
    x.sbuf = malloc(SPOOL_BUF);
    x.ent = calloc(TT_EVIDENCE_MAX_ENTRIES, sizeof(ev_entry));
    x.md = EVP_MD_CTX_new();
    x.chain = tt_chain_new();
    if (x.sbuf == NULL || x.ent == NULL || x.md == NULL || x.chain == NULL) {
        snprintf(x.err, sizeof(x.err), "out of memory");
        goto out;
    }
    if (open_spool(&x) != 0) {
        goto out;
    }

    /* 1. README, then the events (hashed and chained as they are spooled). */
    ev_entry *e = entry_begin(&x, "README.txt");
    e->mem = tt_evidence_readme;
    e->size = strlen(tt_evidence_readme);
    tt_chain_sha256(tt_evidence_readme, e->size, e->sha);

    char serr[256] = "";
    x.what = "events";
    x.no_spool = 1;
    e = entry_begin(&x, "events.ndjson");
    if (e == NULL || o->src->each_event(o->src, &o->q, item_cb, &x, serr, sizeof(serr)) < 0) {
        if (x.err[0] == '\0') {
            snprintf(x.err, sizeof(x.err), "reading events: %s", serr);
        }
        goto out;
    }
    entry_end(&x, e);
    e->replay = 1;
    e->size = x.bytes;
    x.no_spool = 0;
    st->events = x.items;
    st->event_bytes = x.bytes;
    progress(&x, 1, "read %llu events, %.1f MB\n", (unsigned long long)x.items,
             (double)x.bytes / 1e6);

    /* 2. Findings. */
    tt_chain *chain = x.chain;
    x.chain = NULL; /* findings are hashed, not chained */
    x.what = "findings";
    x.items = x.bytes = 0;
    e = entry_begin(&x, "findings.ndjson");
    int64_t nf =
        e ? o->src->each_finding(o->src, &o->q, item_cb, &x, note, sizeof(note), serr, sizeof(serr))
          : -1;
    x.chain = chain;
    if (nf < 0) {
        if (x.err[0] == '\0') {
            snprintf(x.err, sizeof(x.err), "reading findings: %s", serr);
        }
        goto out;
    }
    entry_end(&x, e);
    n_findings = x.items;

    /* 3. Drill reports, 4. the policy. */
    if (o->drills_dir && add_drills(&x, &n_drills, &n_undated) != 0) {
        goto out;
    }
    if (o->policy_path &&
        spool_file(&x, o->policy_path, "policy.yaml", TT_EVIDENCE_MAX_POLICY, NULL) != 0) {
        goto out;
    }
    if (spool_flush(&x) != 0) {
        goto out;
    }

    /* 5. The manifest and its signature. */
    size_t mlen = 0;
    unsigned char sig[TT_SIGN_SIGLEN];
    manifest = build_manifest(&x, note, n_findings, n_drills, n_undated, fp, &mlen);
    if (manifest == NULL) {
        snprintf(x.err, sizeof(x.err), "out of memory building the manifest");
        goto out;
    }
    if (mlen > TT_EVIDENCE_MAX_MANIFEST) {
        snprintf(x.err, sizeof(x.err), "manifest larger than %d bytes", TT_EVIDENCE_MAX_MANIFEST);
        goto out;
    }
    if (tt_sign_sign(o->key, manifest, mlen, sig, x.err, sizeof(x.err)) != 0) {
        goto out;
    }

    /* 6. The archive, written beside the target and renamed into place. */
    out_fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out_fd < 0) {
        snprintf(x.err, sizeof(x.err), "%.300s: %s", partial, strerror(errno));
        goto out;
    }
    if (write_archive(&x, out_fd, manifest, mlen, sig) != 0) {
        goto out;
    }
    if (fsync(out_fd) != 0 || fstat(out_fd, &sb) != 0) {
        snprintf(x.err, sizeof(x.err), "%.300s: %s", partial, strerror(errno));
        goto out;
    }
    st->bundle_bytes = (uint64_t)sb.st_size;
    close(out_fd);
    out_fd = -1;
    if (rename(partial, o->out_path) != 0) {
        snprintf(x.err, sizeof(x.err), "%s: %s", o->out_path, strerror(errno));
        goto out;
    }
    progress(&x, 1, "wrote %s: %.1f MB\n", o->out_path, (double)st->bundle_bytes / 1e6);
    st->findings = n_findings;
    st->drill_reports = n_drills;
    rc = 0;
out:
    if (rc != 0) {
        if (o->progress) {
            fputc('\n', stderr);
        }
        snprintf(err, errlen, "%s", x.err[0] ? x.err : "export failed");
        if (out_fd >= 0) {
            close(out_fd);
            out_fd = -1;
        }
        unlink(partial);
    }
    if (x.spool_fd >= 0) {
        close(x.spool_fd);
    }
    free(manifest);
    free(x.sbuf);
    free(x.ent);
    EVP_MD_CTX_free(x.md);
    tt_chain_free(x.chain);
    return rc;
}
