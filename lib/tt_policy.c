/* tt_policy.c - load and query the analyzer policy (libyaml document API;
 * each mapping's keys go through a tt_config table, so types, bounds and
 * error messages match the collector's config files). */
#include "tt_policy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "tt_config.h"
#include "tt_yaml.h"

#define OFF(s, f) offsetof(s, f)
#define DAY_MS INT64_C(86400000)

/* One `scopes:` entry as read, before validation. */
typedef struct scope_in {
    char *name;
    char *service;
    char *access;
    int64_t max_ttl_ms;
} scope_in;

static const tt_cfg_entry scope_table[] = {
    {"name", TT_CFG_STRING, NULL, 0, 0, OFF(scope_in, name), "the scope, as in OAuth"},
    {"service", TT_CFG_STRING, NULL, 0, 0, OFF(scope_in, service),
     "the service the scope gives access to"},
    {"access", TT_CFG_STRING, "read", 0, 0, OFF(scope_in, access), "read, write or admin"},
    {"max_ttl", TT_CFG_DURATION, NULL, 1, 3650 * DAY_MS, OFF(scope_in, max_ttl_ms),
     "longest token lifetime for this scope (default: defaults.max_ttl)"},
    {NULL, 0, NULL, 0, 0, 0, NULL},
};

typedef struct client_in {
    tt_strlist allowed;
    int refresh;
} client_in;

static const tt_cfg_entry client_table[] = {
    {"allowed_scopes", TT_CFG_STRLIST, NULL, 0, 0, OFF(client_in, allowed),
     "the scopes this client may be granted (its baseline)"},
    {"refresh_tokens", TT_CFG_BOOL, NULL, 0, 0, OFF(client_in, refresh),
     "may this client hold refresh tokens (default: defaults.refresh_tokens)"},
    {NULL, 0, NULL, 0, 0, 0, NULL},
};

static const tt_cfg_entry defaults_table[] = {
    {"max_ttl", TT_CFG_DURATION, "1h", 1, 3650 * DAY_MS, OFF(tt_policy_defaults, max_ttl_ms),
     "longest token lifetime for scopes without their own max_ttl"},
    {"refresh_tokens", TT_CFG_BOOL, "false", 0, 0, OFF(tt_policy_defaults, refresh_tokens),
     "may clients without their own setting hold refresh tokens"},
    {"revocation_grace", TT_CFG_DURATION, "5s", 0, DAY_MS,
     OFF(tt_policy_defaults, revocation_grace_ms),
     "uses this soon after a revocation are in-flight requests, not findings"},
    {"incident_grace", TT_CFG_DURATION, "5m", 0, 30 * DAY_MS,
     OFF(tt_policy_defaults, incident_grace_ms),
     "how long a token may outlive the incident it was issued for"},
    {"idle_after", TT_CFG_DURATION, "30m", 0, 365 * DAY_MS, OFF(tt_policy_defaults, idle_after_ms),
     "a valid token unused this long is idle (0 disables idle_token)"},
    {"retention", TT_CFG_DURATION, "24h", 1000, 3650 * DAY_MS,
     OFF(tt_policy_defaults, retention_ms),
     "how long a revoked or expired token is remembered to catch later uses"},
    {NULL, 0, NULL, 0, 0, 0, NULL},
};

typedef struct pwalk {
    const char *name;
    yaml_document_t *doc;
    char *err;
    size_t errlen;
} pwalk;

static unsigned long node_line(const yaml_node_t *n)
{
    return (unsigned long)n->start_mark.line + 1;
}

static int fail_at(pwalk *w, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_at(pwalk *w, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(w->err, w->errlen, "%s:%lu: %s", w->name, node_line(n), msg);
    return -1;
}

static const char *scalar(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* Reject a mapping that repeats a key: YAML forbids it, libyaml allows it,
 * and a silently overridden policy key is a security bug. */
static int check_unique_keys(pwalk *w, yaml_node_t *map)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
        if (k == NULL || scalar(k) == NULL) {
            return fail_at(w, k ? k : map, "%s", "keys must be plain words");
        }
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *kq = yaml_document_get_node(w->doc, q->key);
            if (kq && scalar(kq) && strcmp(scalar(kq), scalar(k)) == 0) {
                return fail_at(w, k, "duplicate key '%s'", scalar(k));
            }
        }
    }
    return 0;
}

/* The value of key `name` in mapping `map`, or NULL. For error lines: a
 * cross-key check runs on the values read, then points at where one was
 * written (a block-style mapping starts at its first key, not at the key at
 * fault). Keys are unique once check_unique_keys passed. */
static const yaml_node_t *value_of(pwalk *w, const yaml_node_t *map, const char *name)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
        if (k && scalar(k) && strcmp(scalar(k), name) == 0) {
            return yaml_document_get_node(w->doc, p->value);
        }
    }
    return NULL;
}

