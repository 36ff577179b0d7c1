/* tt_scenario.h - a fire-drill scenario: which authorization server and
 * grant, which resource servers, how access ends, the load and the
 * thresholds. Loaded from YAML (libyaml); see docs/drills.md. */
#ifndef TT_SCENARIO_H
#define TT_SCENARIO_H

#include <stddef.h>
#include <stdint.h>

#include "tt_threshold.h"

#define TT_SC_MAX_RS 32           /* resource servers per scenario */
#define TT_SC_MAX_THRESHOLDS 64   /* threshold expressions in all */
#define TT_SC_MAX_ARGV 16         /* approval command words */
#define TT_SC_MAX_SERVICES 32
#define TT_SC_MAX_SCALAR 4096     /* any one value after ${VAR} expansion */
#define TT_SC_MAX_SECRET 4096     /* a client secret or bearer token from a file */
#define TT_SC_MAX_ENGINEERS 100000
#define TT_SC_MAX_ITERATIONS 1000000
#define TT_SC_MAX_NAME 63         /* resource server names (also series tags) */

typedef enum { TT_AUTH_BASIC = 0, TT_AUTH_POST, TT_AUTH_NONE } tt_client_auth;
typedef enum { TT_GRANT_CLIENT_CREDENTIALS = 0, TT_GRANT_DEVICE_CODE, TT_GRANT_TOKEN_EXCHANGE } tt_grant;
typedef enum { TT_END_REVOKE = 0, TT_END_RESOLVE, TT_END_EXPIRE } tt_end;

/* An OAuth client. The secret is read at load time from an environment
 * variable or a file, never from the scenario itself; it is wiped on free. */
typedef struct tt_sc_client {
    char *id;
    tt_client_auth auth;
    char *secret;       /* NULL for auth none */
    int set;            /* 1 when the scenario configured this client */
} tt_sc_client;

typedef struct tt_sc_rs {
    char *name;
    char *url;
    char *method;       /* default "GET" */
    long accept_status; /* default 200 */
} tt_sc_rs;

typedef struct tt_sc_threshold {
    char *metric;       /* "revocation_propagation_ms" */
    char *tag;          /* "rs-nocache", or NULL for every tag */
    char *text;         /* "max < 1000" as written */
    tt_threshold_expr expr;
    int line;
} tt_sc_threshold;

typedef struct tt_scenario {
    char *path;
    char *name;
    char *description;

    /* authorization server; explicit endpoints win over discovery */
    char *issuer;
    char *token_endpoint;
    char *introspection_endpoint;
    char *revocation_endpoint;
    char *device_authorization_endpoint;

    tt_sc_client client;     /* gets the token */
    tt_sc_client admin;      /* introspects and revokes when set, else `client` */

    tt_grant grant;
    char *scope;             /* requested, space separated; may be NULL */
    char *resource;          /* RFC 8707 resource indicator; may be NULL */
    char *audience;          /* RFC 8693 audience; may be NULL */
    char *approval_url;      /* device_code: POST user_code=... here */
    char *approval_token;    /* ... with Authorization: Bearer (from a file/env) */
    char *approval_argv[TT_SC_MAX_ARGV + 1]; /* or exec this, user code last */
    size_t approval_argc;
    tt_sc_client subject;    /* token_exchange: who gets the subject token */
    char *subject_scope;

    tt_sc_rs rs[TT_SC_MAX_RS];
    size_t n_rs;

    tt_end end;

    int64_t engineers, iterations;
    int64_t probe_interval_ms, probe_timeout_ms, request_timeout_ms, ramp_ms;

    char *incident_title;
    char *incident_severity;
    char *services[TT_SC_MAX_SERVICES];
    size_t n_services;

    char *collector_url;     /* NULL = no events */
    char *collector_token;   /* bearer for the collector, from a file/env */

    tt_sc_threshold thr[TT_SC_MAX_THRESHOLDS];
    size_t n_thr;
} tt_scenario;

/* Load and check a scenario file (one YAML document; durations need a unit).
 * ${NAME} in any value is replaced by the environment variable NAME (an unset
 * variable is an error). Returns a complete scenario or NULL with err =
 * "file:line: what is wrong", the line of the key at fault (the later one when
 * two keys clash). */
tt_scenario *tt_scenario_load(const char *path, char *err, size_t errlen);

/* Free, wiping secrets. Accepts NULL. */
void tt_scenario_free(tt_scenario *sc);

const char *tt_grant_name(tt_grant g);       /* "client_credentials" ... */
const char *tt_grant_type_uri(tt_grant g);   /* the grant_type parameter */
const char *tt_end_name(tt_end e);           /* "revoke" ... */

/* The metrics a threshold may name (NULL-terminated). */
extern const char *const tt_drill_metrics[];

#endif
