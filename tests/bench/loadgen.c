/* loadgen.c - the collector benchmark's load generator: keep-alive HTTP/1.1
 * POSTs of unique ~450-byte token.used events (one per request, or NDJSON
 * batches) from one epoll thread, with latency percentiles.
 *
 * It replaces wrk + Lua, which rebuilt a 450 KB batch body with gsub for
 * every request and so used more than a core of the 2 the collector runs on.
 * Here each connection builds its request once; the only per-request work is
 * writing the request counter's fixed-width digits into each event's id in
 * place, so every event id stays unique (run id, counter, index). The counter
 * is shared by all connections, as it was in wrk -t1: ids arrive in nearly
 * ascending order. That matters: a per-connection counter makes 128
 * interleaved sequences, each a hot leaf of the UNIQUE(source, id) index, and
 * a single-event commit then writes ~6x the bytes (docs/performance.md).
 *
 * Built by tests/bench/run.sh with `cc -O2`; not part of bin/tokentrail.
 * Output: key=value lines on stdout (see usage). Exit status 0 only when
 * every response was a 2xx saying all of its events were accepted. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The event of tests/bench/common.lua; @ID@ is replaced by the id. */
#define EVENT_HEAD "{\"specversion\":\"1.0\",\"id\":\""
#define EVENT_TAIL                                                                                 \
    "\",\"source\":\"//rs/orders-api\",\"type\":\"token.used\","                                   \
    "\"time\":\"2026-11-22T07:47:51.123Z\",\"subject\":\"alice@example.com\",\"data\":{"           \
    "\"token_id\":\"sha256:0c4d9ad3f2b1c6e8a7d5b3f1e9c7a5b3d1f0e8c6a4b2d0f9e7c5a3b1d9f7e5c3\","    \
    "\"client_id\":\"oncall-cli\",\"subject\":\"alice@example.com\",\"scopes\":\"db:orders:read "  \
    "db:orders:write\",\"audience\":\"https://orders.example.com\",\"incident_id\":\"INC-2041\","  \
    "\"resource\":\"orders-api\",\"method\":\"GET\",\"path\":\"/v1/orders/12345/items?limit=50\"," \
    "\"status\":200,\"ip\":\"10.20.30.40\"}}"

#define COUNTER_DIGITS 9
#define MAX_EVENTS 100000 /* the collector's own per-request maximum */
#define MAX_CONNS 4096
#define RESP_MAX (1 << 20) /* a response larger than this is an error */
#define DRAIN_S 60         /* longest wait for in-flight responses at the end */

typedef struct conn {
    int fd;
    char *req; /* request line, headers and body */
    size_t req_len;
    size_t *ctr_at; /* offsets of each event's counter digits in req */
    size_t sent;
    int in_flight;
    int64_t t_sent; /* ns, when the request's first byte went out */
    char *resp;
    size_t resp_len;
} conn;

typedef struct opts {
    const char *host;
    int port;
    int conns;
    double duration;
    int events; /* per request; 1 = one application/json event */
    const char *path;
} opts;

typedef struct stats {
    uint64_t requests; /* completed, 2xx and all accepted */
    uint64_t bad;      /* non-2xx, or a 2xx not accepting every event */
    uint64_t sock_errors;
    uint32_t *lat_us; /* per completed request */
    size_t n_lat, cap_lat;
    char first_bad[256];
} stats;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen -p PORT [-H HOST] [-c CONNS] [-d SECONDS] [-n EVENTS_PER_REQ]\n"
                    "prints requests= seconds= rps= events= p50_ms= p90_ms= p99_ms= max_ms= "
                    "non2xx= sock_errors=\n");
    exit(2);
}

/* Builds c's request: `events` events with ids RRR-NNNNNNNNN-IIIII, where
 * RRR is the run id, NNN the request counter patched in per request and III
 * the event's index. 0 or -1 when out of memory. */
