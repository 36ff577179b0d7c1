/* tt_scenario.c - load a drill scenario from YAML: a schema walk over the
 * libyaml document, with ${VAR} expansion and secrets from env or files. */
#include "tt_scenario.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <yaml.h>

#include "tt_time.h"
#include "tt_yaml.h"

const char *const tt_drill_metrics[] = {
    "time_to_token_ms",          /* first token request .. token in hand */
    "time_to_first_use_ms",      /* token in hand .. first accepted use, per RS */
    "revocation_propagation_ms", /* end of access .. first refusal, per RS */
    "lingering",                 /* RS still accepting at probe_timeout (lower bound ms) */
    "propagation_window_ms",     /* width of the window the refusal began in, per RS */
    "probe_lateness_ms",         /* the refusing probe's delay past its tick, per RS */
    "scope_widening",            /* granted scopes exceeding the request */
    "fresh_token_refused",       /* an RS refused a fresh token, per RS */
    "active_after_end",          /* introspection still active after the end */
    "errors",                    /* iterations that could not complete */
    NULL,
};

/* Metrics whose series are tagged by resource server name. */
static int metric_per_rs(const char *m)
{
    return strcmp(m, "time_to_first_use_ms") == 0 ||
           strcmp(m, "revocation_propagation_ms") == 0 || strcmp(m, "lingering") == 0 ||
           strcmp(m, "propagation_window_ms") == 0 || strcmp(m, "probe_lateness_ms") == 0 ||
           strcmp(m, "fresh_token_refused") == 0;
}

typedef struct sc_load {
    yaml_document_t *doc;
    const char *path;
    char *err;
    size_t errlen;
    tt_scenario *sc;
} sc_load;

