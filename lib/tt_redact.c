/* tt_redact.c - excerpts of response bodies without tokens or secrets. */
#include "tt_redact.h"

#include <string.h>
#include <strings.h>

/* Names whose value is a credential in OAuth 2.0 token, device and exchange
 * exchanges (RFC 6749, 8628, 8693, OIDC), in any body format. */
static const char *const secret_names[] = {
    "access_token", "refresh_token", "id_token", "device_code", "subject_token",
    "actor_token",  "client_secret", "assertion", "password",  "token",
    NULL,
};

typedef struct excerpt {
    char *out;
    size_t cap;   /* bytes of out usable for text (room for "..." and NUL kept) */
    size_t k;     /* bytes written */
    size_t left;  /* characters still allowed */
} excerpt;

static int full(const excerpt *x)
{
    return x->left == 0 || x->k >= x->cap;
}

static void emit(excerpt *x, const char *s, size_t n)
{
    while (n-- > 0 && !full(x)) {
        unsigned char c = (unsigned char)*s++;
        x->out[x->k++] = (c >= 0x20 && c < 0x7f) ? (char)c : ' ';
        x->left--;
    }
}

static int is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

/* A known secret starting at body[i] (or the body ending inside one): its
 * length from i, else 0. */
static size_t known_secret_at(const char *body, size_t len, size_t i, const char *const *secrets)
{
    for (size_t s = 0; secrets && secrets[s]; s++) {
        size_t n = strlen(secrets[s]);
        if (n < 4) {
            continue;
        }
        size_t have = len - i < n ? len - i : n;
        if (have >= 4 && memcmp(body + i, secrets[s], have) == 0) {
            return have;
        }
    }
    return 0;
}

/* A secret-bearing name at body[i], on word boundaries: its length, else 0. */
static size_t secret_name_at(const char *body, size_t len, size_t i)
{
    if (i > 0 && is_word(body[i - 1])) {
        return 0;
    }
    for (size_t s = 0; secret_names[s]; s++) {
        size_t n = strlen(secret_names[s]);
        if (len - i >= n && strncasecmp(body + i, secret_names[s], n) == 0 &&
            (i + n == len || !is_word(body[i + n]))) {
            return n;
        }
    }
    return 0;
}

/* An HTTP authorization scheme whose credential follows it ("Bearer x",
 * "Basic x", RFC 7235 token68), on a word boundary at body[i]: the extent of
 * the credential in [*vs, *ve) and 1, else 0. */
static int scheme_credential_at(const char *body, size_t len, size_t i, size_t *vs, size_t *ve)
{
    static const char *const schemes[] = {"Bearer", "Basic", "DPoP", NULL};
    if (i > 0 && is_word(body[i - 1])) {
        return 0;
    }
    for (size_t s = 0; schemes[s]; s++) {
        size_t n = strlen(schemes[s]);
        if (len - i <= n || strncasecmp(body + i, schemes[s], n) != 0 || body[i + n] != ' ') {
            continue;
        }
        size_t j = i + n;
        while (j < len && body[j] == ' ') {
            j++;
        }
        size_t e = j;
        while (e < len && (is_word(body[e]) || strchr(".~+/=", body[e]))) {
            e++;
        }
        if (e > j) {
            *vs = j;
            *ve = e;
            return 1;
        }
    }
    return 0;
}

/* After a name ending at j: the separator ("name": / name= / name: with
 * optional quotes and blanks) and the value's extent. Returns 1 and sets
 * [*vs, *ve) when a value follows, else 0. */
static int value_after(const char *body, size_t len, size_t j, size_t *sep_end, size_t *vs,
                       size_t *ve)
{
    while (j < len && (body[j] == '"' || body[j] == '\'' || body[j] == ' ' || body[j] == '\t')) {
        j++;
    }
    if (j >= len || (body[j] != ':' && body[j] != '=')) {
        return 0;
    }
    j++;
    while (j < len && (body[j] == ' ' || body[j] == '\t')) {
        j++;
    }
    char q = 0;
    if (j < len && (body[j] == '"' || body[j] == '\'')) {
        q = body[j++];
    }
    *sep_end = j;
    size_t e = j;
    if (q) {
        while (e < len && body[e] != q) {
            e += body[e] == '\\' && e + 1 < len ? 2 : 1;
        }
    } else {
        while (e < len && !strchr("&,;}] \t\r\n<", body[e])) {
            e++;
        }
    }
    if (e > len) {
        e = len;
    }
    *vs = j;
    *ve = e;
    return e > j;
}

void tt_redact_excerpt(const char *body, size_t len, const char *const *secrets, size_t max_chars,
                       char *out, size_t outlen)
{
    if (outlen == 0) {
        return;
    }
    excerpt x = {out, outlen > 4 ? outlen - 4 : 0, 0, max_chars};
    size_t i = 0;
    while (i < len && !full(&x)) {
        size_t n = known_secret_at(body, len, i, secrets);
        if (n > 0) {
            emit(&x, TT_REDACTED, strlen(TT_REDACTED));
            i += n;
            continue;
        }
        size_t sep_end, vs, ve;
        if (scheme_credential_at(body, len, i, &vs, &ve)) {
            emit(&x, body + i, vs - i);
            emit(&x, TT_REDACTED, strlen(TT_REDACTED));
            i = ve;
            continue;
        }
        n = secret_name_at(body, len, i);
        if (n > 0 && value_after(body, len, i + n, &sep_end, &vs, &ve)) {
            emit(&x, body + i, sep_end - i);
            emit(&x, TT_REDACTED, strlen(TT_REDACTED));
            i = ve;
            continue;
        }
        emit(&x, body + i, 1);
        i++;
    }
    if (i < len && x.k + 4 <= outlen) {
        memcpy(out + x.k, "...", 3);
        x.k += 3;
    }
    out[x.k] = '\0';
}
