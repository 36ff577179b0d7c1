/* drill_bench_server.c - a tiny single-threaded HTTP/1.1 server (epoll,
 * keep-alive) for tests/bench/drill_bench.sh. It issues tokens, accepts them
 * until an exactly known CLOCK_MONOTONIC instant after their revocation, then
 * refuses them, and records that instant and when it received the first
 * refused request, so the harness's measurement error is measured - true.
 *
 * "Received" is the kernel's arrival stamp of the request (SO_TIMESTAMPNS,
 * taken on loopback while the sender is still in send()), mapped to
 * CLOCK_MONOTONIC, and the accept/refuse decision is made on that stamp too: a
 * server that is scheduled late (this one shares its core with whatever else
 * runs) neither shifts the truth nor adds to the harness's measured error.
 *
 *   POST /token       -> {"access_token":"tokN","expires_in":300,"scope":"a"}
 *   POST /revoke      token=tokN: switch_ns = arrival + delay(N), 200
 *   GET  /rs          Authorization: Bearer tokN: 200 if it arrived before
 *                     switch_ns, else 401
 *   GET  /dump        per revoked token: "N switch_ns first_refused_rx_ns
 *                     last_accepted_rx_ns revoke_reply_ns last_accepted_reply_ns"
 *                     (0: none; a reply instant is taken after its write())
 *
 * SPIN_US (default 0): keep polling without sleeping for that long after the
 * last request. On loopback the drill's send() runs this server's TCP input
 * and, when the server sleeps, its wakeup (an IPI to the other core): spinning
 * takes that wakeup off the drill's CPU (a resource server on another host
 * puts neither on it). But a spinning server uses up its CPU share, so where
 * other processes share its core it is preempted and answers late: use it on
 * a quiet machine only.
 *
 * Usage: drill_bench_server PORT_FILE [DELAY_MIN_MS DELAY_SPAN_MS [SPIN_US]] */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_TOKENS 2000000
#define BUF_MAX 16384
#define MAX_FDS 65536

typedef struct conn {
    char in[BUF_MAX];
    size_t len;
} conn;

static int64_t *switch_ns, *refused_rx_ns, *accepted_rx_ns, *accepted_tx_ns, *revoke_tx_ns;
static long n_tokens;
static conn *conns[MAX_FDS];
static int64_t delay_min_ms = 20, delay_span_ms = 100, spin_ns = 0;

static int64_t ts_ns(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static int64_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts_ns(&ts);
}

/* A CLOCK_REALTIME kernel stamp as CLOCK_MONOTONIC: the offset is read now,
 * so only clock slewing during the last few milliseconds could distort it. */
static int64_t real_to_mono(int64_t real_ns)
{
    struct timespec m1, r, m2;
    clock_gettime(CLOCK_MONOTONIC, &m1);
    clock_gettime(CLOCK_REALTIME, &r);
    clock_gettime(CLOCK_MONOTONIC, &m2);
    return real_ns - ts_ns(&r) + (ts_ns(&m1) + ts_ns(&m2)) / 2;
}

static void reply(int fd, int status, const char *body)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     status, status == 200 ? "OK" : status == 401 ? "Unauthorized" : "Not Found",
                     strlen(body), body);
    ssize_t w = write(fd, buf, (size_t)n);
    (void)w;
}

static long token_num(const char *p)
{
    /* "tok" followed by a digit: skips the "token=" parameter name */
    for (const char *t = strstr(p, "tok"); t; t = strstr(t + 3, "tok")) {
        if (t[3] >= '0' && t[3] <= '9') {
            return strtol(t + 3, NULL, 10);
        }
    }
    return -1;
}