static int failf(sc_load *L, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int failf(sc_load *L, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(L->err, L->errlen, "%s:%lu: %s", L->path,
             n ? (unsigned long)n->start_mark.line + 1 : 0UL, msg);
    return -1;
}

static yaml_node_t *node_at(sc_load *L, int id)
{
    return yaml_document_get_node(L->doc, id);
}

static const char *raw(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* Expand ${NAME} from the environment into a new string. */
static int expand(sc_load *L, const yaml_node_t *n, const char *key, char **out)
{
    const char *s = raw(n);
    char buf[TT_SC_MAX_SCALAR + 1];
    size_t k = 0;
    for (const char *p = s; *p;) {
        const char *add = p;
        size_t addlen = 1;
        char name[256];
        if (p[0] == '$' && p[1] == '$') {
            addlen = 1;
            p += 2;
        } else if (p[0] == '$' && p[1] == '{') {
            const char *close = strchr(p + 2, '}');
            size_t nl = close ? (size_t)(close - (p + 2)) : 0;
            if (close == NULL || nl == 0 || nl >= sizeof(name)) {
                return failf(L, n, "%s: malformed ${NAME} reference", key);
            }
            memcpy(name, p + 2, nl);
            name[nl] = '\0';
            add = getenv(name);
            if (add == NULL) {
                return failf(L, n, "%s: environment variable %s is not set", key, name);
            }
            addlen = strlen(add);
            p = close + 1;
        } else {
            p++;
        }
        if (k + addlen > TT_SC_MAX_SCALAR) {
            return failf(L, n, "%s: value longer than %d bytes", key, TT_SC_MAX_SCALAR);
        }
        memcpy(buf + k, add, addlen);
        k += addlen;
    }
    buf[k] = '\0';
    *out = strdup(buf);
    if (*out == NULL) {
        return failf(L, n, "out of memory");
    }
    return 0;
}

/* A scalar value into *out (replacing any earlier one). */
static int get_str(sc_load *L, const yaml_node_t *n, const char *key, char **out)
{
    if (n->type != YAML_SCALAR_NODE) {
        return failf(L, n, "%s: expected a single value", key);
    }
    char *v;
    if (expand(L, n, key, &v) != 0) {
        return -1;
    }
    if (v[0] == '\0') {
        free(v);
        return failf(L, n, "%s: must not be empty", key);
    }
    free(*out);
    *out = v;
    return 0;
}

/* A string or a sequence of strings, joined with single spaces. */
static int get_words(sc_load *L, const yaml_node_t *n, const char *key, char **out)
{
    if (n->type == YAML_SCALAR_NODE) {
        return get_str(L, n, key, out);
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        return failf(L, n, "%s: expected a string or a list of strings", key);
    }
    char buf[TT_SC_MAX_SCALAR + 1];
    size_t k = 0;
    buf[0] = '\0';
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *item = node_at(L, *it);
        char *v = NULL;
        if (get_str(L, item, key, &v) != 0) {
            return -1;
        }
        size_t vl = strlen(v);
        if (k + vl + 1 > TT_SC_MAX_SCALAR) {
            free(v);
            return failf(L, item, "%s: longer than %d bytes", key, TT_SC_MAX_SCALAR);
        }
        if (k > 0) {
            buf[k++] = ' ';
        }
        memcpy(buf + k, v, vl + 1);
        k += vl;
        free(v);
    }
    free(*out);
    *out = strdup(buf);
    return *out ? 0 : failf(L, n, "out of memory");
}

static int get_int(sc_load *L, const yaml_node_t *n, const char *key, int64_t lo, int64_t hi,
                   int64_t *out)
{
    char *v = NULL;
    if (get_str(L, n, key, &v) != 0) {
        return -1;
    }
    errno = 0;
    char *end;
    long long x = strtoll(v, &end, 10);
    int bad = errno != 0 || *end != '\0' || end == v;
    free(v);
    if (bad || x < lo || x > hi) {
        return failf(L, n, "%s: expected an integer from %lld to %lld", key, (long long)lo,
                     (long long)hi);
    }
    *out = x;
    return 0;
}

static int get_duration(sc_load *L, const yaml_node_t *n, const char *key, int64_t lo,
                        int64_t hi, int64_t *out)
{
    char *v = NULL;
    if (get_str(L, n, key, &v) != 0) {
        return -1;
    }
    /* tt_time_parse_duration would read a bare number as seconds, but
     * `probe_interval: 10` is as likely meant as 10 ms: the unit is required. */
    if (strspn(v, "0123456789") == strlen(v)) {
        failf(L, n, "%s: '%.32s' needs a unit (e.g. 10ms, 2s)", key, v);
        free(v);
        return -1;
    }
    int64_t ms;
    int rc = tt_time_parse_duration(v, &ms);
    free(v);
    if (rc != 0 || ms < lo || ms > hi) {
        return failf(L, n, "%s: expected a duration from %lldms to %llds (e.g. 10ms, 5s)", key,
                     (long long)lo, (long long)(hi / 1000));
    }
    *out = ms;
    return 0;
}

/* Read a secret from a file: at most TT_SC_MAX_SECRET bytes, trailing
 * whitespace dropped, not empty. */
static int read_secret_file(sc_load *L, const yaml_node_t *n, const char *key, const char *file,
                            char **out)
{
    FILE *fp = fopen(file, "r");
    if (fp == NULL) {
        return failf(L, n, "%s: cannot read %s: %s", key, file, strerror(errno));
    }
    char buf[TT_SC_MAX_SECRET + 2];
    size_t got = fread(buf, 1, sizeof(buf) - 1, fp);
    int over = got > TT_SC_MAX_SECRET;
    fclose(fp);
    if (over) {
        OPENSSL_cleanse(buf, sizeof(buf));
        return failf(L, n, "%s: %s is longer than %d bytes", key, file, TT_SC_MAX_SECRET);
    }
    while (got > 0 && isspace((unsigned char)buf[got - 1])) {
        got--;
    }
    buf[got] = '\0';
    if (got == 0) {
        return failf(L, n, "%s: %s is empty", key, file);
    }
    *out = strdup(buf);
    OPENSSL_cleanse(buf, sizeof(buf));
    return *out ? 0 : failf(L, n, "out of memory");
}

static int read_secret_env(sc_load *L, const yaml_node_t *n, const char *key, const char *name,
                           char **out)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0') {
        return failf(L, n, "%s: environment variable %s is not set or empty", key, name);
    }
    if (strlen(v) > TT_SC_MAX_SECRET) {
        return failf(L, n, "%s: %s is longer than %d bytes", key, name, TT_SC_MAX_SECRET);
    }
    *out = strdup(v);
    return *out ? 0 : failf(L, n, "out of memory");
}

static void free_secret(char **s)
{
    if (*s) {
        OPENSSL_cleanse(*s, strlen(*s));
        free(*s);
        *s = NULL;
    }
}

/* Look a secret up: `<prefix>_env: NAME` or `<prefix>_file: PATH`. */
static int secret_key(sc_load *L, const char *k, const yaml_node_t *v, const char *prefix,
                      char **out, int *handled)
{
    char env_key[64], file_key[64];
    snprintf(env_key, sizeof(env_key), "%s_env", prefix);
    snprintf(file_key, sizeof(file_key), "%s_file", prefix);
    *handled = 0;
    if (strcmp(k, prefix) == 0) {
        *handled = 1;
        return failf(L, v,
                     "%s: inline secrets are not allowed; use %s: VARIABLE or %s: PATH instead",
                     k, env_key, file_key);
    }
    int is_env = strcmp(k, env_key) == 0;
    if (!is_env && strcmp(k, file_key) != 0) {
        return 0;
    }
    *handled = 1;
    if (*out) {
        return failf(L, v, "%s: give only one of %s and %s", k, env_key, file_key);
    }
    char *ref = NULL;
    if (get_str(L, v, k, &ref) != 0) {
        return -1;
    }
    int rc = is_env ? read_secret_env(L, v, k, ref, out) : read_secret_file(L, v, k, ref, out);
    free(ref);
    return rc;
}

