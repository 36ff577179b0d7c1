/* tt_finding.c - finding kinds, severities, ids and JSON. */
#include "tt_finding.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "tt_time.h"

static const struct {
    const char *name;
    tt_severity severity;
} kinds[TT_FK__COUNT] = {
    [TT_FK_USED_AFTER_REVOKE] = {"used_after_revoke", TT_SEV_CRITICAL},
    [TT_FK_USED_AFTER_EXPIRY] = {"used_after_expiry", TT_SEV_HIGH},
    [TT_FK_OUTLIVED_INCIDENT] = {"outlived_incident", TT_SEV_HIGH},
    [TT_FK_TTL_OVER_POLICY] = {"ttl_over_policy", TT_SEV_MEDIUM},
    [TT_FK_REFRESH_NOT_ALLOWED] = {"refresh_not_allowed", TT_SEV_HIGH},
    [TT_FK_IDLE_TOKEN] = {"idle_token", TT_SEV_LOW},
    [TT_FK_UNKNOWN_SCOPE] = {"unknown_scope", TT_SEV_HIGH},
    [TT_FK_SCOPE_OUTSIDE_BASELINE] = {"scope_outside_baseline", TT_SEV_HIGH},
    [TT_FK_NEW_SCOPE_FOR_CLIENT] = {"new_scope_for_client", TT_SEV_MEDIUM},
    [TT_FK_WRITE_OUTSIDE_INCIDENT] = {"write_outside_incident", TT_SEV_HIGH},
    [TT_FK_UNUSED_SCOPES] = {"unused_scopes", TT_SEV_LOW},
};

static const char *const severities[TT_SEV__COUNT] = {"critical", "high", "medium", "low"};

const char *tt_finding_kind_name(tt_finding_kind k)
{
    return (unsigned)k < TT_FK__COUNT ? kinds[k].name : "unknown";
}

int tt_finding_kind_from_name(const char *name)
{
    for (int k = 0; k < TT_FK__COUNT; k++) {
        if (strcmp(kinds[k].name, name) == 0) {
            return k;
        }
    }
    return -1;
}

tt_severity tt_finding_kind_severity(tt_finding_kind k)
{
    return (unsigned)k < TT_FK__COUNT ? kinds[k].severity : TT_SEV_LOW;
}

const char *tt_severity_name(tt_severity s)
{
    return (unsigned)s < TT_SEV__COUNT ? severities[s] : "unknown";
}

static void digest_str(EVP_MD_CTX *md, const char *s)
{
    if (s != NULL) {
        EVP_DigestUpdate(md, s, strlen(s));
    }
    EVP_DigestUpdate(md, "", 1);
}

void tt_finding_make_id(tt_finding *f)
{
    unsigned char d[32];
    unsigned int dl = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
    if (ok) {
        digest_str(md, tt_finding_kind_name(f->kind));
        digest_str(md, f->token_id ? f->token_id : f->incident_id);
        digest_str(md, f->client_id);
        for (size_t i = 0; i < f->n_evidence; i++) {
            digest_str(md, f->evidence[i]);
        }
        ok = EVP_DigestFinal_ex(md, d, &dl) == 1;
    }
    EVP_MD_CTX_free(md);
    if (!ok) {
        /* Only reachable when OpenSSL cannot allocate; an id that cannot
         * collide with a real one makes the failure visible downstream. */
        snprintf(f->id, sizeof(f->id), "f-error");
        return;
    }
    static const char hex[] = "0123456789abcdef";
    f->id[0] = 'f';
    f->id[1] = '-';
    for (int i = 0; i < 16; i++) {
        f->id[2 + 2 * i] = hex[d[i] >> 4];
        f->id[3 + 2 * i] = hex[d[i] & 15];
    }
    f->id[34] = '\0';
}

static int add_str(tt_buf *b, const char *key, const char *v)
{
    int rc = tt_buf_printf(b, ",\"%s\":", key);
    if (v == NULL) {
        return rc | tt_buf_adds(b, "null");
    }
    rc |= tt_buf_adds(b, "\"");
    rc |= tt_buf_add_json_escaped(b, v);
    return rc | tt_buf_adds(b, "\"");
}

static int add_list(tt_buf *b, const char *key, const char *const *v, size_t n)
{
    int rc = tt_buf_printf(b, ",\"%s\":[", key);
    for (size_t i = 0; i < n; i++) {
        rc |= tt_buf_adds(b, i ? ",\"" : "\"");
        rc |= tt_buf_add_json_escaped(b, v[i]);
        rc |= tt_buf_adds(b, "\"");
    }
    return rc | tt_buf_adds(b, "]");
}

int tt_finding_to_json(const tt_finding *f, tt_buf *out)
{
    char t[TT_TIME_BUFSZ];
    tt_time_format(f->time_ms, t);
    int rc =
        tt_buf_printf(out, "{\"id\":\"%s\",\"kind\":\"%s\",\"severity\":\"%s\",\"time\":\"%s\"",
                      f->id, tt_finding_kind_name(f->kind), tt_severity_name(f->severity), t);
    rc |= add_str(out, "token_id", f->token_id);
    rc |= add_str(out, "client_id", f->client_id);
    rc |= add_str(out, "subject", f->subject);
    rc |= add_str(out, "incident_id", f->incident_id);
    rc |= add_list(out, "scopes", f->scopes, f->n_scopes);
    rc |= add_list(out, "evidence", f->evidence, f->n_evidence);
    rc |= add_str(out, "message", f->message);
    rc |= tt_buf_adds(out, "}");
    return rc ? -1 : 0;
}
