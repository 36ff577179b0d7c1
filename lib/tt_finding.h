/* tt_finding.h - analyzer findings: kinds, severities, deterministic ids and
 * their JSON form. The kind names are part of the interface (docs/findings.md). */
#ifndef TT_FINDING_H
#define TT_FINDING_H

#include <stddef.h>
#include <stdint.h>

#include "tt_buf.h"

typedef enum {
    /* lingering access */
    TT_FK_USED_AFTER_REVOKE = 0,
    TT_FK_USED_AFTER_EXPIRY,
    TT_FK_OUTLIVED_INCIDENT,
    TT_FK_TTL_OVER_POLICY,
    TT_FK_REFRESH_NOT_ALLOWED,
    TT_FK_IDLE_TOKEN,
    /* scope drift */
    TT_FK_UNKNOWN_SCOPE,
    TT_FK_SCOPE_OUTSIDE_BASELINE,
    TT_FK_NEW_SCOPE_FOR_CLIENT,
    TT_FK_WRITE_OUTSIDE_INCIDENT,
    TT_FK_UNUSED_SCOPES,
    TT_FK__COUNT
} tt_finding_kind;

typedef enum {
    TT_SEV_CRITICAL = 0,
    TT_SEV_HIGH,
    TT_SEV_MEDIUM,
    TT_SEV_LOW,
    TT_SEV__COUNT
} tt_severity;

#define TT_FINDING_MAX_SCOPES 256 /* = TT_EV_MAX_LIST */
#define TT_FINDING_MAX_EVIDENCE 4
#define TT_FINDING_MAX_MESSAGE 512
#define TT_FINDING_ID_BUFSZ 40 /* "f-" + 32 hex + NUL */

/* One finding. Strings are borrowed from the producer for the duration of the
 * callback that hands the finding over; copy what you keep. Absent fields are NULL. */
typedef struct tt_finding {
    char id[TT_FINDING_ID_BUFSZ];
    tt_finding_kind kind;
    tt_severity severity;
    int64_t time_ms; /* event time at which the finding became true */
    const char *token_id;
    const char *client_id;
    const char *subject;
    const char *incident_id;
    const char *scopes[TT_FINDING_MAX_SCOPES];
    size_t n_scopes;
    const char *evidence[TT_FINDING_MAX_EVIDENCE]; /* "source/id" of the proving events */
    size_t n_evidence;
    char message[TT_FINDING_MAX_MESSAGE];
} tt_finding;

const char *tt_finding_kind_name(tt_finding_kind k); /* "used_after_revoke" */
int tt_finding_kind_from_name(const char *name);     /* the kind, or -1 */
tt_severity tt_finding_kind_severity(tt_finding_kind k);
const char *tt_severity_name(tt_severity s); /* "critical" ... "low" */

/* Set f->id = "f-" + the first 32 hex digits of SHA-256 over kind, token_id
 * (or incident_id when there is no token), client_id and each evidence entry,
 * each followed by a NUL byte (the last one too; an absent field is the NUL
 * alone). Nothing else (time, scopes, message) feeds it. Equal inputs give
 * equal ids, so re-processing cannot add a finding twice. */
void tt_finding_make_id(tt_finding *f);

/* Append the finding as one compact JSON object (keys: id, kind, severity,
 * time, token_id, client_id, subject, incident_id, scopes, evidence, message;
 * absent strings are null). Returns 0 or -1 (out over its maximum). */
int tt_finding_to_json(const tt_finding *f, tt_buf *out);

#endif