typedef int (*pair_fn)(sc_load *L, void *obj, const char *key, yaml_node_t *val);

/* Call fn for each key of a mapping; `what` names the section in errors. */
static int walk_map(sc_load *L, yaml_node_t *map, const char *what, void *obj, pair_fn fn)
{
    if (map->type != YAML_MAPPING_NODE) {
        return failf(L, map, "%s: expected a mapping", what);
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node_at(L, p->key);
        yaml_node_t *v = node_at(L, p->value);
        if (k->type != YAML_SCALAR_NODE) {
            return failf(L, k, "%s: keys must be plain strings", what);
        }
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *k2 = node_at(L, q->key);
            if (k2->type == YAML_SCALAR_NODE && strcmp(raw(k2), raw(k)) == 0) {
                return failf(L, k, "%s: duplicate key '%s'", what, raw(k));
            }
        }
        if (fn(L, obj, raw(k), v) != 0) {
            return -1;
        }
    }
    return 0;
}

static int unknown(sc_load *L, yaml_node_t *v, const char *section, const char *key,
                   const char *known)
{
    return failf(L, v, "unknown key '%s' in %s (known: %s)", key, section, known);
}

/* ---- sections ---- */

static int client_pair(sc_load *L, void *obj, const char *k, yaml_node_t *v)
{
    tt_sc_client *c = obj;
    int handled;
    if (secret_key(L, k, v, "client_secret", &c->secret, &handled) != 0) {
        return -1;
    }
    if (handled) {
        return 0;
    }
    if (strcmp(k, "client_id") == 0) {
        return get_str(L, v, k, &c->id);
    }
    if (strcmp(k, "client_auth") == 0) {
        char *s = NULL;
        if (get_str(L, v, k, &s) != 0) {
            return -1;
        }
        int rc = 0;
        if (strcmp(s, "client_secret_basic") == 0) {
            c->auth = TT_AUTH_BASIC;
        } else if (strcmp(s, "client_secret_post") == 0) {
            c->auth = TT_AUTH_POST;
        } else if (strcmp(s, "none") == 0) {
            c->auth = TT_AUTH_NONE;
        } else {
            rc = failf(L, v, "client_auth: '%s' is not client_secret_basic, client_secret_post "
                             "or none", s);
        }
        free(s);
        return rc;
    }
    return unknown(L, v, "a client", k,
                   "client_id, client_auth, client_secret_env, client_secret_file");
}

static int load_client(sc_load *L, yaml_node_t *v, const char *what, tt_sc_client *c)
{
    if (c->set) {
        return failf(L, v, "%s: given twice", what);
    }
    c->set = 1;
    if (walk_map(L, v, what, c, client_pair) != 0) {
        return -1;
    }
    if (c->id == NULL) {
        return failf(L, v, "%s: client_id is required", what);
    }
    if (c->auth != TT_AUTH_NONE && c->secret == NULL) {
        return failf(L, v, "%s: client_secret_env or client_secret_file is required (or "
                           "client_auth: none for a public client)", what);
    }
    if (c->auth == TT_AUTH_NONE && c->secret) {
        return failf(L, v, "%s: client_auth none takes no secret", what);
    }
    return 0;
}

static int as_pair(sc_load *L, void *obj, const char *k, yaml_node_t *v)
{
    tt_scenario *sc = obj;
    static const struct {
        const char *key;
        size_t off;
    } keys[] = {
        {"issuer", offsetof(tt_scenario, issuer)},
        {"token_endpoint", offsetof(tt_scenario, token_endpoint)},
        {"introspection_endpoint", offsetof(tt_scenario, introspection_endpoint)},
        {"revocation_endpoint", offsetof(tt_scenario, revocation_endpoint)},
        {"device_authorization_endpoint", offsetof(tt_scenario, device_authorization_endpoint)},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (strcmp(k, keys[i].key) == 0) {
            char **dst = (char **)((char *)sc + keys[i].off);
            if (get_str(L, v, k, dst) != 0) {
                return -1;
            }
            if (strncmp(*dst, "http://", 7) != 0 && strncmp(*dst, "https://", 8) != 0) {
                return failf(L, v, "%s: expected an http:// or https:// URL", k);
            }
            return 0;
        }
    }
    return unknown(L, v, "authorization_server", k,
                   "issuer, token_endpoint, introspection_endpoint, revocation_endpoint, "
                   "device_authorization_endpoint");
}