/* value_of(), or `map` itself when the key is absent. */
static const yaml_node_t *value_or_map(pwalk *w, const yaml_node_t *map, const char *name)
{
    const yaml_node_t *v = value_of(w, map, name);
    return v ? v : map;
}

/* Apply every key of `map` through `table` into obj. */
static int apply_mapping(pwalk *w, yaml_node_t *map, const tt_cfg_entry *table, void *obj)
{
    if (check_unique_keys(w, map) != 0) {
        return -1;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(w->doc, p->value);
        char where[600];
        snprintf(where, sizeof(where), "%s:%lu", w->name, node_line(k));
        if (v == NULL) {
            return fail_at(w, k, "%s: no value", scalar(k));
        }
        if (v->type == YAML_SEQUENCE_NODE) {
            const tt_cfg_entry *e = table;
            while (e->key && strcmp(e->key, scalar(k)) != 0) {
                e++;
            }
            if (e->key && e->type == TT_CFG_STRLIST) {
                for (yaml_node_item_t *it = v->data.sequence.items.start;
                     it < v->data.sequence.items.top; it++) {
                    yaml_node_t *item = yaml_document_get_node(w->doc, *it);
                    if (item == NULL || scalar(item) == NULL) {
                        return fail_at(w, item ? item : v, "%s: list items must be plain values",
                                       scalar(k));
                    }
                    snprintf(where, sizeof(where), "%s:%lu", w->name, node_line(item));
                    if (tt_config_set(table, obj, scalar(k), scalar(item), where, w->err,
                                      w->errlen) != 0) {
                        return -1;
                    }
                }
                continue;
            }
            if (e->key) {
                return fail_at(w, k, "%s: expected a single value, not a list", scalar(k));
            }
        } else if (v->type == YAML_MAPPING_NODE) {
            return fail_at(w, k, "%s: expected a single value, not a mapping", scalar(k));
        }
        const char *val = v->type == YAML_SCALAR_NODE ? scalar(v) : "";
        if (tt_config_set(table, obj, scalar(k), val, where, w->err, w->errlen) != 0) {
            return -1;
        }
    }
    return 0;
}

/* RFC 6749 scope-token: %x21 / %x23-5B / %x5D-7E. */
static int valid_scope_name(const char *s)
{
    if (*s == '\0') {
        return 0;
    }
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c < 0x21 || *c > 0x7e || *c == '"' || *c == '\\') {
            return 0;
        }
    }
    return 1;
}

static int cmp_scope(const void *a, const void *b)
{
    return strcmp(((const tt_policy_scope *)a)->name, ((const tt_policy_scope *)b)->name);
}

static int cmp_client(const void *a, const void *b)
{
    return strcmp(((const tt_policy_client *)a)->name, ((const tt_policy_client *)b)->name);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_scopes(pwalk *w, tt_policy *p, yaml_node_t *seq)
{
    if (seq->type != YAML_SEQUENCE_NODE) {
        return fail_at(w, seq, "%s", "scopes: expected a list of {name, service, access, max_ttl}");
    }
    size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (n > TT_POLICY_MAX_SCOPES) {
        return fail_at(w, seq, "scopes: more than %d entries", TT_POLICY_MAX_SCOPES);
    }
    p->scopes = calloc(n ? n : 1, sizeof(*p->scopes));
    if (p->scopes == NULL) {
        return fail_at(w, seq, "%s", "out of memory");
    }
    size_t i = 0;
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++, i++) {
        yaml_node_t *item = yaml_document_get_node(w->doc, *it);
        if (item == NULL || item->type != YAML_MAPPING_NODE) {
            return fail_at(w, item ? item : seq, "%s",
                           "scopes: each entry must be a mapping {name, service, access, max_ttl}");
        }
        scope_in in;
        memset(&in, 0, sizeof(in));
        char err2[8];
        tt_config_defaults(scope_table, &in, err2, sizeof(err2));
        int rc = apply_mapping(w, item, scope_table, &in);
        tt_policy_scope *s = &p->scopes[p->n_scopes];
        s->name = in.name;
        s->service = in.service;
        s->access_text = in.access;
        s->max_ttl_ms = in.max_ttl_ms;
        p->n_scopes++; /* owned by p from here, also on error */
        if (rc != 0) {
            return -1;
        }
        if (s->name == NULL) {
            return fail_at(w, item, "%s", "scopes: entry without a name");
        }
        if (!valid_scope_name(s->name)) {
            return fail_at(w, value_or_map(w, item, "name"),
                           "scope '%s': invalid scope characters (RFC 6749 scope-token)", s->name);
        }
        if (s->service == NULL || s->service[0] == '\0') {
            return fail_at(w, value_or_map(w, item, "service"), "scope '%s': service is required",
                           s->name);
        }
        if (strcmp(s->access_text, "read") == 0) {
            s->access = TT_ACCESS_READ;
        } else if (strcmp(s->access_text, "write") == 0) {
            s->access = TT_ACCESS_WRITE;
        } else if (strcmp(s->access_text, "admin") == 0) {
            s->access = TT_ACCESS_ADMIN;
        } else {
            return fail_at(w, value_or_map(w, item, "access"),
                           "scope '%s': access must be read, write or admin", s->name);
        }
        for (size_t j = 0; j + 1 < p->n_scopes; j++) {
            if (strcmp(p->scopes[j].name, s->name) == 0) {
                return fail_at(w, value_or_map(w, item, "name"), "scope '%s' is listed twice",
                               s->name);
            }
        }
    }
    qsort(p->scopes, p->n_scopes, sizeof(*p->scopes), cmp_scope);
    return 0;
}

