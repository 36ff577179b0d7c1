/* test_evidence.c - evidence bundles: the chain against a fixed vector,
 * checkpoints, Ed25519 round trip, reproducible parallel gzip, reproducible
 * export, and every tamper case with its exact verify message. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "suites.h"
#include "tt_bundle.h"
#include "tt_bundle_gzip.h"
#include "tt_chain.h"
#include "tt_evidence.h"
#include "tt_sign.h"
#include "tt_store.h"

static char dir[64];

static void fresh_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/tt_evidence_%d", (int)getpid());
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

START_TEST(chain_fixed_vector)
{
    /* Computed independently with Python's hashlib (see docs/evidence.md). */
    static const char *const want[] = {
        "d52e41392847c8d00ba602ba9c79f9875ca0d4008bd28e8cc822fbcf613f98e8",
        "e524cd512fc40869cd58aee1e03065c293a6acd1e643597083da7feef1c188a8",
        "ca898c7f1bb11f75bd92686391adcc0f1cedd4feccaa519ee13d9a95e6c28adc",
        "6565ae45cb7129cef04a37704210c24c2a0b40d36b4680261cc205bd49ba140f",
    };
    static const char *const ev[] = {"{\"a\":1}", "{\"b\":2}", ""};
    tt_chain *c = tt_chain_new();
    ck_assert_ptr_nonnull(c);
    char hex[TT_CHAIN_HEXSZ];
    tt_chain_hex(tt_chain_link(c), TT_CHAIN_DIGEST, hex);
    ck_assert_str_eq(hex, want[0]);
    for (int i = 0; i < 3; i++) {
        tt_chain_add(c, ev[i], strlen(ev[i]));
        tt_chain_hex(tt_chain_link(c), TT_CHAIN_DIGEST, hex);
        ck_assert_str_eq(hex, want[i + 1]);
        /* interval 1: checkpoint i is link_(i+1) */
        tt_chain_hex(tt_chain_checkpoint(c, (size_t)i), TT_CHAIN_DIGEST, hex);
        ck_assert_str_eq(hex, want[i + 1]);
    }
    ck_assert_uint_eq(tt_chain_count(c), 3);
    unsigned char back[TT_CHAIN_DIGEST];
    ck_assert_int_eq(tt_chain_unhex(want[3], back, sizeof(back)), 0);
    ck_assert_mem_eq(back, tt_chain_link(c), TT_CHAIN_DIGEST);
    ck_assert_int_eq(tt_chain_unhex("zz", back, 1), -1);
    tt_chain_free(c);
}
END_TEST

START_TEST(chain_checkpoints_stay_bounded)
{
    tt_chain *c = tt_chain_new();
    tt_chain *ref = tt_chain_new();
    unsigned char links[3 * TT_CHAIN_MAX_CHECKPOINTS + 1][TT_CHAIN_DIGEST];
    char ev[32];
    size_t total = 3 * TT_CHAIN_MAX_CHECKPOINTS;
    for (size_t i = 1; i <= total; i++) {
        int n = snprintf(ev, sizeof(ev), "event %zu", i);
        tt_chain_add(c, ev, (size_t)n);
        tt_chain_add(ref, ev, (size_t)n);
        memcpy(links[i], tt_chain_link(ref), TT_CHAIN_DIGEST);
    }
    /* 3 * MAX events: the interval doubled twice, to 4. */
    ck_assert_uint_eq(tt_chain_interval(c), 4);
    ck_assert_uint_le(tt_chain_checkpoints(c), TT_CHAIN_MAX_CHECKPOINTS);
    for (size_t j = 0; j < tt_chain_checkpoints(c); j++) {
        ck_assert_mem_eq(tt_chain_checkpoint(c, j), links[(j + 1) * 4], TT_CHAIN_DIGEST);
    }
    ck_assert_uint_eq(tt_chain_checkpoints(c), total / 4);
    tt_chain_free(c);
    tt_chain_free(ref);
}
END_TEST