static int approval_pair(sc_load *L, void *obj, const char *k, yaml_node_t *v)
{
    tt_scenario *sc = obj;
    int handled;
    if (secret_key(L, k, v, "token", &sc->approval_token, &handled) != 0) {
        return -1;
    }
    if (handled) {
        return 0;
    }
    if (strcmp(k, "url") == 0) {
        return get_str(L, v, k, &sc->approval_url);
    }
    if (strcmp(k, "command") == 0) {
        if (v->type != YAML_SEQUENCE_NODE) {
            return failf(L, v, "command: expected a list: [program, arg, ...]");
        }
        for (yaml_node_item_t *it = v->data.sequence.items.start;
             it < v->data.sequence.items.top; it++) {
            if (sc->approval_argc == TT_SC_MAX_ARGV) {
                return failf(L, v, "command: more than %d words", TT_SC_MAX_ARGV);
            }
            if (get_str(L, node_at(L, *it), k, &sc->approval_argv[sc->approval_argc]) != 0) {
                return -1;
            }
            sc->approval_argc++;
        }
        if (sc->approval_argc == 0) {
            return failf(L, v, "command: is empty");
        }
        return 0;
    }
    return unknown(L, v, "grant.approval", k, "url, token_env, token_file, command");
}

static int subject_pair(sc_load *L, void *obj, const char *k, yaml_node_t *v)
{
    tt_scenario *sc = obj;
    if (strcmp(k, "scope") == 0) {
        return get_words(L, v, k, &sc->subject_scope);
    }
    return client_pair(L, &sc->subject, k, v);
}

static int grant_pair(sc_load *L, void *obj, const char *k, yaml_node_t *v)
{
    tt_scenario *sc = obj;
    if (strcmp(k, "type") == 0) {
        char *s = NULL;
        if (get_str(L, v, k, &s) != 0) {
            return -1;
        }
        int rc = 0;
        if (strcmp(s, "client_credentials") == 0) {
            sc->grant = TT_GRANT_CLIENT_CREDENTIALS;
        } else if (strcmp(s, "device_code") == 0) {
            sc->grant = TT_GRANT_DEVICE_CODE;
        } else if (strcmp(s, "token_exchange") == 0) {
            sc->grant = TT_GRANT_TOKEN_EXCHANGE;
        } else {
            rc = failf(L, v, "type: '%s' is not client_credentials, device_code or "
                             "token_exchange", s);
        }
        free(s);
        return rc;
    }
    if (strcmp(k, "scope") == 0) {
        return get_words(L, v, k, &sc->scope);
    }
    if (strcmp(k, "resource") == 0) {
        return get_str(L, v, k, &sc->resource);
    }
    if (strcmp(k, "audience") == 0) {
        return get_str(L, v, k, &sc->audience);
    }
    if (strcmp(k, "approval") == 0) {
        return walk_map(L, v, "grant.approval", sc, approval_pair);
    }
    if (strcmp(k, "subject") == 0) {
        sc->subject.set = 1;
        if (walk_map(L, v, "grant.subject", sc, subject_pair) != 0) {
            return -1;
        }
        if (sc->subject.id == NULL) {
            return failf(L, v, "grant.subject: client_id is required");
        }
        if (sc->subject.auth != TT_AUTH_NONE && sc->subject.secret == NULL) {
            return failf(L, v, "grant.subject: client_secret_env or client_secret_file is "
                               "required");
        }
        return 0;
    }
    return unknown(L, v, "grant", k, "type, scope, resource, audience, approval, subject");
}

static int rs_pair(sc_load *L, void *obj, const char *k, yaml_node_t *v)
{
    tt_sc_rs *rs = obj;
    if (strcmp(k, "name") == 0) {
        if (get_str(L, v, k, &rs->name) != 0) {
            return -1;
        }
        size_t n = strlen(rs->name);
        if (n > TT_SC_MAX_NAME || strspn(rs->name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQR"
                                                   "STUVWXYZ0123456789._-") != n) {
            return failf(L, v, "name: 1-%d characters of A-Z a-z 0-9 . _ -", TT_SC_MAX_NAME);
        }
        return 0;
    }
    if (strcmp(k, "url") == 0) {
        if (get_str(L, v, k, &rs->url) != 0) {
            return -1;
        }
        if (strncmp(rs->url, "http://", 7) != 0 && strncmp(rs->url, "https://", 8) != 0) {
            return failf(L, v, "url: expected an http:// or https:// URL");
        }
        return 0;
    }
    if (strcmp(k, "method") == 0) {
        if (get_str(L, v, k, &rs->method) != 0) {
            return -1;
        }
        size_t n = strlen(rs->method);
        if (n > 16 || strspn(rs->method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != n) {
            return failf(L, v, "method: 1-16 uppercase letters (GET, POST, ...)");
        }
        return 0;
    }
    if (strcmp(k, "accept_status") == 0) {
        int64_t x;
        if (get_int(L, v, k, 100, 599, &x) != 0) {
            return -1;
        }
        rs->accept_status = (long)x;
        return 0;
    }
    return unknown(L, v, "a resource server", k, "name, url, method, accept_status");
}

static int load_rs(sc_load *L, yaml_node_t *v)
{
    tt_scenario *sc = L->sc;
    if (v->type != YAML_SEQUENCE_NODE) {
        return failf(L, v, "resource_servers: expected a list");
    }
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        yaml_node_t *item = node_at(L, *it);
        if (sc->n_rs == TT_SC_MAX_RS) {
            return failf(L, item, "resource_servers: more than %d", TT_SC_MAX_RS);
        }
        tt_sc_rs *rs = &sc->rs[sc->n_rs++];
        rs->accept_status = 200;
        if (walk_map(L, item, "resource_servers", rs, rs_pair) != 0) {
            return -1;
        }
        if (rs->name == NULL || rs->url == NULL) {
            return failf(L, item, "a resource server needs name and url");
        }
        if (rs->method == NULL) {
            rs->method = strdup("GET");
            if (rs->method == NULL) {
                return failf(L, item, "out of memory");
            }
        }
        for (size_t j = 0; j + 1 < sc->n_rs; j++) {
            if (strcmp(sc->rs[j].name, rs->name) == 0) {
                return failf(L, item, "resource server name '%s' used twice", rs->name);
            }
        }
    }
    if (sc->n_rs == 0) {
        return failf(L, v, "resource_servers: give at least one");
    }
    return 0;
}