/* Item i of a sequence; `n` itself when it is a single value (a list of one)
 * or i is past the end. */
static const yaml_node_t *list_item(pwalk *w, const yaml_node_t *n, size_t i)
{
    if (n->type != YAML_SEQUENCE_NODE ||
        i >= (size_t)(n->data.sequence.items.top - n->data.sequence.items.start)) {
        return n;
    }
    const yaml_node_t *item = yaml_document_get_node(w->doc, n->data.sequence.items.start[i]);
    return item ? item : n;
}

static int load_clients(pwalk *w, tt_policy *p, yaml_node_t *map)
{
    if (map->type != YAML_MAPPING_NODE) {
        return fail_at(w, map, "%s",
                       "clients: expected a mapping of client_id: {allowed_scopes, ...}");
    }
    if (check_unique_keys(w, map) != 0) {
        return -1;
    }
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    if (n > TT_POLICY_MAX_CLIENTS) {
        return fail_at(w, map, "clients: more than %d entries", TT_POLICY_MAX_CLIENTS);
    }
    p->clients = calloc(n ? n : 1, sizeof(*p->clients));
    if (p->clients == NULL) {
        return fail_at(w, map, "%s", "out of memory");
    }
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *k = yaml_document_get_node(w->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(w->doc, pr->value);
        tt_policy_client *c = &p->clients[p->n_clients];
        c->name = strdup(scalar(k));
        c->refresh_tokens = -1;
        p->n_clients++;
        if (c->name == NULL) {
            return fail_at(w, k, "%s", "out of memory");
        }
        if (v == NULL || v->type != YAML_MAPPING_NODE) {
            return fail_at(w, v ? v : k,
                           "client '%s': expected a mapping {allowed_scopes, refresh_tokens}",
                           c->name);
        }
        client_in in = {.refresh = -1};
        int rc = apply_mapping(w, v, client_table, &in);
        c->allowed = in.allowed.v;
        c->n_allowed = in.allowed.n;
        c->refresh_tokens = in.refresh;
        if (rc != 0) {
            return -1;
        }
        const yaml_node_t *list = value_or_map(w, v, "allowed_scopes");
        if (c->n_allowed > TT_POLICY_MAX_ALLOWED) {
            return fail_at(w, list, "client '%s': more than %d allowed_scopes", c->name,
                           TT_POLICY_MAX_ALLOWED);
        }
        /* Checked before sorting, while entry i is still the i-th one written. */
        for (size_t i = 0; i < c->n_allowed; i++) {
            if (tt_policy_scope_find(p, c->allowed[i]) == NULL) {
                return fail_at(w, list_item(w, list, i),
                               "client '%.200s': allowed scope '%.200s' is not in scopes", c->name,
                               c->allowed[i]);
            }
            for (size_t j = 0; j < i; j++) {
                if (strcmp(c->allowed[j], c->allowed[i]) == 0) {
                    return fail_at(w, list_item(w, list, i),
                                   "client '%.200s': allowed scope '%.200s' is listed twice",
                                   c->name, c->allowed[i]);
                }
            }
        }
        if (c->n_allowed > 1) {
            qsort(c->allowed, c->n_allowed, sizeof(char *), cmp_str);
        }
    }
    qsort(p->clients, p->n_clients, sizeof(*p->clients), cmp_client);
    return 0;
}

