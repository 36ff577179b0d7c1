/* tt_redact.h - excerpts of untrusted text (an HTTP response body) that are
 * safe to put in an error message, a log line or a report: no raw token or
 * secret, no control characters. */
#ifndef TT_REDACT_H
#define TT_REDACT_H

#include <stddef.h>

#define TT_REDACTED "<redacted>"

/* Copy at most max_chars characters of body[0..len) into out (always
 * NUL-terminated; "..." appended when the body is longer), with:
 *  - the value after every secret-bearing name (access_token, refresh_token,
 *    id_token, device_code, subject_token, actor_token, client_secret,
 *    assertion, password, token), as JSON ("access_token": "v"), form
 *    (access_token=v) or header-like (token: v) text, replaced by TT_REDACTED,
 *    whether or not the body is well-formed (a truncated JSON answer too);
 *  - the credential after an authorization scheme (an echoed "Authorization:
 *    Basic dXNlcjpwYXNz" or "Bearer abc") replaced the same way;
 *  - every occurrence of one of the known secrets (NULL-terminated list;
 *    NULL and strings shorter than 4 bytes are skipped) replaced by
 *    TT_REDACTED, also where the excerpt's cut falls inside it;
 *  - other bytes outside printable ASCII shown as ' '.
 * The work is done on the whole body before the cut, so a secret that
 * straddles it is not half shown. */
void tt_redact_excerpt(const char *body, size_t len, const char *const *secrets, size_t max_chars,
                       char *out, size_t outlen);

#endif