static int end_pair(sc_load *L, void *obj, const char *k, yaml_node_t *v)
{
    tt_scenario *sc = obj;
    if (strcmp(k, "how") == 0) {
        char *s = NULL;
        if (get_str(L, v, k, &s) != 0) {
            return -1;
        }
        int rc = 0;
        if (strcmp(s, "revoke") == 0) {
            sc->end = TT_END_REVOKE;
        } else if (strcmp(s, "resolve_incident") == 0) {
            sc->end = TT_END_RESOLVE;
        } else if (strcmp(s, "expire") == 0) {
            sc->end = TT_END_EXPIRE;
        } else {
            rc = failf(L, v, "how: '%s' is not revoke, resolve_incident or expire", s);
        }
        free(s);
        return rc;
    }
    return unknown(L, v, "end", k, "how");
}

static int load_pair(sc_load *L, void *obj, const char *k, yaml_node_t *v)
{
    tt_scenario *sc = obj;
    if (strcmp(k, "engineers") == 0) {
        return get_int(L, v, k, 1, TT_SC_MAX_ENGINEERS, &sc->engineers);
    }
    if (strcmp(k, "iterations") == 0) {
        return get_int(L, v, k, 1, TT_SC_MAX_ITERATIONS, &sc->iterations);
    }
    if (strcmp(k, "probe_interval") == 0) {
        return get_duration(L, v, k, 1, 60000, &sc->probe_interval_ms);
    }
    if (strcmp(k, "probe_timeout") == 0) {
        return get_duration(L, v, k, 1, 86400000, &sc->probe_timeout_ms);
    }
    if (strcmp(k, "request_timeout") == 0) {
        return get_duration(L, v, k, 1, 600000, &sc->request_timeout_ms);
    }
    if (strcmp(k, "ramp") == 0) {
        return get_duration(L, v, k, 0, 3600000, &sc->ramp_ms);
    }
    return unknown(L, v, "load", k,
                   "engineers, iterations, probe_interval, probe_timeout, request_timeout, ramp");
}

static int incident_pair(sc_load *L, void *obj, const char *k, yaml_node_t *v)
{
    tt_scenario *sc = obj;
    if (strcmp(k, "title") == 0) {
        return get_str(L, v, k, &sc->incident_title);
    }
    if (strcmp(k, "severity") == 0) {
        return get_str(L, v, k, &sc->incident_severity);
    }
    if (strcmp(k, "services") == 0) {
        if (v->type != YAML_SEQUENCE_NODE) {
            return failf(L, v, "services: expected a list");
        }
        for (yaml_node_item_t *it = v->data.sequence.items.start;
             it < v->data.sequence.items.top; it++) {
            if (sc->n_services == TT_SC_MAX_SERVICES) {
                return failf(L, v, "services: more than %d", TT_SC_MAX_SERVICES);
            }
            if (get_str(L, node_at(L, *it), k, &sc->services[sc->n_services]) != 0) {
                return -1;
            }
            sc->n_services++;
        }
        return 0;
    }
    return unknown(L, v, "incident", k, "title, severity, services");
}

static int collector_pair(sc_load *L, void *obj, const char *k, yaml_node_t *v)
{
    tt_scenario *sc = obj;
    int handled;
    if (secret_key(L, k, v, "token", &sc->collector_token, &handled) != 0) {
        return -1;
    }
    if (handled) {
        return 0;
    }
    if (strcmp(k, "url") == 0) {
        if (get_str(L, v, k, &sc->collector_url) != 0) {
            return -1;
        }
        if (strncmp(sc->collector_url, "http://", 7) != 0 &&
            strncmp(sc->collector_url, "https://", 8) != 0) {
            return failf(L, v, "url: expected an http:// or https:// URL");
        }
        return 0;
    }
    return unknown(L, v, "collector", k, "url, token_env, token_file");
}