tt_policy *tt_policy_new_default(void)
{
    tt_policy *p = calloc(1, sizeof(*p));
    char err[64];
    if (p != NULL && tt_config_defaults(defaults_table, &p->defaults, err, sizeof(err)) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

tt_policy *tt_policy_parse(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
    tt_policy *p = tt_policy_new_default();
    if (p == NULL) {
        snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: out of memory", name);
        tt_policy_free(p);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (tt_yaml_load_one(&parser, &doc, name, err, errlen) != 0) {
        yaml_parser_delete(&parser);
        tt_policy_free(p);
        return NULL;
    }
    pwalk w = {name, &doc, err, errlen};
    int rc = 0;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    yaml_node_t *clients = NULL;
    if (root == NULL) {
        snprintf(err, errlen, "%s:1: empty policy (expected scopes, clients, defaults)", name);
        rc = -1;
    } else if (root->type != YAML_MAPPING_NODE) {
        rc = fail_at(&w, root, "%s", "the top level must be a mapping (scopes, clients, defaults)");
    } else {
        rc = check_unique_keys(&w, root);
    }
    /* Scopes first: client baselines are checked against them. */
    for (int pass = 0; rc == 0 && pass < 2; pass++) {
        for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
             rc == 0 && pr < root->data.mapping.pairs.top; pr++) {
            yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
            yaml_node_t *v = yaml_document_get_node(&doc, pr->value);
            const char *key = scalar(k);
            if (pass == 1) {
                if (strcmp(key, "clients") == 0) {
                    clients = v;
                }
                continue;
            }
            if (strcmp(key, "scopes") == 0) {
                rc = load_scopes(&w, p, v);
            } else if (strcmp(key, "defaults") == 0) {
                if (v->type != YAML_MAPPING_NODE) {
                    rc = fail_at(&w, v, "%s", "defaults: expected a mapping");
                } else {
                    rc = apply_mapping(&w, v, defaults_table, &p->defaults);
                }
            } else if (strcmp(key, "clients") != 0) {
                rc = fail_at(&w, k, "unknown key '%s' (expected scopes, clients, defaults)", key);
            }
        }
    }
    if (rc == 0 && clients != NULL) {
        rc = load_clients(&w, p, clients);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc != 0) {
        tt_policy_free(p);
        return NULL;
    }
    return p;
}

tt_policy *tt_policy_load(const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(TT_POLICY_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, TT_POLICY_MAX_BYTES + 1, fp) : 0;
    int bad = buf == NULL || ferror(fp);
    fclose(fp);
    if (bad) {
        snprintf(err, errlen, "%s: cannot read", path);
        free(buf);
        return NULL;
    }
    if (n > TT_POLICY_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %d bytes", path, TT_POLICY_MAX_BYTES);
        free(buf);
        return NULL;
    }
    tt_policy *p = tt_policy_parse(buf, n, path, err, errlen);
    free(buf);
    return p;
}

void tt_policy_free(tt_policy *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < p->n_scopes; i++) {
        free(p->scopes[i].name);
        free(p->scopes[i].service);
        free(p->scopes[i].access_text);
    }
    free(p->scopes);
    for (size_t i = 0; i < p->n_clients; i++) {
        free(p->clients[i].name);
        for (size_t j = 0; j < p->clients[i].n_allowed; j++) {
            free(p->clients[i].allowed[j]);
        }
        free(p->clients[i].allowed);
    }
    free(p->clients);
    free(p);
}

const tt_policy_scope *tt_policy_scope_find(const tt_policy *p, const char *name)
{
    tt_policy_scope key = {.name = (char *)(uintptr_t)name};
    return p->n_scopes ? bsearch(&key, p->scopes, p->n_scopes, sizeof(key), cmp_scope) : NULL;
}

const tt_policy_client *tt_policy_client_find(const tt_policy *p, const char *name)
{
    if (name == NULL || p->n_clients == 0) {
        return NULL;
    }
    tt_policy_client key = {.name = (char *)(uintptr_t)name};
    return bsearch(&key, p->clients, p->n_clients, sizeof(key), cmp_client);
}

int tt_policy_client_allows(const tt_policy_client *c, const char *scope)
{
    return c->n_allowed && bsearch(&scope, c->allowed, c->n_allowed, sizeof(char *), cmp_str);
}

int tt_policy_refresh_allowed(const tt_policy *p, const char *client)
{
    const tt_policy_client *c = tt_policy_client_find(p, client);
    if (c != NULL && c->refresh_tokens >= 0) {
        return c->refresh_tokens;
    }
    return p->defaults.refresh_tokens;
}

int64_t tt_policy_scope_ttl(const tt_policy *p, const char *scope)
{
    const tt_policy_scope *s = tt_policy_scope_find(p, scope);
    return s && s->max_ttl_ms > 0 ? s->max_ttl_ms : p->defaults.max_ttl_ms;
}

const char *tt_access_name(tt_access a)
{
    switch (a) {
    case TT_ACCESS_READ: return "read";
    case TT_ACCESS_WRITE: return "write";
    case TT_ACCESS_ADMIN: return "admin";
    }
    return "?";
}