static int build_request(conn *c, const opts *o, const char *run)
{
    char id_prefix[64];
    snprintf(id_prefix, sizeof(id_prefix), "%s%s-", o->events > 1 ? "b" : "s", run);
    size_t ev_len =
        strlen(EVENT_HEAD) + strlen(id_prefix) + COUNTER_DIGITS + 6 + strlen(EVENT_TAIL);
    size_t body_len = (ev_len + 1) * (size_t)o->events;
    char head[512];
    int hn = snprintf(head, sizeof(head),
                      "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: %s\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      o->path, o->host, o->port,
                      o->events > 1 ? "application/x-ndjson" : "application/json", body_len);
    c->req_len = (size_t)hn + body_len;
    c->req = malloc(c->req_len + 1);
    c->ctr_at = calloc((size_t)o->events, sizeof(*c->ctr_at));
    c->resp = malloc(RESP_MAX);
    if (c->req == NULL || c->ctr_at == NULL || c->resp == NULL) {
        return -1;
    }
    memcpy(c->req, head, (size_t)hn);
    size_t at = (size_t)hn;
    for (int i = 0; i < o->events; i++) {
        int n = snprintf(c->req + at, c->req_len + 1 - at, "%s%s%0*d-%05d%s\n", EVENT_HEAD,
                         id_prefix, COUNTER_DIGITS, 0, i, EVENT_TAIL);
        c->ctr_at[i] = at + strlen(EVENT_HEAD) + strlen(id_prefix);
        at += (size_t)n;
    }
    if (at != c->req_len) {
        fprintf(stderr, "loadgen: request size mismatch\n");
        exit(2);
    }
    return 0;
}

static uint64_t counter; /* requests started, over all connections */

static void next_request(conn *c, int events)
{
    char digits[COUNTER_DIGITS + 1];
    counter++;
    snprintf(digits, sizeof(digits), "%0*llu", COUNTER_DIGITS, (unsigned long long)counter);
    for (int i = 0; i < events; i++) {
        memcpy(c->req + c->ctr_at[i], digits, COUNTER_DIGITS);
    }
    c->sent = 0;
    c->resp_len = 0;
    c->in_flight = 1;
    c->t_sent = now_ns();
}

static int open_conn(conn *c, const opts *o, int ep)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    if (inet_pton(AF_INET, o->host, &sa.sin_addr) != 1) {
        fprintf(stderr, "loadgen: bad IPv4 address %s\n", o->host);
        exit(2);
    }
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("loadgen: connect");
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void record(stats *st, int64_t ns)
{
    if (st->n_lat == st->cap_lat) {
        size_t cap = st->cap_lat ? st->cap_lat * 2 : 65536;
        uint32_t *l = realloc(st->lat_us, cap * sizeof(*l));
        if (l == NULL) {
            return;
        }
        st->lat_us = l;
        st->cap_lat = cap;
    }
    st->lat_us[st->n_lat++] = (uint32_t)(ns / 1000);
}

/* Whether c->resp holds a whole response; sets *status and *body. */
static int response_complete(conn *c, int *status, const char **body, size_t *body_len)
{
    c->resp[c->resp_len] = '\0';
    char *end = strstr(c->resp, "\r\n\r\n");
    if (end == NULL) {
        return 0;
    }
    size_t head_len = (size_t)(end - c->resp) + 4;
    size_t clen = 0;
    for (char *h = strstr(c->resp, "\r\n"); h && h < end; h = strstr(h + 2, "\r\n")) {
        if (strncasecmp(h + 2, "Content-Length:", 15) == 0) {
            clen = strtoul(h + 17, NULL, 10);
        }
    }
    if (c->resp_len < head_len + clen) {
        return 0;
    }
    *status = (int)strtol(c->resp + 9, NULL, 10);
    *body = c->resp + head_len;
    *body_len = clen;
    return 1;
}

/* Reads what is there; on a complete response checks and records it.
 * Returns 1 when a response completed, 0 when more is to come, -1 on error. */
static int on_readable(conn *c, const opts *o, stats *st)
{
    for (;;) {
        ssize_t n = read(c->fd, c->resp + c->resp_len, RESP_MAX - 1 - c->resp_len);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        if (n <= 0 || c->resp_len + (size_t)n >= RESP_MAX - 1) {
            return -1;
        }
        c->resp_len += (size_t)n;
    }
    int status;
    const char *body;
    size_t blen;
    if (!c->in_flight || !response_complete(c, &status, &body, &blen)) {
        return 0;
    }
    char want[48];
    snprintf(want, sizeof(want), "\"accepted\":%d,", o->events);
    c->in_flight = 0;
    if (status < 200 || status > 299 || strstr(body, want) == NULL) {
        if (st->bad++ == 0) {
            snprintf(st->first_bad, sizeof(st->first_bad), "%d %.*s", status,
                     (int)(blen > 200 ? 200 : blen), body);
        }
    } else {
        st->requests++;
        record(st, now_ns() - c->t_sent);
    }
    return 1;
}

/* Writes as much of the request as the socket takes. 0 or -1 on error. */
static int on_writable(conn *c)
{
    while (c->in_flight && c->sent < c->req_len) {
        ssize_t n = write(c->fd, c->req + c->sent, c->req_len - c->sent);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        }
        if (n < 0) {
            return -1;
        }
        c->sent += (size_t)n;
    }
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(const stats *st, double q)
{
    if (st->n_lat == 0) {
        return 0;
    }
    size_t i = (size_t)(q * (double)(st->n_lat - 1) + 0.5);
    return st->lat_us[i] / 1000.0;
}