START_TEST(sign_round_trip_and_keygen_refuses_overwrite)
{
    fresh_dir();
    char prefix[96], kp[128], pp[128], err[512];
    path(prefix, sizeof(prefix), "signer");
    snprintf(kp, sizeof(kp), "%s.key", prefix);
    snprintf(pp, sizeof(pp), "%s.pub", prefix);
    ck_assert_int_eq(tt_sign_keygen(prefix, err, sizeof(err)), 0);
    struct stat st;
    ck_assert_int_eq(stat(kp, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(tt_sign_keygen(prefix, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "refusing to overwrite") != NULL, "%s", err);

    EVP_PKEY *priv = tt_sign_load_private(kp, err, sizeof(err));
    EVP_PKEY *pub = tt_sign_load_public(pp, err, sizeof(err));
    ck_assert_ptr_nonnull(priv);
    ck_assert_ptr_nonnull(pub);
    ck_assert_ptr_null(tt_sign_load_private(pp, err, sizeof(err)));
    char f1[TT_FINGERPRINT_BUFSZ], f2[TT_FINGERPRINT_BUFSZ];
    ck_assert_int_eq(tt_sign_fingerprint(priv, f1), 0);
    ck_assert_int_eq(tt_sign_fingerprint(pub, f2), 0);
    ck_assert_str_eq(f1, f2);
    unsigned char sig[TT_SIGN_SIGLEN];
    const char msg[] = "manifest bytes";
    ck_assert_int_eq(tt_sign_sign(priv, msg, sizeof(msg), sig, err, sizeof(err)), 0);
    ck_assert_int_eq(tt_sign_verify(pub, msg, sizeof(msg), sig, sizeof(sig)), 1);
    ck_assert_int_eq(tt_sign_verify(pub, msg, sizeof(msg) - 1, sig, sizeof(sig)), 0);
    sig[10] ^= 1;
    ck_assert_int_eq(tt_sign_verify(pub, msg, sizeof(msg), sig, sizeof(sig)), 0);
    EVP_PKEY_free(priv);
    EVP_PKEY_free(pub);
}
END_TEST

typedef struct membuf {
    unsigned char *p;
    size_t n, cap;
} membuf;

static int mem_sink(void *ctx, const void *p, size_t n)
{
    membuf *m = ctx;
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2;
        m->p = realloc(m->p, m->cap);
    }
    memcpy(m->p + m->n, p, n);
    m->n += n;
    return 0;
}

static membuf gz(const unsigned char *in, size_t n, int threads, size_t chunk)
{
    membuf m = {0};
    tt_bundle_gzip *g = tt_bundle_gzip_new(6, threads, mem_sink, &m);
    ck_assert_ptr_nonnull(g);
    for (size_t off = 0; off < n; off += chunk) {
        ck_assert_int_eq(tt_bundle_gzip_write(g, in + off, n - off < chunk ? n - off : chunk), 0);
    }
    ck_assert_int_eq(tt_bundle_gzip_finish(g), 0);
    tt_bundle_gzip_free(g);
    return m;
}

START_TEST(gzip_same_bytes_for_any_threads_and_inflates_back)
{
    size_t n = 3 * TT_GZIP_BLOCK + 12345;
    unsigned char *in = malloc(n);
    for (size_t i = 0; i < n; i++) {
        in[i] = (unsigned char)("{\"type\":\"token.used\",\"n\":"[i % 26] + (i / 4099) % 3);
    }
    membuf a = gz(in, n, 1, 7777), b = gz(in, n, 3, 100000), c = gz(in, n, 0, n);
    ck_assert_uint_eq(a.n, b.n);
    ck_assert_mem_eq(a.p, b.p, a.n);
    ck_assert_uint_eq(a.n, c.n);
    ck_assert_mem_eq(a.p, c.p, a.n);
    /* Header: no mtime, no name. */
    ck_assert_int_eq(a.p[3], 0);
    ck_assert_int_eq(a.p[4] | a.p[5] | a.p[6] | a.p[7], 0);
    /* Inflate with the gzip wrapper: CRC and length must check out. */
    unsigned char *out = malloc(n + 1);
    z_stream zs = {0};
    ck_assert_int_eq(inflateInit2(&zs, 16 + 15), Z_OK);
    zs.next_in = a.p;
    zs.avail_in = (uInt)a.n;
    zs.next_out = out;
    zs.avail_out = (uInt)n + 1;
    ck_assert_int_eq(inflate(&zs, Z_FINISH), Z_STREAM_END);
    ck_assert_uint_eq(zs.total_out, n);
    ck_assert_mem_eq(out, in, n);
    inflateEnd(&zs);
    membuf e = gz(in, 0, 2, 1);
    ck_assert_uint_eq(e.n, 20); /* header + empty final block + trailer */
    free(in);
    free(out);
    free(a.p);
    free(b.p);
    free(c.p);
    free(e.p);
}
END_TEST

/* ---- export / verify ---- */

static char db[128], key[160], pubkey[160];

/* A store with 6 events through the real store API, and a key pair. */
static void setup_store(void)
{
    fresh_dir();
    path(db, sizeof(db), "tt.db");
    char prefix[128], err[512];
    path(prefix, sizeof(prefix), "k");
    ck_assert_int_eq(tt_sign_keygen(prefix, err, sizeof(err)), 0);
    snprintf(key, sizeof(key), "%s.key", prefix);
    snprintf(pubkey, sizeof(pubkey), "%s.pub", prefix);
    tt_store *s = tt_store_open(db, NULL, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    char bodies[6][256], ids[6][16];
    tt_store_row rows[6];
    for (int i = 0; i < 6; i++) {
        snprintf(ids[i], sizeof(ids[i]), "e%d", i);
        snprintf(bodies[i], sizeof(bodies[i]),
                 "{\"specversion\":\"1.0\",\"id\":\"e%d\",\"source\":\"as\",\"type\":"
                 "\"token.used\",\"time\":\"t\",\"data\":{\"token_id\":\"tok%d\","
                 "\"resource\":\"r\"}}",
                 i, i % 2);
        rows[i] = (tt_store_row){.source = "as",
                                 .id = ids[i],
                                 .type = "token.used",
                                 .token_id = i % 2 ? "tok1" : "tok0",
                                 .time_ms = 1000 + 10 * (5 - i), /* stored in reverse time */
                                 .body = bodies[i],
                                 .body_len = strlen(bodies[i])};
    }
    ck_assert_int_eq(tt_store_write(s, rows, 6, err, sizeof(err)), 0);
    tt_store_close(s);
}

static void export_to(const char *out)
{
    char err[512];
    EVP_PKEY *k = tt_sign_load_private(key, err, sizeof(err));
    ck_assert_ptr_nonnull(k);
    tt_evidence_source *src = tt_evidence_source_sqlite(db, err, sizeof(err));
    ck_assert_msg(src != NULL, "%s", err);
    tt_evidence_export_opts o = {
        .src = src, .key = k, .out_path = out, .threads = 2, .q = {.from_ms = 0, .to_ms = 100000}};
    tt_evidence_export_stats st;
    ck_assert_msg(tt_evidence_export(&o, &st, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(st.events, 6);
    src->close(src);
    EVP_PKEY_free(k);
}

typedef struct probs {
    int n;
    char first[600];
    char all[4096];
} probs;

static void collect(void *ctx, const char *msg)
{
    probs *p = ctx;
    if (p->n++ == 0) {
        snprintf(p->first, sizeof(p->first), "%s", msg);
    }
    size_t l = strlen(p->all);
    snprintf(p->all + l, sizeof(p->all) - l, "%s\n", msg);
}

static probs verify(const char *bundle, const char *pk)
{
    char err[512];
    EVP_PKEY *k = tt_sign_load_public(pk, err, sizeof(err));
    ck_assert_ptr_nonnull(k);
    probs p = {0};
    tt_evidence_verify_result res;
    ck_assert_int_eq(tt_evidence_verify(bundle, k, 0, collect, &p, &res, err, sizeof(err)), 0);
    ck_assert_int_eq(res.ok, p.n == 0);
    EVP_PKEY_free(k);
    return p;
}

static unsigned char *slurp(const char *file, size_t *n)
{
    FILE *fp = fopen(file, "rb");
    ck_assert_ptr_nonnull(fp);
    unsigned char *b = malloc(1 << 20);
    *n = fread(b, 1, 1 << 20, fp);
    fclose(fp);
    return b;
}

START_TEST(export_is_reproducible_and_verifies)
{
    setup_store();
    char a[128], b[128];
    path(a, sizeof(a), "a.tar.gz");
    path(b, sizeof(b), "b.tar.gz");
    export_to(a);
    export_to(b);
    size_t na, nb;
    unsigned char *pa = slurp(a, &na), *pb = slurp(b, &nb);
    ck_assert_uint_eq(na, nb);
    ck_assert_mem_eq(pa, pb, na);
    free(pa);
    free(pb);
    probs p = verify(a, pubkey);
    ck_assert_msg(p.n == 0, "%s", p.all);
    /* Refuses to replace a bundle. */
    char err[512];
    EVP_PKEY *k = tt_sign_load_private(key, err, sizeof(err));
    tt_evidence_source *src = tt_evidence_source_sqlite(db, err, sizeof(err));
    tt_evidence_export_opts o = {.src = src, .key = k, .out_path = a, .q = {0, 100000}};
    tt_evidence_export_stats st;
    ck_assert_int_eq(tt_evidence_export(&o, &st, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "already exists") != NULL, "%s", err);
    src->close(src);
    EVP_PKEY_free(k);
}
END_TEST

/* The entries of a bundle, in memory (test bundles are small). */
typedef struct ent {
    char name[256];
    char *data;
    size_t len;
} ent;

static size_t read_all(const char *bundle, ent *e, size_t max)
{
    char err[512];
    tt_bundle_reader *r = tt_bundle_reader_open(bundle, err, sizeof(err));
    ck_assert_ptr_nonnull(r);
    size_t n = 0;
    const char *name;
    int64_t size;
    tt_bundle_kind kind;
    while (tt_bundle_reader_next(r, &name, &size, &kind) == 1 && n < max) {
        snprintf(e[n].name, sizeof(e[n].name), "%s", name);
        e[n].data = malloc((size_t)size + 1);
        e[n].len = 0;
        long k;
        while ((k = tt_bundle_reader_read(r, e[n].data + e[n].len, (size_t)size + 1 - e[n].len)) >
               0) {
            e[n].len += (size_t)k;
        }
        e[n].data[e[n].len] = '\0';
        n++;
    }
    tt_bundle_reader_free(r);
    return n;
}

static void write_all(const char *bundle, ent *e, size_t n)
{
    char err[512];
    int fd = open(bundle, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    tt_bundle_writer *w = tt_bundle_writer_open(fd, 6, 1, err, sizeof(err));
    ck_assert_ptr_nonnull(w);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(tt_bundle_writer_begin(w, e[i].name, e[i].len), 0);
        ck_assert_int_eq(tt_bundle_writer_data(w, e[i].data, e[i].len), 0);
        ck_assert_int_eq(tt_bundle_writer_end(w), 0);
    }
    ck_assert_int_eq(tt_bundle_writer_finish(w), 0);
    tt_bundle_writer_free(w);
    close(fd);
}

/* Lines of events.ndjson (entry 3), rejoined after an edit. */
static void set_lines(ent *ev, char **lines, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        len += strlen(lines[i]) + 1;
    }
    char *d = malloc(len + 1), *p = d;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(lines[i]);
        memcpy(p, lines[i], l);
        p[l] = '\n';
        p += l + 1;
    }
    *p = '\0';
    free(ev->data);
    ev->data = d;
    ev->len = len;
}

enum {
    T_MODIFY,
    T_REMOVE,
    T_INSERT,
    T_SWAP,
    T_APPEND,
    T_DROP_LAST,
    T_SWAP_FILE,
    T_EXTRA,
    T_MISSING,
    T_MANIFEST,
    T_ORDER,
    T_WRONG_KEY,
    T__COUNT
};

static const char *const tamper_msg[T__COUNT] = {
    [T_MODIFY] = "events.ndjson: line 3 was modified (it does not match signed event 3)",
    [T_REMOVE] = "events.ndjson: signed event 3 is missing (line 3 holds signed event 4)",
    [T_INSERT] = "events.ndjson: line 3 is an inserted event, not in the signed chain",
    [T_SWAP] = "events.ndjson: lines 3 and 4 are out of order (line 3 holds signed event 4)",
    [T_APPEND] = "events.ndjson: line 7 is an inserted event beyond the 6 signed events",
    [T_DROP_LAST] = "events.ndjson: signed events 6..6 are missing (the file ends after line 5)",
    [T_SWAP_FILE] = "README.txt: 0 bytes, the manifest says",
    [T_EXTRA] = "unexpected entry: extra.txt (not in the manifest)",
    [T_MISSING] = "missing entry: findings.ndjson",
    [T_MANIFEST] = "manifest.sig: the signature does not match manifest.json with key",
    [T_ORDER] = "entry out of order: README.txt",
    [T_WRONG_KEY] = "wrong key: the bundle names signing key",
};

START_TEST(every_tamper_case_is_named)
{
    int t = _i;
    setup_store();
    char good[128], bad[128];
    path(good, sizeof(good), "good.tar.gz");
    path(bad, sizeof(bad), "bad.tar.gz");
    export_to(good);
    ent e[8];
    size_t n = read_all(good, e, 8);
    ck_assert_uint_eq(n, 5);
    ck_assert_str_eq(e[3].name, "events.ndjson");
    char *lines[8], inserted[] = "{\"specversion\":\"1.0\",\"id\":\"forged\"}";
    size_t nl = 0;
    for (char *s = e[3].data; *s; nl++) {
        char *endl = strchr(s, '\n');
        *endl = '\0';
        lines[nl] = s;
        s = endl + 1;
    }
    ck_assert_uint_eq(nl, 6);
    char *tmp, mod[512];
    const char *pk = pubkey;
    switch (t) {
    case T_MODIFY:
        snprintf(mod, sizeof(mod), "%s", lines[2]);
        mod[strlen(mod) - 3] = 'X';
        lines[2] = mod;
        set_lines(&e[3], lines, nl);
        break;
    case T_REMOVE:
        memmove(&lines[2], &lines[3], 3 * sizeof(char *));
        set_lines(&e[3], lines, nl - 1);
        break;
    case T_INSERT:
        memmove(&lines[3], &lines[2], 4 * sizeof(char *));
        lines[2] = inserted;
        set_lines(&e[3], lines, nl + 1);
        break;
    case T_SWAP:
        tmp = lines[2];
        lines[2] = lines[3];
        lines[3] = tmp;
        set_lines(&e[3], lines, nl);
        break;
    case T_APPEND:
        lines[nl] = inserted;
        set_lines(&e[3], lines, nl + 1);
        break;
    case T_DROP_LAST: set_lines(&e[3], lines, nl - 1); break;
    case T_SWAP_FILE: /* README.txt replaced by the (empty) findings file */
        set_lines(&e[3], lines, nl);
        free(e[2].data);
        e[2].data = strdup("");
        e[2].len = 0;
        break;
    case T_EXTRA:
        set_lines(&e[3], lines, nl);
        snprintf(e[n].name, sizeof(e[n].name), "extra.txt");
        e[n].data = strdup("hello\n");
        e[n].len = 6;
        n++;
        break;
    case T_MISSING:
        set_lines(&e[3], lines, nl);
        free(e[--n].data);
        break;
    case T_MANIFEST:
        set_lines(&e[3], lines, nl);
        e[0].data[20] = e[0].data[20] == 'x' ? 'y' : 'x';
        break;
    case T_ORDER: {
        set_lines(&e[3], lines, nl);
        ent sw = e[2];
        e[2] = e[3];
        e[3] = sw;
        break;
    }
    case T_WRONG_KEY: {
        set_lines(&e[3], lines, nl);
        char prefix[128], err[512];
        path(prefix, sizeof(prefix), "other");
        ck_assert_int_eq(tt_sign_keygen(prefix, err, sizeof(err)), 0);
        static char other[160];
        snprintf(other, sizeof(other), "%s.pub", prefix);
        pk = other;
        break;
    }
    }
    write_all(bad, e, n);
    for (size_t i = 0; i < n; i++) {
        free(e[i].data);
    }
    probs p = verify(bad, pk);
    ck_assert_msg(p.n > 0, "tamper case %d not detected", t);
    ck_assert_msg(strncmp(p.first, tamper_msg[t], strlen(tamper_msg[t])) == 0,
                  "case %d: first problem '%s', expected '%s'", t, p.first, tamper_msg[t]);
}
END_TEST

START_TEST(corrupt_archives_are_reported)
{
    setup_store();
    char good[128], bad[128];
    path(good, sizeof(good), "good.tar.gz");
    path(bad, sizeof(bad), "bad.tar.gz");
    export_to(good);
    size_t n;
    unsigned char *b = slurp(good, &n);
    static const struct {
        size_t keep; /* bytes kept (0 = all) */
        long flip;   /* byte to flip (-1 none; from the end when < -1) */
        const char *want;
    } cases[] = {
        {100, -1, "truncated gzip stream"},
        {0, -6, "incorrect data check"},   /* CRC-32 in the trailer */
        {0, -2, "incorrect length check"}, /* ISIZE in the trailer */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        FILE *fp = fopen(bad, "wb");
        size_t len = cases[i].keep ? cases[i].keep : n;
        unsigned char *c = malloc(n);
        memcpy(c, b, n);
        if (cases[i].flip < -1) {
            c[n + (size_t)(cases[i].flip + 1) - 1] ^= 0x40;
        }
        fwrite(c, 1, len, fp);
        fclose(fp);
        free(c);
        probs p = verify(bad, pubkey);
        ck_assert_msg(strstr(p.all, cases[i].want) != NULL, "case %zu: %s", i, p.all);
    }
    /* Bytes appended after the gzip stream. */
    FILE *fp = fopen(bad, "wb");
    fwrite(b, 1, n, fp);
    fputs("trailing", fp);
    fclose(fp);
    probs p = verify(bad, pubkey);
    ck_assert_msg(strstr(p.all, "data after the end of the gzip stream") != NULL, "%s", p.all);
    free(b);
}
END_TEST

Suite *tt_evidence_suite(void)
{
    Suite *s = suite_create("evidence");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, chain_fixed_vector);
    tcase_add_test(tc, chain_checkpoints_stay_bounded);
    tcase_add_test(tc, sign_round_trip_and_keygen_refuses_overwrite);
    tcase_add_test(tc, gzip_same_bytes_for_any_threads_and_inflates_back);
    tcase_add_test(tc, export_is_reproducible_and_verifies);
    tcase_add_loop_test(tc, every_tamper_case_is_named, 0, T__COUNT);
    tcase_add_test(tc, corrupt_archives_are_reported);
    suite_add_tcase(s, tc);
    return s;
}
