/* tt_time.h - timestamps: parse RFC 3339 / epoch, format RFC 3339 UTC ms, durations. */
#ifndef TT_TIME_H
#define TT_TIME_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Room for "YYYY-MM-DDTHH:MM:SS.mmmZ" plus NUL. */
#define TT_TIME_BUFSZ 32

/* Earliest and latest instants tokentrail accepts: 1970-01-01 .. 9999-12-31. */
#define TT_TIME_MIN_MS INT64_C(0)
#define TT_TIME_MAX_MS INT64_C(253402300799999)

/* Parse an RFC 3339 date-time ("2026-11-22T07:47:51.123+01:00", 'T'/'t'/' '
 * separator, 'Z'/'z' or numeric offset, any number of fraction digits,
 * truncated to milliseconds). Validates calendar ranges, including leap years.
 * A leap second (:60) is read as :59.999. Returns 0 and sets *out_ms (epoch
 * milliseconds, UTC) or -1 when `s` is not a valid timestamp or out of range. */
int tt_time_parse_rfc3339(const char *s, size_t len, int64_t *out_ms);

/* Read a timestamp from JSON: an RFC 3339 string, a string of digits (epoch),
 * or a JSON integer/real epoch. Epoch values of magnitude >= 1e11 are
 * milliseconds, smaller ones seconds (fractions allowed). Returns 0 on success,
 * -1 on failure with *why set to a static phrase such as "not a timestamp" or
 * "timestamp out of range". Never reads beyond the JSON value. */
int tt_time_from_json(const json_t *v, int64_t *out_ms, const char **why);

/* Format epoch ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (TT_TIME_BUFSZ bytes).
 * Values outside [TT_TIME_MIN_MS, TT_TIME_MAX_MS] are clamped. */
void tt_time_format(int64_t ms, char out[TT_TIME_BUFSZ]);

/* Room for the longest duration tt_time_format_duration writes
 * ("-2562047788015h12m55.808s") plus NUL. */
#define TT_DURATION_BUFSZ 32

/* Format a duration for people: units from the largest non-zero one down to
 * the smallest non-zero one, zeros in between kept, milliseconds as a
 * fraction of the seconds with trailing zeros dropped: "250ms", "5s",
 * "1m1.5s", "1h0m1s", "23h59m59s", "1h30m", "0s"; a negative one starts
 * with '-'. Hours are the largest unit ("48h", not "2d"). Every value fits,
 * INT64_MIN too. Returns out. Whole-millisecond values below a second and
 * whole-second values read back through tt_time_parse_duration; a fraction
 * ("1.5s") does not: this is for messages, not for config. */
char *tt_time_format_duration(int64_t ms, char out[TT_DURATION_BUFSZ]);

/* Wall clock now, epoch ms. */
int64_t tt_time_now_ms(void);

/* Monotonic clock, nanoseconds; for measuring intervals only. */
int64_t tt_time_mono_ns(void);

/* Parse a duration: "250ms", "5s", "15m", "1h", "2d", "1h30m", or a bare
 * integer meaning seconds. Returns 0 and sets *out_ms, or -1. */
int tt_time_parse_duration(const char *s, int64_t *out_ms);

/* Parse a command-line instant: RFC 3339, epoch seconds or milliseconds (as
 * tt_time_from_json reads them), or a duration meaning "that long before
 * now_ms" ("15m", "2h"; bare digits are an epoch, not a duration). Returns 0
 * and sets *out_ms, or -1. */
int tt_time_parse_when(const char *s, int64_t now_ms, int64_t *out_ms);

#endif