int main(int argc, char **argv)
{
    opts o = {.host = "127.0.0.1", .conns = 8, .duration = 10, .events = 1, .path = "/v1/events"};
    int opt;
    while ((opt = getopt(argc, argv, "H:p:c:d:n:u:")) != -1) {
        switch (opt) {
        case 'H': o.host = optarg; break;
        case 'p': o.port = (int)strtol(optarg, NULL, 10); break;
        case 'c': o.conns = (int)strtol(optarg, NULL, 10); break;
        case 'd': o.duration = strtod(optarg, NULL); break;
        case 'n': o.events = (int)strtol(optarg, NULL, 10); break;
        case 'u': o.path = optarg; break;
        default: usage();
        }
    }
    if (o.port <= 0 || o.conns <= 0 || o.conns > MAX_CONNS || o.events <= 0 ||
        o.events > MAX_EVENTS || o.duration <= 0) {
        usage();
    }
    /* A run id unique across runs against the same database. */
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    uint64_t us = (uint64_t)rt.tv_sec * 1000000 + (uint64_t)rt.tv_nsec / 1000;
    char run[24];
    snprintf(run, sizeof(run), "%010llx", (unsigned long long)(us & 0xffffffffffULL));

    int ep = epoll_create1(0);
    conn *cs = calloc((size_t)o.conns, sizeof(*cs));
    stats st = {0};
    if (ep < 0 || cs == NULL) {
        perror("loadgen");
        return 2;
    }
    for (int i = 0; i < o.conns; i++) {
        if (build_request(&cs[i], &o, run) != 0 || open_conn(&cs[i], &o, ep) != 0) {
            fprintf(stderr, "loadgen: cannot set up connection %d\n", i);
            return 2;
        }
    }
    int64_t t0 = now_ns();
    int64_t stop_at = t0 + (int64_t)(o.duration * 1e9);
    int64_t t_last = t0;
    for (int i = 0; i < o.conns; i++) {
        next_request(&cs[i], o.events);
        on_writable(&cs[i]);
    }
    int active = o.conns;
    struct epoll_event evs[256];
    while (active > 0) {
        int64_t now = now_ns();
        if (now > stop_at + (int64_t)DRAIN_S * 1000000000) {
            fprintf(stderr, "loadgen: %d requests still unanswered after %ds\n", active, DRAIN_S);
            st.sock_errors += (uint64_t)active;
            break;
        }
        int n = epoll_wait(ep, evs, 256, 100);
        for (int k = 0; k < n; k++) {
            conn *c = evs[k].data.ptr;
            if (c->fd < 0) {
                continue;
            }
            int rc = 0;
            if (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                rc = on_readable(c, &o, &st);
            }
            if (rc == 1) {
                t_last = now_ns();
                if (t_last < stop_at) {
                    next_request(c, o.events);
                    rc = 0;
                } else {
                    close(c->fd);
                    c->fd = -1;
                    active--;
                    continue;
                }
            }
            if (rc == 0 && (evs[k].events & EPOLLOUT || c->sent == 0)) {
                rc = on_writable(c);
            }
            if (rc < 0) {
                st.sock_errors++;
                close(c->fd);
                c->fd = -1;
                active--;
            }
        }
    }
    double secs = (double)(t_last - t0) / 1e9;
    qsort(st.lat_us, st.n_lat, sizeof(*st.lat_us), cmp_u32);
    printf("requests=%llu\nseconds=%.2f\nrps=%.0f\nevents=%llu\n", (unsigned long long)st.requests,
           secs, (double)st.requests / secs, (unsigned long long)st.requests * (unsigned)o.events);
    printf("p50_ms=%.2f\np90_ms=%.2f\np99_ms=%.2f\nmax_ms=%.2f\n", pct_ms(&st, 0.5),
           pct_ms(&st, 0.9), pct_ms(&st, 0.99), pct_ms(&st, 1.0));
    printf("non2xx=%llu\nsock_errors=%llu\n", (unsigned long long)st.bad,
           (unsigned long long)st.sock_errors);
    if (st.bad) {
        fprintf(stderr, "loadgen: unexpected response: %s\n", st.first_bad);
    }
    for (int i = 0; i < o.conns; i++) {
        if (cs[i].fd >= 0) {
            close(cs[i].fd);
        }
        free(cs[i].req);
        free(cs[i].ctr_at);
        free(cs[i].resp);
    }
    free(cs);
    free(st.lat_us);
    close(ep);
    return st.bad || st.sock_errors ? 1 : 0;
}