static void dump(int fd)
{
    size_t cap = (size_t)n_tokens * 136 + 64, len = 0;
    char *body = malloc(cap);
    for (long i = 0; i < n_tokens; i++) {
        if (switch_ns[i]) {
            len += (size_t)snprintf(body + len, cap - len, "%ld %lld %lld %lld %lld %lld\n", i,
                                    (long long)switch_ns[i], (long long)refused_rx_ns[i],
                                    (long long)accepted_rx_ns[i], (long long)revoke_tx_ns[i],
                                    (long long)accepted_tx_ns[i]);
        }
    }
    char hdr[128];
    int n = snprintf(hdr, sizeof(hdr), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", len);
    ssize_t w = write(fd, hdr, (size_t)n);
    size_t off = 0;
    while (off < len) {
        w = write(fd, body + off, len - off);
        if (w <= 0) {
            break;
        }
        off += (size_t)w;
    }
    free(body);
}

/* Handle every complete request in c->in; rx = arrival of the last bytes
 * read (one request at a time on a keep-alive connection). Returns -1 to close. */
static int handle(int fd, conn *c, int64_t rx)
{
    for (;;) {
        c->in[c->len] = '\0';
        char *end = strstr(c->in, "\r\n\r\n");
        if (end == NULL) {
            return c->len >= BUF_MAX - 1 ? -1 : 0;
        }
        size_t hlen = (size_t)(end + 4 - c->in);
        size_t blen = 0;
        char *cl = strcasestr(c->in, "Content-Length:");
        if (cl && cl < end) {
            blen = (size_t)strtoul(cl + 15, NULL, 10);
        }
        if (c->len < hlen + blen) {
            return 0;
        }
        int64_t now = rx;
        char save = c->in[hlen + blen];
        c->in[hlen + blen] = '\0';
        if (strncmp(c->in, "POST /token", 11) == 0) {
            char body[160];
            long n = n_tokens < MAX_TOKENS ? n_tokens++ : MAX_TOKENS - 1;
            snprintf(body, sizeof(body),
                     "{\"access_token\":\"tok%ld\",\"token_type\":\"Bearer\",\"expires_in\":300,"
                     "\"scope\":\"a\"}", n);
            reply(fd, 200, body);
        } else if (strncmp(c->in, "POST /revoke", 12) == 0) {
            long n = token_num(c->in + hlen);
            if (n >= 0 && n < n_tokens && switch_ns[n] == 0) {
                /* a spread of delays so probe phases vary */
                switch_ns[n] = now + (delay_min_ms + (n * 37) % (delay_span_ms + 1)) * 1000000;
                reply(fd, 200, "{}");
                revoke_tx_ns[n] = mono(); /* the end of access as the harness sees it */
            } else {
                reply(fd, 200, "{}");
            }
        } else if (strncmp(c->in, "GET /rs", 7) == 0) {
            long n = token_num(c->in);
            int ok = n >= 0 && n < n_tokens && (switch_ns[n] == 0 || now < switch_ns[n]);
            if (!ok && n >= 0 && n < n_tokens && refused_rx_ns[n] == 0) {
                refused_rx_ns[n] = now;
            }
            reply(fd, ok ? 200 : 401, ok ? "{\"ok\":true}" : "{\"error\":\"invalid_token\"}");
            if (ok && n >= 0 && n < n_tokens && switch_ns[n] != 0) {
                accepted_rx_ns[n] = now; /* the last one accepted after the revocation */
                accepted_tx_ns[n] = mono(); /* and when it was answered */
            }
        } else if (strncmp(c->in, "GET /dump", 9) == 0) {
            dump(fd);
        } else {
            reply(fd, 404, "{}");
        }
        c->in[hlen + blen] = save;
        memmove(c->in, c->in + hlen + blen, c->len - hlen - blen);
        c->len -= hlen + blen;
    }
}

/* Ask for a 300 us scheduler slice (Linux >= 6.12, EEVDF sched_runtime), as
 * the drill does: a wakeup then preempts a CPU-bound neighbour on this core
 * instead of waiting out its slice, so other processes on the server's core
 * delay the replies (srvlag) less. Older kernels refuse it; nothing changes. */
static void short_slice(void)
{
#ifdef SYS_sched_setattr
    struct {
        uint32_t size, policy;
        uint64_t flags;
        int32_t nice;
        uint32_t priority;
        uint64_t runtime, deadline, period;
    } attr;
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.runtime = 300 * 1000;
    (void)syscall(SYS_sched_setattr, 0, &attr, 0);
#endif
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT_FILE [DELAY_MIN_MS DELAY_SPAN_MS [SPIN_US]]\n", argv[0]);
        return 2;
    }
    if (argc >= 4) {
        delay_min_ms = strtoll(argv[2], NULL, 10);
        delay_span_ms = strtoll(argv[3], NULL, 10);
    }
    if (argc >= 5) {
        spin_ns = strtoll(argv[4], NULL, 10) * 1000;
    }
    short_slice();
    switch_ns = calloc(MAX_TOKENS, sizeof(*switch_ns));
    refused_rx_ns = calloc(MAX_TOKENS, sizeof(*refused_rx_ns));
    accepted_rx_ns = calloc(MAX_TOKENS, sizeof(*accepted_rx_ns));
    accepted_tx_ns = calloc(MAX_TOKENS, sizeof(*accepted_tx_ns));
    revoke_tx_ns = calloc(MAX_TOKENS, sizeof(*revoke_tx_ns));
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 4096) != 0) {
        perror("bind/listen");
        return 1;
    }
    getsockname(ls, (struct sockaddr *)&a, &al);
    FILE *pf = fopen(argv[1], "w");
    fprintf(pf, "%d\n", ntohs(a.sin_port));
    fclose(pf);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event evs[512];
    int64_t last_event = 0;
    for (;;) {
        int n = spin_ns > 0 ? epoll_wait(ep, evs, 512, 0) : 0;
        if (n == 0 && (spin_ns == 0 || mono() - last_event >= spin_ns)) {
            n = epoll_wait(ep, evs, 512, -1);
        }
        if (n > 0) {
            last_event = mono();
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (c >= MAX_FDS) {
                        close(c);
                        continue;
                    }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    setsockopt(c, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
                    conns[c] = calloc(1, sizeof(conn));
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
                continue;
            }
            conn *c = conns[fd];
            struct iovec iov = {.iov_base = c->in + c->len, .iov_len = BUF_MAX - 1 - c->len};
            union {
                char buf[CMSG_SPACE(sizeof(struct timespec))];
                struct cmsghdr align;
            } cm;
            struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
                                .msg_controllen = sizeof(cm.buf)};
            ssize_t r = recvmsg(fd, &mh, 0);
            int64_t rx = 0;
            for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); r > 0 && h; h = CMSG_NXTHDR(&mh, h)) {
                if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPNS) {
                    struct timespec ts;
                    memcpy(&ts, CMSG_DATA(h), sizeof(ts));
                    rx = real_to_mono(ts_ns(&ts));
                }
            }
            if (rx == 0) {
                rx = mono(); /* no kernel stamp: the read is the next best */
            }
            if (r <= 0 || (c->len += (size_t)r, handle(fd, c, rx) != 0)) {
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                close(fd);
                free(c);
                conns[fd] = NULL;
            }
        }
    }
}
