/* tt_log.c - leveled logging to stderr, one write(2) per line. */
#include "tt_log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tt_time.h"

static tt_log_level log_level = TT_LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void tt_log_set_level(tt_log_level lvl)
{
    log_level = lvl;
}

tt_log_level tt_log_get_level(void)
{
    return log_level;
}

int tt_log_level_parse(const char *s, tt_log_level *out)
{
    for (int i = 0; i <= TT_LOG_DEBUG; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (tt_log_level)i;
            return 0;
        }
    }
    return -1;
}

void tt_log_vwrite(tt_log_level lvl, const char *file, int line, const char *fmt, va_list ap)
{
    if (lvl > log_level) {
        return;
    }
    char ts[TT_TIME_BUFSZ];
    tt_time_format(tt_time_now_ms(), ts);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;

    /* Build the whole line first so concurrent threads never interleave. */
    char buf[2048];
    int n = snprintf(buf, sizeof(buf), "%s %-5s %s:%d: ", ts, level_names[lvl], base, line);
    if (n < 0) {
        return;
    }
    size_t len = (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
    int m = vsnprintf(buf + len, sizeof(buf) - len, fmt, ap);
    if (m > 0) {
        len += (size_t)m < sizeof(buf) - len ? (size_t)m : sizeof(buf) - len - 1;
    }
    /* Drop a trailing newline from callers (libmicrohttpd adds one). */
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) {
        len--;
    }
    buf[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
}

void tt_log_write(tt_log_level lvl, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tt_log_vwrite(lvl, file, line, fmt, ap);
    va_end(ap);
}