static int threshold_pair(sc_load *L, void *obj, const char *k, yaml_node_t *v)
{
    tt_scenario *sc = obj;
    char metric[TT_SERIES_MAX_NAME];
    char tag[TT_SERIES_MAX_TAG];
    tag[0] = '\0';
    const char *brace = strchr(k, '{');
    size_t ml = brace ? (size_t)(brace - k) : strlen(k);
    if (ml == 0 || ml >= sizeof(metric)) {
        return failf(L, v, "threshold '%s': bad metric name", k);
    }
    memcpy(metric, k, ml);
    metric[ml] = '\0';
    if (brace) {
        const char *t = brace + 1;
        if (strncmp(t, "rs:", 3) == 0) {
            t += 3;
        }
        size_t tl = strlen(t);
        if (tl < 2 || t[tl - 1] != '}' || tl - 1 >= sizeof(tag)) {
            return failf(L, v, "threshold '%s': expected metric{resource-server}", k);
        }
        memcpy(tag, t, tl - 1);
        tag[tl - 1] = '\0';
    }
    size_t i;
    for (i = 0; tt_drill_metrics[i]; i++) {
        if (strcmp(tt_drill_metrics[i], metric) == 0) {
            break;
        }
    }
    if (tt_drill_metrics[i] == NULL) {
        return failf(L, v, "threshold '%s': unknown metric (known: time_to_token_ms, "
                           "time_to_first_use_ms, revocation_propagation_ms, lingering, "
                           "propagation_window_ms, probe_lateness_ms, scope_widening, "
                           "fresh_token_refused, active_after_end, errors)", k);
    }
    if (tag[0] != '\0') {
        if (!metric_per_rs(metric)) {
            return failf(L, v, "threshold '%s': %s is not per resource server", k, metric);
        }
        size_t j;
        for (j = 0; j < sc->n_rs; j++) {
            if (strcmp(sc->rs[j].name, tag) == 0) {
                break;
            }
        }
        if (j == sc->n_rs) {
            return failf(L, v, "threshold '%s': no resource server named '%s'", k, tag);
        }
    }
    yaml_node_item_t one = 0;
    yaml_node_item_t *start, *top;
    if (v->type == YAML_SCALAR_NODE) {
        /* a single expression is allowed instead of a list */
        one = (yaml_node_item_t)(v - L->doc->nodes.start + 1);
        start = &one;
        top = &one + 1;
    } else if (v->type == YAML_SEQUENCE_NODE) {
        start = v->data.sequence.items.start;
        top = v->data.sequence.items.top;
    } else {
        return failf(L, v, "threshold '%s': expected a list of expressions", k);
    }
    for (yaml_node_item_t *it = start; it < top; it++) {
        yaml_node_t *e = node_at(L, *it);
        if (sc->n_thr == TT_SC_MAX_THRESHOLDS) {
            return failf(L, e, "more than %d thresholds", TT_SC_MAX_THRESHOLDS);
        }
        tt_sc_threshold *t = &sc->thr[sc->n_thr];
        if (get_str(L, e, k, &t->text) != 0) {
            sc->n_thr++; /* so that t->text is freed */
            return -1;
        }
        sc->n_thr++;
        char why[256];
        if (tt_threshold_parse(t->text, &t->expr, why, sizeof(why)) != 0) {
            return failf(L, e, "threshold %s: %s", k, why);
        }
        t->metric = strdup(metric);
        t->tag = tag[0] ? strdup(tag) : NULL;
        t->line = (int)e->start_mark.line + 1;
        if (t->metric == NULL || (tag[0] && t->tag == NULL)) {
            return failf(L, e, "out of memory");
        }
    }
    return 0;
}

static int top_pair(sc_load *L, void *obj, const char *k, yaml_node_t *v)
{
    tt_scenario *sc = obj;
    if (strcmp(k, "name") == 0) {
        return get_str(L, v, k, &sc->name);
    }
    if (strcmp(k, "description") == 0) {
        return get_str(L, v, k, &sc->description);
    }
    if (strcmp(k, "authorization_server") == 0) {
        return walk_map(L, v, k, sc, as_pair);
    }
    if (strcmp(k, "client") == 0) {
        return load_client(L, v, k, &sc->client);
    }
    if (strcmp(k, "admin_client") == 0) {
        return load_client(L, v, k, &sc->admin);
    }
    if (strcmp(k, "grant") == 0) {
        return walk_map(L, v, k, sc, grant_pair);
    }
    if (strcmp(k, "resource_servers") == 0) {
        return load_rs(L, v);
    }
    if (strcmp(k, "end") == 0) {
        if (v->type == YAML_SCALAR_NODE) {
            return end_pair(L, sc, "how", v);
        }
        return walk_map(L, v, k, sc, end_pair);
    }
    if (strcmp(k, "load") == 0) {
        return walk_map(L, v, k, sc, load_pair);
    }
    if (strcmp(k, "incident") == 0) {
        return walk_map(L, v, k, sc, incident_pair);
    }
    if (strcmp(k, "collector") == 0) {
        return walk_map(L, v, k, sc, collector_pair);
    }
    if (strcmp(k, "thresholds") == 0) {
        /* thresholds may name resource servers: they must be known first */
        return 1;
    }
    return unknown(L, v, "the scenario", k,
                   "name, description, authorization_server, client, admin_client, grant, "
                   "resource_servers, end, load, incident, collector, thresholds");
}

