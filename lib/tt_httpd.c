/* tt_httpd.c - /metrics and /healthz on libmicrohttpd. */
#include "tt_httpd.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "tt_log.h"

#define HOST_MAX 256

struct tt_httpd {
    struct MHD_Daemon *mhd;
    tt_httpd_render_fn render;
    void *ctx;
    uint16_t port;
};

static enum MHD_Result answer(struct MHD_Connection *con, unsigned int status, const char *ctype,
                              const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    enum MHD_Result ret = MHD_queue_response(con, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    (void)con_cls;
    tt_httpd *h = cls;
    if (*upload_size != 0) {
        *upload_size = 0; /* we take no bodies; drop it */
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        return answer(con, 405, "text/plain", "method not allowed\n", 19);
    }
    if (strcmp(url, "/healthz") == 0) {
        return answer(con, 200, "text/plain", "ok\n", 3);
    }
    if (strcmp(url, "/metrics") == 0) {
        tt_buf b;
        tt_buf_init(&b, TT_HTTPD_MAX_PAGE);
        h->render(h->ctx, &b);
        enum MHD_Result r =
            answer(con, 200, "text/plain; version=0.0.4", b.data ? b.data : "", b.len);
        tt_buf_free(&b);
        return r;
    }
    return answer(con, 404, "text/plain", "not found\n", 10);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    tt_log_vwrite(TT_LOG_WARN, "libmicrohttpd", 0, fmt, ap);
}

int tt_httpd_resolve_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *sslen,
                            char *err, size_t errlen)
{
    char host[HOST_MAX];
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || colon == listen || colon[1] == '\0') {
        snprintf(err, errlen, "listen: '%.100s' is not HOST:PORT", listen);
        return -1;
    }
    size_t hl = (size_t)(colon - listen);
    if (listen[0] == '[' && hl >= 2 && listen[hl - 1] == ']') {
        listen++;
        hl -= 2;
    }
    if (hl >= sizeof(host)) {
        snprintf(err, errlen, "listen: host name too long");
        return -1;
    }
    memcpy(host, listen, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535) {
        snprintf(err, errlen, "listen: port '%.20s' is not 0..65535", colon + 1);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, errlen, "listen: cannot resolve '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

tt_httpd *tt_httpd_start(const char *listen, tt_httpd_render_fn render, void *ctx, char *err,
                         size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (tt_httpd_resolve_listen(listen, &ss, &sslen, err, errlen) != 0) {
        return NULL;
    }
    tt_httpd *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->render = render;
    h->ctx = ctx;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }
    /* The logger first: libmicrohttpd warns on stderr when it is not. */
    h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
                              mhd_log, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                              MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (h->mhd == NULL) {
        snprintf(err, errlen, "listen: cannot serve on %.200s (address in use?)", listen);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : 0;
    return h;
}

uint16_t tt_httpd_port(const tt_httpd *h)
{
    return h->port;
}

void tt_httpd_stop(tt_httpd *h)
{
    if (h == NULL) {
        return;
    }
    MHD_stop_daemon(h->mhd);
    free(h);
}

int tt_httpd_write_port_file(const char *path, unsigned port)
{
    char tmp[4096];
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        return -1;
    }
    FILE *fp = fopen(tmp, "w");
    if (fp == NULL) {
        return -1;
    }
    fprintf(fp, "%u\n", port);
    if (fclose(fp) != 0) {
        unlink(tmp);
        return -1;
    }
    return rename(tmp, path);
}
