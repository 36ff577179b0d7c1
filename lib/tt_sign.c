/* tt_sign.c - Ed25519 key generation, loading, signing and verification. */
#include "tt_sign.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "tt_chain.h"

/* The newest OpenSSL error as text, for messages. */
static const char *ossl_reason(void)
{
    unsigned long e = ERR_get_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "unknown error";
}

/* Create path exclusively with mode and write a PEM through cb. 0 or -1. */
static int write_new_pem(const char *path, mode_t mode, EVP_PKEY *key, int private_part, char *err,
                         size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path,
                 errno == EEXIST ? "already exists; refusing to overwrite" : strerror(errno));
        return -1;
    }
    FILE *fp = fdopen(fd, "w");
    if (fp == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    int ok = private_part ? PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL)
                          : PEM_write_PUBKEY(fp, key);
    if (fflush(fp) != 0 || fsync(fd) != 0) {
        ok = 0;
    }
    if (fclose(fp) != 0 || ok != 1) {
        snprintf(err, errlen, "%s: cannot write the key", path);
        unlink(path);
        return -1;
    }
    return 0;
}

int tt_sign_keygen(const char *prefix, char *err, size_t errlen)
{
    char kpath[4096], ppath[4096];
    int a = snprintf(kpath, sizeof(kpath), "%s.key", prefix);
    int b = snprintf(ppath, sizeof(ppath), "%s.pub", prefix);
    if (a < 0 || b < 0 || (size_t)a >= sizeof(kpath) || (size_t)b >= sizeof(ppath)) {
        snprintf(err, errlen, "output prefix too long");
        return -1;
    }
    struct stat st;
    if (stat(ppath, &st) == 0) {
        snprintf(err, errlen, "%s: already exists; refusing to overwrite", ppath);
        return -1;
    }
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (key == NULL) {
        snprintf(err, errlen, "key generation failed: %s", ossl_reason());
        return -1;
    }
    int rc = write_new_pem(kpath, 0600, key, 1, err, errlen);
    if (rc == 0 && write_new_pem(ppath, 0644, key, 0, err, errlen) != 0) {
        unlink(kpath); /* succeed whole: no private key without its public half */
        rc = -1;
    }
    EVP_PKEY_free(key);
    return rc;
}

static EVP_PKEY *load(const char *path, int want_private, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || st.st_size > TT_SIGN_MAX_KEYFILE) {
        snprintf(err, errlen, "%s: not a key file (larger than %d bytes)", path,
                 TT_SIGN_MAX_KEYFILE);
        fclose(fp);
        return NULL;
    }
    EVP_PKEY *key = NULL;
    if (want_private) {
        key = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
    } else {
        key = PEM_read_PUBKEY(fp, NULL, NULL, NULL);
        if (key == NULL) {
            rewind(fp);
            key = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
        }
    }
    fclose(fp);
    ERR_clear_error();
    if (key == NULL) {
        snprintf(err, errlen, "%s: not a PEM %s key", path, want_private ? "private" : "public");
        return NULL;
    }
    if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
        snprintf(err, errlen, "%s: not an Ed25519 key", path);
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

EVP_PKEY *tt_sign_load_private(const char *path, char *err, size_t errlen)
{
    return load(path, 1, err, errlen);
}

EVP_PKEY *tt_sign_load_public(const char *path, char *err, size_t errlen)
{
    return load(path, 0, err, errlen);
}

int tt_sign_file_is_private(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        return 0;
    }
    char buf[TT_SIGN_MAX_KEYFILE + 1];
    size_t n = fread(buf, 1, TT_SIGN_MAX_KEYFILE, fp);
    fclose(fp);
    buf[n] = '\0';
    int priv = strstr(buf, "PRIVATE KEY-----") != NULL;
    OPENSSL_cleanse(buf, sizeof(buf));
    return priv;
}

int tt_sign_sign(EVP_PKEY *key, const void *msg, size_t len, unsigned char sig[TT_SIGN_SIGLEN],
                 char *err, size_t errlen)
{
    /* Ed25519 is "pure": no digest is named and the message is signed whole. */
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t siglen = TT_SIGN_SIGLEN;
    int ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
             EVP_DigestSign(ctx, sig, &siglen, msg, len) == 1 && siglen == TT_SIGN_SIGLEN;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        snprintf(err, errlen, "signing failed: %s", ossl_reason());
        return -1;
    }
    return 0;
}

int tt_sign_verify(EVP_PKEY *key, const void *msg, size_t len, const unsigned char *sig,
                   size_t siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, msg, len) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok ? 1 : 0;
}

int tt_sign_fingerprint(EVP_PKEY *key, char out[TT_FINGERPRINT_BUFSZ])
{
    unsigned char raw[TT_SIGN_PUBLEN], d[TT_CHAIN_DIGEST];
    size_t n = sizeof(raw);
    if (EVP_PKEY_get_raw_public_key(key, raw, &n) != 1 || n != TT_SIGN_PUBLEN) {
        ERR_clear_error();
        return -1;
    }
    tt_chain_sha256(raw, n, d);
    memcpy(out, "sha256:", 7);
    tt_chain_hex(d, sizeof(d), out + 7);
    return 0;
}