/* First pass: everything but thresholds (top_pair returns 1 for them). */
static int top_pair_first(sc_load *L, void *obj, const char *k, yaml_node_t *v)
{
    int rc = top_pair(L, obj, k, v);
    return rc == 1 ? 0 : rc;
}

static int top_pair_thresholds(sc_load *L, void *obj, const char *k, yaml_node_t *v)
{
    if (strcmp(k, "thresholds") != 0) {
        return 0;
    }
    return walk_map(L, v, "thresholds", obj, threshold_pair);
}

/* The key `name` of mapping `map` (NULL when map is NULL, not a mapping, or
 * lacks it); *val gets its value when val is not NULL. Keys are unique by
 * now: walk_map rejected duplicates. */
static yaml_node_t *find_key(sc_load *L, const yaml_node_t *map, const char *name,
                             yaml_node_t **val)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE) {
        return NULL;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node_at(L, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp(raw(k), name) == 0) {
            if (val) {
                *val = node_at(L, p->value);
            }
            return k;
        }
    }
    return NULL;
}

/* Of two keys that clash, the one further down (the reader meets the clash
 * there); either may be NULL (left at its default), both NULL gives dflt. */
static const yaml_node_t *later(const yaml_node_t *a, const yaml_node_t *b, const yaml_node_t *dflt)
{
    if (a == NULL || (b != NULL && b->start_mark.line > a->start_mark.line)) {
        a = b;
    }
    return a ? a : dflt;
}

/* Rules that join several keys, checked once all are read. Each error names
 * the line of the key involved (the later one when two clash); for a missing
 * key, the line of the section that should hold it, else the top of the file. */
static int check(sc_load *L, yaml_node_t *root)
{
    tt_scenario *sc = L->sc;
    yaml_node_t *client_v = NULL, *grant_v = NULL, *approval_v = NULL, *end_v = NULL;
    yaml_node_t *load_v = NULL;
    const yaml_node_t *as = find_key(L, root, "authorization_server", NULL);
    find_key(L, root, "client", &client_v);
    const yaml_node_t *client_auth = find_key(L, client_v, "client_auth", NULL);
    const yaml_node_t *grant = find_key(L, root, "grant", &grant_v);
    const yaml_node_t *type = find_key(L, grant_v, "type", NULL);
    find_key(L, grant_v, "approval", &approval_v);
    const yaml_node_t *end = find_key(L, root, "end", &end_v);
    const yaml_node_t *how = find_key(L, end_v, "how", NULL); /* end: {how: ...} */
    end = how ? how : end;
    find_key(L, root, "load", &load_v);
    const yaml_node_t *collector = find_key(L, root, "collector", NULL);

    if (sc->issuer == NULL && sc->token_endpoint == NULL) {
        return failf(L, later(as, NULL, root),
                     "authorization_server: give issuer (for discovery) or token_endpoint");
    }
    if (!sc->client.set) {
        return failf(L, root, "client: is required");
    }
    if (sc->grant == TT_GRANT_CLIENT_CREDENTIALS && sc->client.auth == TT_AUTH_NONE) {
        return failf(L, later(client_auth, type, root),
                     "grant client_credentials needs a confidential client");
    }
    if (sc->grant == TT_GRANT_DEVICE_CODE && sc->approval_url == NULL &&
        sc->approval_argc == 0) {
        return failf(L, later(grant, NULL, root),
                     "grant device_code needs grant.approval with url or command");
    }
    if (sc->approval_url && sc->approval_argc) {
        return failf(L,
                     later(find_key(L, approval_v, "url", NULL),
                           find_key(L, approval_v, "command", NULL), root),
                     "grant.approval: give url or command, not both");
    }
    if (sc->grant == TT_GRANT_TOKEN_EXCHANGE && !sc->subject.set) {
        return failf(L, later(grant, NULL, root),
                     "grant token_exchange needs grant.subject (the client whose token is "
                     "exchanged)");
    }
    /* Without an issuer there is no discovery to fill in a missing endpoint:
     * say so now, not after the drill has started. */
    if (sc->issuer == NULL && sc->end == TT_END_REVOKE && sc->revocation_endpoint == NULL) {
        return failf(L, later(as, end, root),
                     "end revoke needs authorization_server.revocation_endpoint (there is no "
                     "issuer for discovery)");
    }
    if (sc->issuer == NULL && sc->grant == TT_GRANT_DEVICE_CODE &&
        sc->device_authorization_endpoint == NULL) {
        return failf(L, later(as, type, root),
                     "grant device_code needs authorization_server.device_authorization_endpoint "
                     "(there is no issuer for discovery)");
    }
    if (sc->n_rs == 0) {
        return failf(L, root, "resource_servers: is required");
    }
    if (sc->end == TT_END_RESOLVE && sc->collector_url == NULL) {
        return failf(L, later(end, collector, root),
                     "end resolve_incident needs collector.url (the resolution is sent there)");
    }
    if (sc->probe_timeout_ms < sc->probe_interval_ms) {
        return failf(L,
                     later(find_key(L, load_v, "probe_interval", NULL),
                           find_key(L, load_v, "probe_timeout", NULL), root),
                     "load: probe_timeout must be at least probe_interval");
    }
    return 0;
}

