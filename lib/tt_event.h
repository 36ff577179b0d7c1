/* tt_event.h - the token-event model: CloudEvents 1.0 (structured JSON)
 * parsing, validation and normalisation. See docs/event-schema.md. */
#ifndef TT_EVENT_H
#define TT_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef enum {
    TT_EV_UNKNOWN = 0,
    TT_EV_TOKEN_ISSUED,
    TT_EV_TOKEN_USED,
    TT_EV_TOKEN_REVOKED,
    TT_EV_INCIDENT_OPENED,
    TT_EV_INCIDENT_RESOLVED,
    TT_EV__COUNT
} tt_event_type;

/* Why an event was rejected; these names are metric label values. */
typedef enum {
    TT_REJ_PARSE = 0,      /* "parse_error": not JSON, invalid UTF-8, too deep */
    TT_REJ_NOT_OBJECT,     /* "not_object": the event is not a JSON object */
    TT_REJ_MISSING,        /* "missing_field" */
    TT_REJ_WRONG_TYPE,     /* "wrong_type": e.g. a number where a string belongs */
    TT_REJ_BAD_VALUE,      /* "bad_value": right type, unacceptable value */
    TT_REJ_TIMESTAMP,      /* "bad_timestamp" */
    TT_REJ_TOO_LONG,       /* "too_long": a string or array over its limit */
    TT_REJ_UNKNOWN_FIELD,  /* "unknown_field" */
    TT_REJ_UNKNOWN_TYPE,   /* "unknown_type": `type` is not one of ours */
    TT_REJ__COUNT
} tt_reject_reason;

/* Field limits (bytes for strings, entries for arrays). */
#define TT_EV_MAX_ID 256        /* id, token_id, incident_id, client_id ... */
#define TT_EV_MAX_SOURCE 1024
#define TT_EV_MAX_TEXT 1024     /* title, reason, actor, resource, subject */
#define TT_EV_MAX_PATH 4096
#define TT_EV_MAX_TOKEN 16384   /* raw token in data.token */
#define TT_EV_MAX_LIST 256      /* scopes, audience, services */
#define TT_EV_MAX_SCOPE 256     /* one scope / audience / service */
#define TT_EV_MAX_EXTENSIONS 16

/* "sha256:" + 64 hex + NUL */
#define TT_FINGERPRINT_BUFSZ 72

/* A validated, normalised event. `json` is the canonical CloudEvent; the
 * string pointers borrow from it and live as long as it does. */
typedef struct tt_event {
    json_t *json;             /* owned reference */
    tt_event_type type;
    const char *id;
    const char *source;
    const char *token_id;     /* NULL for incident events */
    const char *incident_id;  /* NULL when the event names no incident */
    int64_t time_ms;          /* the CloudEvent `time`, epoch ms UTC */
} tt_event;

/* A rejection: which field, what is wrong. `msg` never contains a value from
 * `data` (it could be a secret); `id` is the event's id when one was readable. */
typedef struct tt_event_error {
    tt_reject_reason reason;
    tt_event_type type;       /* TT_EV_UNKNOWN when `type` was unreadable */
    char id[TT_EV_MAX_ID + 1];
    char msg[256];            /* e.g. "data.expires_at: not a timestamp" */
} tt_event_error;

const char *tt_event_type_name(tt_event_type t);        /* "token.issued"; "unknown" */
tt_event_type tt_event_type_from_name(const char *name); /* TT_EV_UNKNOWN if none */
const char *tt_reject_reason_name(tt_reject_reason r);  /* "missing_field" ... */

/* Validate and normalise one event.
 * `in` is borrowed and not modified, except that a raw `data.token` string's
 * bytes are wiped (OPENSSL_cleanse) after fingerprinting, so the caller's copy
 * no longer holds the secret.
 * On success returns 0 and fills *ev (ev->json is a new object built from
 * known fields only, in canonical order; the caller frees it with
 * tt_event_clear). On failure returns -1, fills *err, and *ev is zeroed. */
int tt_event_from_json(json_t *in, tt_event *ev, tt_event_error *err);

/* Parse `len` bytes of JSON holding one event, then tt_event_from_json.
 * Duplicate object keys are rejected. Same contract as above. */
int tt_event_parse(const char *buf, size_t len, tt_event *ev, tt_event_error *err);

/* Compact JSON of the normalised event; the caller frees with free().
 * Returns NULL on allocation failure. */
char *tt_event_dump(const tt_event *ev);

/* Release ev->json and zero *ev. Accepts a zeroed or NULL event. */
void tt_event_clear(tt_event *ev);

/* out = "sha256:" + lowercase hex SHA-256 of token[0..len). */
void tt_fingerprint(const char *token, size_t len, char out[TT_FINGERPRINT_BUFSZ]);

/* 1 when s is "sha256:" followed by exactly 64 lowercase hex digits. */
int tt_is_fingerprint(const char *s);

#endif
