/* tt_httpd.h - a small operations HTTP server (libmicrohttpd, one internal
 * thread): GET /metrics rendered by a callback, GET /healthz. For daemons
 * whose main job is not HTTP (the analyzer). */
#ifndef TT_HTTPD_H
#define TT_HTTPD_H

#include <stdint.h>
#include <sys/socket.h>

#include "tt_buf.h"

/* Largest /metrics page. */
#define TT_HTTPD_MAX_PAGE (4 << 20)

typedef struct tt_httpd tt_httpd;

/* Append the Prometheus text to out. Runs on the server thread: read only
 * state that is safe to read from there. */
typedef void (*tt_httpd_render_fn)(void *ctx, tt_buf *out);

/* Resolve a listen address "HOST:PORT" ("[::1]:PORT" for IPv6; port 0 =
 * any free port) into *ss / *sslen. Returns 0, or -1 with err naming the
 * problem ("listen: ... is not HOST:PORT", a bad port, an unknown host). */
int tt_httpd_resolve_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *sslen,
                            char *err, size_t errlen);

/* Listen on "HOST:PORT" (port 0 = any free port). NULL with err filled when
 * the address is bad or busy. */
tt_httpd *tt_httpd_start(const char *listen, tt_httpd_render_fn render, void *ctx, char *err,
                         size_t errlen);

/* The bound port. */
uint16_t tt_httpd_port(const tt_httpd *h);

/* Stop and free; accepts NULL. */
void tt_httpd_stop(tt_httpd *h);

/* Announce a bound port: write "PORT\n" to path through a temporary file and
 * rename(2), so a reader never sees a partial file. Returns 0 or -1. */
int tt_httpd_write_port_file(const char *path, unsigned port);

#endif
