/* tt_policy.h - the analyzer policy: scope inventory, per-client baselines
 * and defaults, loaded from YAML (libyaml). See docs/policy.md. */
#ifndef TT_POLICY_H
#define TT_POLICY_H

#include <stddef.h>
#include <stdint.h>

/* Limits of a policy file; going over is an error naming file:line. */
#define TT_POLICY_MAX_SCOPES 4096
#define TT_POLICY_MAX_CLIENTS 4096
#define TT_POLICY_MAX_ALLOWED 256 /* allowed_scopes of one client */
#define TT_POLICY_MAX_BYTES (4 << 20)

/* How much a scope can do; ordered from least to most sensitive. */
typedef enum { TT_ACCESS_READ = 0, TT_ACCESS_WRITE, TT_ACCESS_ADMIN } tt_access;

typedef struct tt_policy_scope {
    char *name;
    char *service;     /* the service the scope grants access to; never NULL */
    char *access_text; /* as written; parsed into `access` */
    tt_access access;
    int64_t max_ttl_ms; /* 0 = use defaults.max_ttl */
} tt_policy_scope;

typedef struct tt_policy_client {
    char *name;
    char **allowed; /* allowed_scopes, sorted (strcmp) */
    size_t n_allowed;
    int refresh_tokens; /* 1 allowed, 0 forbidden, -1 = use defaults.refresh_tokens */
} tt_policy_client;

typedef struct tt_policy_defaults {
    int64_t max_ttl_ms;
    int refresh_tokens;
    int64_t revocation_grace_ms;
    int64_t incident_grace_ms;
    int64_t idle_after_ms; /* 0 disables idle_token */
    int64_t retention_ms;  /* how long an ended token is remembered */
} tt_policy_defaults;

typedef struct tt_policy {
    tt_policy_scope *scopes; /* sorted by name */
    size_t n_scopes;
    tt_policy_client *clients; /* sorted by name */
    size_t n_clients;
    tt_policy_defaults defaults;
} tt_policy;

/* Load a policy file (one YAML document: a second one is an error). Returns a
 * policy the caller frees with tt_policy_free, or NULL with err =
 * "<file>:<line>: <problem>", the line of the offending value (nothing is left
 * allocated). */
tt_policy *tt_policy_load(const char *path, char *err, size_t errlen);

/* Same, from text in memory; `name` stands for the file name in errors. */
tt_policy *tt_policy_parse(const char *text, size_t len, const char *name, char *err,
                           size_t errlen);

/* A policy with only the defaults (no scopes, no clients). NULL when out of memory. */
tt_policy *tt_policy_new_default(void);

/* Accepts NULL. */
void tt_policy_free(tt_policy *p);

/* Lookups by name; NULL when absent. Binary search, O(log n). */
const tt_policy_scope *tt_policy_scope_find(const tt_policy *p, const char *name);
const tt_policy_client *tt_policy_client_find(const tt_policy *p, const char *name);

/* 1 when the client's allowed_scopes holds `scope`. */
int tt_policy_client_allows(const tt_policy_client *c, const char *scope);

/* 1 when `client` (NULL or unknown = the defaults) may hold refresh tokens. */
int tt_policy_refresh_allowed(const tt_policy *p, const char *client);

/* The max_ttl of one scope: its own, else defaults.max_ttl (also for unknown scopes). */
int64_t tt_policy_scope_ttl(const tt_policy *p, const char *scope);

/* "read", "write", "admin". */
const char *tt_access_name(tt_access a);

#endif
