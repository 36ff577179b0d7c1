/* tt_log.h - the one log module: levels, source file and line, stderr. */
#ifndef TT_LOG_H
#define TT_LOG_H

#include <stdarg.h>

typedef enum { TT_LOG_ERROR = 0, TT_LOG_WARN, TT_LOG_INFO, TT_LOG_DEBUG } tt_log_level;

/* Set the threshold; messages above it are dropped. Not thread-safe against
 * concurrent tt_log calls: call it before starting threads. */
void tt_log_set_level(tt_log_level lvl);
tt_log_level tt_log_get_level(void);

/* Parse "error", "warn", "info" or "debug". Returns 0 or -1. */
int tt_log_level_parse(const char *s, tt_log_level *out);

/* Write one line "TIME LEVEL file:line: message" to stderr. Thread-safe: one
 * write(2) per line. Never pass secrets: log fingerprints, not tokens. */
void tt_log_write(tt_log_level lvl, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void tt_log_vwrite(tt_log_level lvl, const char *file, int line, const char *fmt, va_list ap);

#define tt_error(...) tt_log_write(TT_LOG_ERROR, __FILE__, __LINE__, __VA_ARGS__)
#define tt_warn(...) tt_log_write(TT_LOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define tt_info(...) tt_log_write(TT_LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define tt_debug(...) tt_log_write(TT_LOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__)

#endif
