/* tt_sign.h - Ed25519 keys and signatures for evidence bundles (OpenSSL 3). */
#ifndef TT_SIGN_H
#define TT_SIGN_H

#include <stddef.h>

#include <openssl/evp.h>

#include "tt_event.h" /* TT_FINGERPRINT_BUFSZ */

#define TT_SIGN_SIGLEN 64 /* an Ed25519 signature */
#define TT_SIGN_PUBLEN 32 /* a raw Ed25519 public key */
/* Largest key file read; PEM Ed25519 keys are ~120 bytes. */
#define TT_SIGN_MAX_KEYFILE 65536

/* Write a new key pair: PREFIX.key (PEM PKCS#8 private key, mode 0600) and
 * PREFIX.pub (PEM SubjectPublicKeyInfo, mode 0644). Refuses to overwrite
 * either file. Returns 0, or -1 with err filled and neither file left behind. */
int tt_sign_keygen(const char *prefix, char *err, size_t errlen);

/* Load an Ed25519 private key (PEM). Returns a new key the caller frees with
 * EVP_PKEY_free, or NULL with err filled (missing file, not PEM, not Ed25519). */
EVP_PKEY *tt_sign_load_private(const char *path, char *err, size_t errlen);

/* Load an Ed25519 public key (PEM public key; a PEM private key is accepted
 * too, its public half is used). Same contract as above. */
EVP_PKEY *tt_sign_load_public(const char *path, char *err, size_t errlen);

/* 1 when the PEM file at path holds a private key (tt_sign_load_public
 * accepts one and uses its public half), 0 when not or unreadable. */
int tt_sign_file_is_private(const char *path);

/* Sign msg[0..len) with a private key: sig receives 64 bytes. 0 or -1. */
int tt_sign_sign(EVP_PKEY *key, const void *msg, size_t len, unsigned char sig[TT_SIGN_SIGLEN],
                 char *err, size_t errlen);

/* 1 when sig is a valid signature of msg by key, else 0. */
int tt_sign_verify(EVP_PKEY *key, const void *msg, size_t len, const unsigned char *sig,
                   size_t siglen);

/* "sha256:" + hex SHA-256 of the raw 32-byte public key. 0 or -1. */
int tt_sign_fingerprint(EVP_PKEY *key, char out[TT_FINGERPRINT_BUFSZ]);

#endif