static int set_default(char **dst, const char *v)
{
    if (*dst == NULL) {
        *dst = strdup(v);
        return *dst ? 0 : -1;
    }
    return 0;
}

tt_scenario *tt_scenario_load(const char *path, char *err, size_t errlen)
{
    tt_scenario *sc = calloc(1, sizeof(*sc));
    if (sc == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    sc->engineers = 1;
    sc->iterations = 1;
    sc->probe_interval_ms = 10;
    sc->probe_timeout_ms = 10000;
    sc->request_timeout_ms = 10000;
    sc->path = strdup(path);
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        tt_scenario_free(sc);
        return NULL;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    int ok = 0;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: out of memory", path);
        fclose(fp);
        tt_scenario_free(sc);
        return NULL;
    }
    yaml_parser_set_input_file(&parser, fp);
    if (tt_yaml_load_one(&parser, &doc, path, err, errlen) != 0) {
        yaml_parser_delete(&parser);
        fclose(fp);
        tt_scenario_free(sc);
        return NULL;
    }
    sc_load L = {&doc, path, err, errlen, sc};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root == NULL) {
        snprintf(err, errlen, "%s:1: the file is empty", path);
    } else if (walk_map(&L, root, "the scenario", sc, top_pair_first) == 0 &&
               walk_map(&L, root, "the scenario", sc, top_pair_thresholds) == 0 &&
               check(&L, root) == 0) {
        ok = 1;
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(fp);
    if (ok && (set_default(&sc->name, path) != 0 || set_default(&sc->incident_severity, "sev2") ||
               set_default(&sc->incident_title, "tokentrail fire drill") != 0 ||
               sc->path == NULL)) {
        snprintf(err, errlen, "out of memory");
        ok = 0;
    }
    if (!ok) {
        tt_scenario_free(sc);
        return NULL;
    }
    return sc;
}

static void client_free(tt_sc_client *c)
{
    free(c->id);
    free_secret(&c->secret);
}

void tt_scenario_free(tt_scenario *sc)
{
    if (sc == NULL) {
        return;
    }
    free(sc->path);
    free(sc->name);
    free(sc->description);
    free(sc->issuer);
    free(sc->token_endpoint);
    free(sc->introspection_endpoint);
    free(sc->revocation_endpoint);
    free(sc->device_authorization_endpoint);
    client_free(&sc->client);
    client_free(&sc->admin);
    client_free(&sc->subject);
    free(sc->scope);
    free(sc->resource);
    free(sc->audience);
    free(sc->approval_url);
    free_secret(&sc->approval_token);
    for (size_t i = 0; i < sc->approval_argc; i++) {
        free(sc->approval_argv[i]);
    }
    free(sc->subject_scope);
    for (size_t i = 0; i < sc->n_rs; i++) {
        free(sc->rs[i].name);
        free(sc->rs[i].url);
        free(sc->rs[i].method);
    }
    free(sc->incident_title);
    free(sc->incident_severity);
    for (size_t i = 0; i < sc->n_services; i++) {
        free(sc->services[i]);
    }
    free(sc->collector_url);
    free_secret(&sc->collector_token);
    for (size_t i = 0; i < sc->n_thr; i++) {
        free(sc->thr[i].metric);
        free(sc->thr[i].tag);
        free(sc->thr[i].text);
    }
    free(sc);
}

const char *tt_grant_name(tt_grant g)
{
    switch (g) {
    case TT_GRANT_CLIENT_CREDENTIALS: return "client_credentials";
    case TT_GRANT_DEVICE_CODE: return "device_code";
    case TT_GRANT_TOKEN_EXCHANGE: return "token_exchange";
    }
    return "?";
}

const char *tt_grant_type_uri(tt_grant g)
{
    switch (g) {
    case TT_GRANT_CLIENT_CREDENTIALS: return "client_credentials";
    case TT_GRANT_DEVICE_CODE: return "urn:ietf:params:oauth:grant-type:device_code";
    case TT_GRANT_TOKEN_EXCHANGE: return "urn:ietf:params:oauth:grant-type:token-exchange";
    }
    return "?";
}

const char *tt_end_name(tt_end e)
{
    switch (e) {
    case TT_END_REVOKE: return "revoke";
    case TT_END_RESOLVE: return "resolve_incident";
    case TT_END_EXPIRE: return "expire";
    }
    return "?";
}
