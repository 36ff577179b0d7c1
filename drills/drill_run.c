/* drill_run.c - the drill engine. Every simulated engineer is a state
 * machine; all HTTP goes through libcurl multi handles (one per group of
 * engineers, see shard) driven by one epoll loop with a timerfd, so hundreds
 * of engineers probing every 10 ms share one core. All times:
 * CLOCK_MONOTONIC. */
#include "drill_run.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "tt_buf.h"
#include "tt_event.h"
#include "tt_log.h"
#include "tt_redact.h"
#include "tt_time.h"

extern char **environ;

#define NS_PER_MS INT64_C(1000000)
/* Longest response excerpt quoted in an error message. */
#define ERR_BODY_EXCERPT 200
/* Every request's User-Agent: resource server logs can tell drill traffic. */
#define DRILL_USER_AGENT "tokentrail-drill/" TT_VERSION
/* Most epoll events handled per wakeup. */
#define LOOP_MAX_EVENTS 256
/* Largest access token kept (as the event schema's raw-token limit). */
#define MAX_TOKEN TT_EV_MAX_TOKEN
/* How often a command approval hook is checked for exit. */
#define APPROVAL_CHECK_MS 5
/* RFC 8628 3.5: slow_down adds 5 seconds to the polling interval. */
#define SLOW_DOWN_MS 5000

typedef struct drill drill;
typedef struct engineer engineer;
typedef struct request request;

/* Engineers per libcurl multi handle (TT_DRILL_ENGINEERS_PER_MULTI overrides).
 * libcurl 7.88 walks every connection of a multi handle's cache twice per
 * transfer (to pick an idle one, and in curl_multi_remove_handle): with one
 * multi handle for 1000 engineers those walks were a fifth of the drill's
 * CPU. Groups of this size keep them short; one epoll loop still drives all. */
#define ENGINEERS_PER_MULTI 32

/* One multi handle, its connection cache and its timer. */
typedef struct shard {
    drill *d;
    CURLM *multi;
    uint32_t idx;
    int64_t deadline_ns; /* curl's timer (CURLMOPT_TIMERFUNCTION); -1 none */
} shard;

typedef void (*request_done)(request *rq, long status, CURLcode cc);

struct request {
    CURL *easy;
    struct curl_slist *hdrs;
    tt_buf resp;
    tt_buf body;           /* request body; wiped: it may hold tokens or secrets */
    request_done done;
    drill *d;
    engineer *eng;         /* NULL for run-level requests (discovery, events) */
    int rs;                /* resource server index for uses and probes */
    int iteration;         /* the engineer's iteration when sent (stale replies) */
    int64_t sent_ns;       /* when curl sends it (CURLOPT_PREREQFUNCTION), else when added */
    int64_t due_ns;        /* a probe: the grid tick it was sent for (for a catch-up, the
                            * tick it missed); -1 not a probe */
    int catch_up;          /* a probe sent when the previous one's answer came after the tick */
    const char *step;      /* "token request", ... for error messages */
    const char *url;
    char errbuf[CURL_ERROR_SIZE];
    int in_multi;
    shard *sh;             /* the multi handle it was added to */
    int in_done;           /* its completion callback is running */
    int is_event;          /* fire-and-forget event: does not gate the iteration's steps */
    int keep;              /* an engineer's probe handle: reused for every probe of an
                            * iteration, released by probe_release */
    request *next_free;
    request *next_all;     /* every request ever allocated, for cleanup */
};

typedef enum {
    ST_WAIT_START = 0,
    ST_TOKEN,       /* obtaining the token (any grant) */
    ST_APPROVAL,    /* device code: waiting for the approval command */
    ST_DEVICE_POLL, /* device code: waiting to poll */
    ST_USE,         /* using the token + introspection */
    ST_EXPIRE_WAIT, /* waiting for exp */
    ST_ENDING,      /* revocation / resolution in flight */
    ST_PROBE,
    ST_FINAL,       /* introspection after the end */
    ST_DONE,
} eng_state;

struct engineer {
    drill *d;
    int idx;
    int iteration;   /* 0-based, current */
    tt_drill_iter *it;
    eng_state st;
    int64_t wake_ns;
    size_t heap_pos; /* SIZE_MAX when not scheduled */
    int pending;     /* requests in flight that the next step waits for */
    int ev_pending;  /* events in flight (the iteration ends only when delivered) */
    char *token;     /* raw access token; wiped when the iteration ends */
    char *subject_token;
    char *device_code;
    char user_code[64];
    int64_t poll_interval_ms;
    pid_t approval_pid;
    int64_t probe_deadline_ns, next_probe_ns;
    int rs_left;
    shard *sh;        /* its requests' multi handle */
    request **probe;  /* n_rs: the iteration's probe requests, set up once, re-sent */
    int64_t *missed; /* n_rs: the (first) tick that came while that server's probe was in
                      * flight; 0 none */
};

struct drill {
    const tt_scenario *sc;
    const tt_drill_opts *opts;
    tt_drill_result *res;
    shard *shards;            /* n_shards; run-level requests use the first */
    size_t n_shards;
    int epfd, tfd;
    int64_t base_ns;
    engineer *eng;
    size_t n_eng, done_eng;
    engineer **heap;
    size_t heap_n;
    request *free_rq;
    request *all_rq;
    size_t in_flight;
    char basic_client[1024], basic_admin[1024], basic_subject[1024];
    size_t iters_done;
    int64_t next_progress_ns;
    int64_t timer_armed_ns;   /* the timerfd's current expiry (-1 none) */
    unsigned char *fdst;      /* per fd: FD_* (the epoll registration of curl's sockets) */
    size_t n_fdst;
    int setup_failed;
    char setup_err[1024];
    int setup_pending;
    json_t *discovery;
    CURLU **rs_url; /* n_rs: each resource server's URL parsed once (NULL: by curl) */
};

/* fdst bits. A connection socket (opened by on_opensocket) stays registered in
 * epoll between transfers: curl drops it after every response and wants it
 * back for the next request on the kept connection, which would cost an
 * epoll_ctl each way for every probe. Its registration ends with close(). */
#define FD_REG 1u     /* in the epoll set */
#define FD_IN 2u      /* ... with EPOLLIN */
#define FD_OUT 4u     /* ... with EPOLLOUT */
#define FD_WATCH 8u   /* curl wants events for it now */
#define FD_OURS 16u   /* opened by on_opensocket: close goes through on_closesocket */

/* ---- scheduling ---- */

/* The default time slice the drill asks the scheduler for, in microseconds. */
#define DRILL_SLICE_US 300

/* Ask for a short scheduler time slice (Linux >= 6.12, EEVDF: sched_runtime of
 * a SCHED_OTHER task). With it a timer wakeup of the drill preempts a
 * CPU-bound neighbour on its core at once instead of waiting out that
 * neighbour's slice (milliseconds: the probe stamps' worst enemy on a shared
 * machine). Priority, nice value and CPU share stay as they are. Older kernels
 * ignore sched_runtime or refuse the call; nothing changes then.
 * TT_DRILL_SLICE_US overrides the slice (0: leave the default). */
static void short_slice(void)
{
    long us = DRILL_SLICE_US;
    const char *env = getenv("TT_DRILL_SLICE_US");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == '\0' && v >= 0 && v <= 100000) {
            us = v;
        }
    }
#ifdef SYS_sched_setattr
    if (us == 0) {
        return;
    }
    struct {
        uint32_t size, policy;
        uint64_t flags;
        int32_t nice;
        uint32_t priority;
        uint64_t runtime, deadline, period;
    } attr;
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.policy = 0; /* SCHED_OTHER */
    errno = 0;
    int nice_now = getpriority(PRIO_PROCESS, 0);
    if (errno != 0 || sched_getscheduler(0) != SCHED_OTHER) {
        return;
    }
    attr.nice = nice_now;
    attr.runtime = (uint64_t)us * 1000;
    if (syscall(SYS_sched_setattr, 0, &attr, 0) != 0) {
        tt_debug("drill: no short scheduler slice: %s", strerror(errno));
    }
#endif
}

/* ---- time and heap ---- */

static int64_t now_ns(void)
{
    return tt_time_mono_ns();
}

static int64_t rel(const drill *d, int64_t t)
{
    return t - d->base_ns;
}

static void heap_swap(drill *d, size_t a, size_t b)
{
    engineer *t = d->heap[a];
    d->heap[a] = d->heap[b];
    d->heap[b] = t;
    d->heap[a]->heap_pos = a;
    d->heap[b]->heap_pos = b;
}

static void heap_up(drill *d, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (d->heap[p]->wake_ns <= d->heap[i]->wake_ns) {
            break;
        }
        heap_swap(d, i, p);
        i = p;
    }
}

static void heap_down(drill *d, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < d->heap_n && d->heap[l]->wake_ns < d->heap[m]->wake_ns) {
            m = l;
        }
        if (r < d->heap_n && d->heap[r]->wake_ns < d->heap[m]->wake_ns) {
            m = r;
        }
        if (m == i) {
            break;
        }
        heap_swap(d, i, m);
        i = m;
    }
}

static void heap_remove(drill *d, engineer *e)
{
    if (e->heap_pos == SIZE_MAX) {
        return;
    }
    size_t i = e->heap_pos;
    d->heap_n--;
    if (i != d->heap_n) {
        heap_swap(d, i, d->heap_n);
        heap_down(d, i);
        heap_up(d, i);
    }
    e->heap_pos = SIZE_MAX;
}

/* Wake e at monotonic time t (replacing any earlier schedule). */
static void schedule(engineer *e, int64_t t)
{
    drill *d = e->d;
    heap_remove(d, e);
    e->wake_ns = t;
    e->heap_pos = d->heap_n;
    d->heap[d->heap_n++] = e;
    heap_up(d, e->heap_pos);
}

/* ---- HTTP plumbing ---- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    request *rq = ud;
    if (tt_buf_add(&rq->resp, p, size * n) != 0) {
        return 0; /* over TT_DRILL_MAX_RESPONSE: curl fails with CURLE_WRITE_ERROR */
    }
    return size * n;
}

static request *rq_get(drill *d)
{
    request *rq = d->free_rq;
    if (rq) {
        d->free_rq = rq->next_free;
        curl_easy_reset(rq->easy);
    } else {
        rq = calloc(1, sizeof(*rq));
        if (rq == NULL) {
            return NULL;
        }
        rq->easy = curl_easy_init();
        if (rq->easy == NULL) {
            free(rq);
            return NULL;
        }
        tt_buf_init(&rq->resp, TT_DRILL_MAX_RESPONSE);
        tt_buf_init(&rq->body, TT_DRILL_MAX_REQUEST);
        rq->next_all = d->all_rq;
        d->all_rq = rq;
    }
    rq->hdrs = NULL;
    rq->done = NULL;
    rq->d = d;
    rq->eng = NULL;
    rq->rs = -1;
    rq->iteration = 0;
    rq->due_ns = -1;
    rq->is_event = 0;
    rq->keep = 0;
    rq->in_done = 0;
    rq->errbuf[0] = '\0';
    rq->next_free = NULL;
    tt_buf_reset(&rq->resp);
    tt_buf_reset(&rq->body);
    return rq;
}

/* Wipe and free a header list (it may hold a bearer token or a secret). */
static void hdrs_free(struct curl_slist *h)
{
    for (struct curl_slist *n = h; n; n = n->next) {
        OPENSSL_cleanse(n->data, strlen(n->data));
    }
    curl_slist_free_all(h);
}

static void rq_put(drill *d, request *rq)
{
    hdrs_free(rq->hdrs);
    rq->hdrs = NULL;
    if (rq->body.data) {
        OPENSSL_cleanse(rq->body.data, rq->body.cap);
    }
    if (rq->resp.data) {
        OPENSSL_cleanse(rq->resp.data, rq->resp.len);
    }
    tt_buf_reset(&rq->body);
    tt_buf_reset(&rq->resp);
    rq->next_free = d->free_rq;
    d->free_rq = rq;
}

static void rq_destroy(request *rq)
{
    curl_easy_cleanup(rq->easy);
    hdrs_free(rq->hdrs);
    tt_buf_free_wipe(&rq->resp);
    tt_buf_free_wipe(&rq->body);
    free(rq);
}

/* Append "&name=value" (form-encoded) to the request body. */
static int form_add(request *rq, const char *name, const char *value)
{
    if (value == NULL) {
        return 0;
    }
    char *ev = curl_easy_escape(rq->easy, value, 0);
    if (ev == NULL) {
        return -1;
    }
    int rc = tt_buf_printf(&rq->body, "%s%s=%s", rq->body.len ? "&" : "", name, ev);
    OPENSSL_cleanse(ev, strlen(ev));
    curl_free(ev);
    return rc;
}

static curl_socket_t on_opensocket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    drill *d = ud;
    if (purpose != CURLSOCKTYPE_IPCXN) {
        return CURL_SOCKET_BAD;
    }
    int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd >= 0 && (size_t)fd < d->n_fdst) {
        d->fdst[fd] = FD_OURS;
    }
    return fd;
}

static int on_closesocket(void *ud, curl_socket_t fd)
{
    drill *d = ud;
    if (fd >= 0 && (size_t)fd < d->n_fdst) {
        d->fdst[fd] = 0; /* close() takes it out of the epoll set */
    }
    return close(fd);
}

#if LIBCURL_VERSION_NUM >= 0x075000
/* Called by curl on the (new or reused) connection right before it writes the
 * request: the closest stamp of the instant the request left. */
static int on_prereq(void *ud, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    (void)primary_ip;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    ((request *)ud)->sent_ns = now_ns();
    return CURL_PREREQFUNC_OK;
}
#endif

/* Prepare a request; method NULL = GET, or "POST" with rq->body. */
static int rq_setup(drill *d, request *rq, const char *method, const char *url, long timeout_ms)
{
    CURL *h = rq->easy;
    rq->url = url;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PRIVATE, rq);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, rq);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, rq->errbuf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    /* The drill measures the servers named in the scenario, not a proxy. */
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_USERAGENT, DRILL_USER_AGENT);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, d);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, on_closesocket);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, d);
#if LIBCURL_VERSION_NUM >= 0x075000
    curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(h, CURLOPT_PREREQDATA, rq);
#endif
    if (method && strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body.data ? rq->body.data : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)rq->body.len);
    } else if (method && strcmp(method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    return 0;
}

static int rq_header(request *rq, const char *h)
{
    struct curl_slist *n = curl_slist_append(rq->hdrs, h);
    if (n == NULL) {
        return -1;
    }
    rq->hdrs = n;
    return 0;
}

static int rq_send(drill *d, request *rq, request_done done)
{
    rq->done = done;
    if (rq->hdrs) {
        curl_easy_setopt(rq->easy, CURLOPT_HTTPHEADER, rq->hdrs);
    }
    rq->sent_ns = now_ns();
    rq->sh = rq->eng ? rq->eng->sh : &d->shards[0];
    if (curl_multi_add_handle(rq->sh->multi, rq->easy) != CURLM_OK) {
        return -1;
    }
    d->in_flight++;
    rq->in_multi = 1;
    if (rq->eng) {
        if (rq->is_event) {
            rq->eng->ev_pending++;
        } else {
            rq->eng->pending++;
        }
        rq->iteration = rq->eng->iteration;
    }
    return 0;
}

/* Client authentication on a token-endpoint style request. */
static int add_client_auth(request *rq, const tt_sc_client *c, const char *basic)
{
    switch (c->auth) {
    case TT_AUTH_BASIC: return rq_header(rq, basic);
    case TT_AUTH_POST:
        return form_add(rq, "client_id", c->id) | form_add(rq, "client_secret", c->secret);
    case TT_AUTH_NONE: return form_add(rq, "client_id", c->id);
    }
    return -1;
}

/* "Authorization: Basic base64(urlenc(id):urlenc(secret))" (RFC 6749 2.3.1). */
static int make_basic(const tt_sc_client *c, char *out, size_t outlen)
{
    if (!c->set || c->auth != TT_AUTH_BASIC) {
        out[0] = '\0';
        return 0;
    }
    CURL *h = curl_easy_init();
    if (h == NULL) {
        return -1;
    }
    char *u = curl_easy_escape(h, c->id, 0);
    char *p = curl_easy_escape(h, c->secret, 0);
    int rc = -1;
    char plain[768];
    unsigned char b64[1100];
    if (u && p) {
        int n = snprintf(plain, sizeof(plain), "%s:%s", u, p);
        if (n > 0 && (size_t)n < sizeof(plain) && (size_t)n / 3 * 4 + 8 < sizeof(b64)) {
            EVP_EncodeBlock(b64, (const unsigned char *)plain, n);
            int m = snprintf(out, outlen, "Authorization: Basic %s", (const char *)b64);
            rc = m > 0 && (size_t)m < outlen ? 0 : -1;
        }
    }
    OPENSSL_cleanse(plain, sizeof(plain));
    OPENSSL_cleanse(b64, sizeof(b64));
    if (p) {
        OPENSSL_cleanse(p, strlen(p));
    }
    curl_free(u);
    curl_free(p);
    curl_easy_cleanup(h);
    return rc;
}

/* An excerpt of the response body safe for an error message, the report and
 * the terminal: the values of token and secret fields are redacted whatever
 * the body's shape (a token response that is not valid JSON still carries
 * one), and so is every secret the drill holds (client secrets, the approval
 * token, the engineer's tokens) wherever a server echoes it. */
static void body_excerpt(const request *rq, char *out, size_t outlen)
{
    const tt_scenario *sc = rq->d->sc;
    const engineer *e = rq->eng;
    /* make_basic writes "Authorization: Basic <base64>" or "" */
    const drill *d = rq->d;
    static const char basic[] = "Authorization: Basic ";
    const size_t bl = sizeof(basic) - 1;
    const char *secrets[] = {
        sc->client.secret, sc->admin.secret, sc->subject.secret, sc->approval_token,
        e ? e->token : NULL, e ? e->subject_token : NULL, e ? e->device_code : NULL,
        /* the base64 of id:secret, as sent with client_secret_basic */
        d->basic_client[0] ? d->basic_client + bl : NULL,
        d->basic_admin[0] ? d->basic_admin + bl : NULL,
        d->basic_subject[0] ? d->basic_subject + bl : NULL,
    };
    /* the list ends at its first NULL: move the set ones to the front */
    const char *list[sizeof(secrets) / sizeof(secrets[0]) + 1];
    size_t n = 0;
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        if (secrets[i] != NULL) {
            list[n++] = secrets[i];
        }
    }
    list[n] = NULL;
    tt_redact_excerpt(rq->resp.data ? rq->resp.data : "", rq->resp.len, list, ERR_BODY_EXCERPT,
                      out, outlen);
}

/* "token request: <url>: HTTP 400: {body excerpt}" or the transport error. */
static void describe(const request *rq, long status, CURLcode cc, char *out, size_t outlen)
{
    if (cc != CURLE_OK) {
        snprintf(out, outlen, "%s: %s: %s", rq->step, rq->url,
                 rq->errbuf[0] ? rq->errbuf : curl_easy_strerror(cc));
        return;
    }
    char ex[ERR_BODY_EXCERPT + 8];
    body_excerpt(rq, ex, sizeof(ex));
    snprintf(out, outlen, "%s: %s: HTTP %ld%s%s", rq->step, rq->url, status, ex[0] ? ": " : "",
             ex);
}

/* ---- events to the collector ---- */

static void run_id_new(char *out, size_t outlen)
{
    unsigned char rnd[4] = {0};
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        uint32_t x = (uint32_t)now_ns();
        memcpy(rnd, &x, sizeof(rnd));
    }
    char ts[TT_TIME_BUFSZ];
    tt_time_format(tt_time_now_ms(), ts);
    /* 2026-11-22T07:47:51.123Z -> 20261122T074751Z */
    char compact[20];
    snprintf(compact, sizeof(compact), "%.4s%.2s%.2sT%.2s%.2s%.2sZ", ts, ts + 5, ts + 8, ts + 11,
             ts + 14, ts + 17);
    snprintf(out, outlen, "drill-%s-%02x%02x%02x%02x", compact, rnd[0], rnd[1], rnd[2], rnd[3]);
}

static void emit_done_plain(request *rq, long status, CURLcode cc);

/* Validate `data` as a `type` event (tt_event) and POST it to the collector.
 * `done` may be NULL. Takes ownership of data. Returns 0 or -1. */
static int emit(drill *d, engineer *e, const char *type, const char *id_suffix, json_t *data,
                request_done done)
{
    const tt_scenario *sc = d->sc;
    if (sc->collector_url == NULL) {
        json_decref(data);
        return 0;
    }
    char ts[TT_TIME_BUFSZ], id[TT_EV_MAX_ID];
    tt_time_format(tt_time_now_ms(), ts);
    snprintf(id, sizeof(id), "%s-%s", d->res->run_id, id_suffix);
    json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "specversion", "1.0", "id", id,
                           "source", "//tokentrail/drill", "type", type, "time", ts, "drillrun",
                           d->res->run_id, "data", data);
    if (ev == NULL) {
        d->res->events_failed++;
        return -1;
    }
    tt_event canon;
    tt_event_error why;
    if (tt_event_from_json(ev, &canon, &why) != 0) {
        tt_error("drill: internal error: %s event rejected: %s", type, why.msg);
        json_decref(ev);
        d->res->events_failed++;
        return -1;
    }
    json_decref(ev);
    char *body = tt_event_dump(&canon);
    tt_event_clear(&canon);
    request *rq = body ? rq_get(d) : NULL;
    if (rq == NULL || tt_buf_adds(&rq->body, body) != 0) {
        free(body);
        if (rq) {
            rq_put(d, rq);
        }
        d->res->events_failed++;
        return -1;
    }
    free(body);
    rq->eng = e;
    rq->is_event = done == NULL;
    rq->step = "event to collector";
    rq_setup(d, rq, "POST", sc->collector_url, (long)sc->request_timeout_ms);
    rq_header(rq, "Content-Type: application/json");
    if (sc->collector_token) {
        char auth[TT_SC_MAX_SECRET + 64];
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", sc->collector_token);
        rq_header(rq, auth);
        OPENSSL_cleanse(auth, sizeof(auth));
    }
    if (rq_send(d, rq, done ? done : emit_done_plain) != 0) {
        rq_put(d, rq);
        d->res->events_failed++;
        return -1;
    }
    return 0;
}

static int event_ok(drill *d, request *rq, long status, CURLcode cc)
{
    if (cc == CURLE_OK && status >= 200 && status < 300) {
        d->res->events_sent++;
        return 1;
    }
    d->res->events_failed++;
    char msg[512];
    describe(rq, status, cc, msg, sizeof(msg));
    tt_warn("drill: %s", msg);
    return 0;
}

static void emit_done_plain(request *rq, long status, CURLcode cc)
{
    event_ok(rq->d, rq, status, cc);
}

/* ---- iteration helpers ---- */

static void iter_finish(engineer *e);

static void fail_iter(engineer *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Record why the iteration could not complete and move on. A token already
 * issued and not yet ended is revoked best-effort so no access is left open. */
static void fail_iter(engineer *e, const char *fmt, ...)
{
    if (e->it->error[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->it->error, sizeof(e->it->error), fmt, ap);
        va_end(ap);
    }
    e->st = ST_DONE;
}

static void stale_or_count(request *rq)
{
    if (rq->eng && rq->is_event) {
        rq->eng->ev_pending--;
    } else if (rq->eng) {
        rq->eng->pending--;
    }
}

static int is_stale(const request *rq)
{
    engineer *e = rq->eng;
    return e == NULL || rq->iteration != e->iteration || e->st == ST_DONE;
}

/* Parse a JSON body; NULL if it is not a JSON object. */
static json_t *rq_json(request *rq)
{
    if (rq->resp.len == 0) {
        return NULL;
    }
    json_t *j = json_loadb(rq->resp.data, rq->resp.len, 0, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* 1 when every space-separated word of `have` is among the words of `want`. */
static int scope_subset(const char *have, const char *want)
{
    const char *p = have;
    while (*p) {
        while (*p == ' ') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        const char *end = strchr(p, ' ');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        int found = 0;
        const char *q = want ? want : "";
        while (*q && !found) {
            while (*q == ' ') {
                q++;
            }
            const char *qe = strchr(q, ' ');
            size_t m = qe ? (size_t)(qe - q) : strlen(q);
            if (m == n && m > 0 && strncmp(p, q, n) == 0) {
                found = 1;
            }
            q += m;
        }
        if (!found) {
            return 0;
        }
        p += n;
    }
    return 1;
}

static const tt_sc_client *admin_client(const drill *d, const char **basic)
{
    const tt_scenario *sc = d->sc;
    if (sc->admin.set) {
        *basic = d->basic_admin;
        return &sc->admin;
    }
    *basic = d->basic_client;
    return &sc->client;
}

/* ---- the iteration's steps ---- */

static void start_token(engineer *e);
static void after_use(engineer *e);
static void end_access(engineer *e);
static void start_probing(engineer *e);
static void final_introspect(engineer *e);

static void iter_start(engineer *e)
{
    drill *d = e->d;
    const tt_scenario *sc = d->sc;
    e->it = &d->res->it[(size_t)e->idx * (size_t)sc->iterations + (size_t)e->iteration];
    tt_drill_iter *it = e->it;
    it->engineer = e->idx + 1;
    it->iteration = e->iteration + 1;
    /* run ids end in 8 hex digits; keep incident ids short but unique per run */
    snprintf(it->incident_id, sizeof(it->incident_id), "DRILL-%s-e%d-i%d",
             d->res->run_id + strlen(d->res->run_id) - 8, it->engineer, it->iteration);
    it->opened_ns = rel(d, now_ns());
    e->pending = 0;
    e->ev_pending = 0;
    if (sc->collector_url) {
        json_t *svc = json_array();
        for (size_t i = 0; i < sc->n_services; i++) {
            json_array_append_new(svc, json_string(sc->services[i]));
        }
        char ts[TT_TIME_BUFSZ], suffix[64];
        tt_time_format(tt_time_now_ms(), ts);
        snprintf(suffix, sizeof(suffix), "e%d-i%d-opened", it->engineer, it->iteration);
        emit(d, e, "incident.opened", suffix,
             json_pack("{s:s, s:s, s:s, s:o, s:s}", "incident_id", it->incident_id, "title",
                       sc->incident_title, "severity", sc->incident_severity, "services", svc,
                       "opened_at", ts),
             NULL);
    }
    start_token(e);
}

static void token_request_common(engineer *e, request *rq, const char *step)
{
    rq->eng = e;
    rq->step = step;
    rq_setup(e->d, rq, "POST", e->d->res->token_endpoint, (long)e->d->sc->request_timeout_ms);
    rq_header(rq, "Content-Type: application/x-www-form-urlencoded");
    rq_header(rq, "Accept: application/json");
}

static void on_token(request *rq, long status, CURLcode cc);
static void on_device_auth(request *rq, long status, CURLcode cc);
static void on_subject_token(request *rq, long status, CURLcode cc);

static void send_or_fail(engineer *e, request *rq, request_done done)
{
    if (rq_send(e->d, rq, done) != 0) {
        if (rq->keep) {
            e->probe[rq->rs] = NULL;
            rq->keep = 0;
        }
        rq_put(e->d, rq);
        fail_iter(e, "%s: %s: could not start the request", rq->step, rq->url);
    }
}

static void send_token_request(engineer *e)
{
    drill *d = e->d;
    const tt_scenario *sc = d->sc;
    request *rq = rq_get(d);
    if (rq == NULL) {
        fail_iter(e, "out of memory");
        return;
    }
    int rc = 0;
    switch (sc->grant) {
    case TT_GRANT_CLIENT_CREDENTIALS:
        rc |= form_add(rq, "grant_type", "client_credentials");
        rc |= form_add(rq, "scope", sc->scope);
        rc |= form_add(rq, "resource", sc->resource);
        rc |= form_add(rq, "audience", sc->audience);
        break;
    case TT_GRANT_DEVICE_CODE:
        rc |= form_add(rq, "grant_type", tt_grant_type_uri(sc->grant));
        rc |= form_add(rq, "device_code", e->device_code);
        break;
    case TT_GRANT_TOKEN_EXCHANGE:
        rc |= form_add(rq, "grant_type", tt_grant_type_uri(sc->grant));
        rc |= form_add(rq, "subject_token", e->subject_token);
        rc |= form_add(rq, "subject_token_type", "urn:ietf:params:oauth:token-type:access_token");
        rc |= form_add(rq, "scope", sc->scope);
        rc |= form_add(rq, "resource", sc->resource);
        rc |= form_add(rq, "audience", sc->audience);
        break;
    }
    rc |= add_client_auth(rq, &sc->client, d->basic_client);
    token_request_common(e, rq, "token request");
    if (rc != 0) {
        rq_put(d, rq);
        fail_iter(e, "token request: request body over %d bytes", TT_DRILL_MAX_REQUEST);
        return;
    }
    e->st = ST_TOKEN;
    send_or_fail(e, rq, on_token);
}

static void start_token(engineer *e)
{
    drill *d = e->d;
    const tt_scenario *sc = d->sc;
    e->it->token_req_ns = rel(d, now_ns());
    e->st = ST_TOKEN;
    if (sc->grant == TT_GRANT_CLIENT_CREDENTIALS) {
        send_token_request(e);
        return;
    }
    request *rq = rq_get(d);
    if (rq == NULL) {
        fail_iter(e, "out of memory");
        return;
    }
    int rc = 0;
    if (sc->grant == TT_GRANT_DEVICE_CODE) {
        rc |= form_add(rq, "scope", sc->scope);
        rc |= form_add(rq, "resource", sc->resource);
        rc |= add_client_auth(rq, &sc->client, d->basic_client);
        rq->eng = e;
        rq->step = "device authorization request";
        rq_setup(d, rq, "POST", d->res->device_endpoint, (long)sc->request_timeout_ms);
        rq_header(rq, "Content-Type: application/x-www-form-urlencoded");
        rq_header(rq, "Accept: application/json");
        if (rc == 0) {
            send_or_fail(e, rq, on_device_auth);
            return;
        }
    } else {
        rc |= form_add(rq, "grant_type", "client_credentials");
        rc |= form_add(rq, "scope", sc->subject_scope);
        rc |= form_add(rq, "resource", sc->resource);
        rc |= add_client_auth(rq, &sc->subject, d->basic_subject);
        token_request_common(e, rq, "subject token request");
        if (rc == 0) {
            send_or_fail(e, rq, on_subject_token);
            return;
        }
    }
    rq_put(d, rq);
    fail_iter(e, "request body over %d bytes", TT_DRILL_MAX_REQUEST);
}

static void on_subject_token(request *rq, long status, CURLcode cc)
{
    engineer *e = rq->eng;
    json_t *j = status == 200 && cc == CURLE_OK ? rq_json(rq) : NULL;
    const char *tok = j ? json_string_value(json_object_get(j, "access_token")) : NULL;
    if (tok == NULL || strlen(tok) > MAX_TOKEN) {
        char msg[512];
        describe(rq, status, cc, msg, sizeof(msg));
        fail_iter(e, "%s", msg);
    } else {
        e->subject_token = strdup(tok);
        if (e->subject_token == NULL) {
            fail_iter(e, "out of memory");
        } else {
            send_token_request(e);
        }
    }
    if (j) {
        json_t *t = json_object_get(j, "access_token");
        if (json_is_string(t)) {
            OPENSSL_cleanse((void *)json_string_value(t), json_string_length(t));
        }
        json_decref(j);
    }
}

static void on_approve(request *rq, long status, CURLcode cc);

static void start_approval(engineer *e)
{
    drill *d = e->d;
    const tt_scenario *sc = d->sc;
    if (sc->approval_url) {
        request *rq = rq_get(d);
        if (rq == NULL) {
            fail_iter(e, "out of memory");
            return;
        }
        rq->eng = e;
        rq->step = "approval hook";
        int rc = form_add(rq, "user_code", e->user_code);
        rq_setup(d, rq, "POST", sc->approval_url, (long)sc->request_timeout_ms);
        rq_header(rq, "Content-Type: application/x-www-form-urlencoded");
        if (sc->approval_token) {
            char auth[TT_SC_MAX_SECRET + 64];
            snprintf(auth, sizeof(auth), "Authorization: Bearer %s", sc->approval_token);
            rc |= rq_header(rq, auth);
            OPENSSL_cleanse(auth, sizeof(auth));
        }
        if (rc != 0) {
            rq_put(d, rq);
            fail_iter(e, "approval hook: out of memory");
            return;
        }
        e->st = ST_APPROVAL;
        send_or_fail(e, rq, on_approve);
        return;
    }
    /* exec the command with the user code as last argument and TT_USER_CODE */
    char *argv[TT_SC_MAX_ARGV + 2];
    for (size_t i = 0; i < sc->approval_argc; i++) {
        argv[i] = sc->approval_argv[i];
    }
    argv[sc->approval_argc] = e->user_code;
    argv[sc->approval_argc + 1] = NULL;
    size_t ne = 0;
    while (environ[ne]) {
        ne++;
    }
    char **envp = calloc(ne + 2, sizeof(*envp));
    char env_code[96];
    snprintf(env_code, sizeof(env_code), "TT_USER_CODE=%s", e->user_code);
    if (envp == NULL) {
        fail_iter(e, "out of memory");
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < ne; i++) {
        if (strncmp(environ[i], "TT_USER_CODE=", 13) != 0) {
            envp[k++] = environ[i];
        }
    }
    envp[k++] = env_code;
    envp[k] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    if (rc != 0) {
        fail_iter(e, "approval hook: cannot run %s: %s", argv[0], strerror(rc));
        return;
    }
    e->approval_pid = pid;
    e->st = ST_APPROVAL;
    schedule(e, now_ns() + APPROVAL_CHECK_MS * NS_PER_MS);
}

static void on_device_auth(request *rq, long status, CURLcode cc)
{
    engineer *e = rq->eng;
    json_t *j = status == 200 && cc == CURLE_OK ? rq_json(rq) : NULL;
    const char *dc = j ? json_string_value(json_object_get(j, "device_code")) : NULL;
    const char *uc = j ? json_string_value(json_object_get(j, "user_code")) : NULL;
    if (dc == NULL || uc == NULL || strlen(uc) >= sizeof(e->user_code) || strlen(dc) > MAX_TOKEN) {
        char msg[512];
        describe(rq, status, cc, msg, sizeof(msg));
        fail_iter(e, "%s%s", msg, j ? " (no device_code/user_code)" : "");
        json_decref(j);
        return;
    }
    json_int_t interval = json_integer_value(json_object_get(j, "interval"));
    e->poll_interval_ms = (interval > 0 ? interval : 5) * 1000; /* RFC 8628 default 5 s */
    e->device_code = strdup(dc);
    snprintf(e->user_code, sizeof(e->user_code), "%s", uc);
    json_decref(j);
    if (e->device_code == NULL) {
        fail_iter(e, "out of memory");
        return;
    }
    start_approval(e);
}

static void on_approve(request *rq, long status, CURLcode cc)
{
    engineer *e = rq->eng;
    if (cc != CURLE_OK || status < 200 || status >= 300) {
        char msg[512];
        describe(rq, status, cc, msg, sizeof(msg));
        fail_iter(e, "%s", msg);
        return;
    }
    /* Approved: the first poll needs no wait (the interval is between polls). */
    send_token_request(e);
}

/* Start the uses and the introspection of a fresh token. */
static void on_use(request *rq, long status, CURLcode cc);
static void on_introspect_issued(request *rq, long status, CURLcode cc);

static request *bearer_request(engineer *e, const char *step, int rs_idx)
{
    drill *d = e->d;
    const tt_sc_rs *rs = &d->sc->rs[rs_idx];
    request *rq = rq_get(d);
    if (rq == NULL) {
        return NULL;
    }
    rq->eng = e;
    rq->rs = rs_idx;
    rq->step = step;
    long timeout = (long)d->sc->request_timeout_ms;
    rq_setup(d, rq, rs->method, rs->url, timeout);
    if (d->rs_url[rs_idx]) {
        /* curl copies the parsed URL instead of parsing the string for every
         * transfer: 18 % of a probe's instructions in user space */
        curl_easy_setopt(rq->easy, CURLOPT_CURLU, d->rs_url[rs_idx]);
    }
    if (strcmp(rs->method, "POST") == 0) {
        curl_easy_setopt(rq->easy, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(rq->easy, CURLOPT_POSTFIELDSIZE, 0L);
    }
    /* The User-Agent as a plain header: curl would format CURLOPT_USERAGENT
     * anew for every transfer, byte by byte (libcurl 7.88's printf). */
    curl_easy_setopt(rq->easy, CURLOPT_USERAGENT, NULL);
    int rc = rq_header(rq, "User-Agent: " DRILL_USER_AGENT);
    /* The header holds the raw token: curl_slist_append copies it (rq_put
     * wipes that copy). The stack copy is wiped only as far as it was
     * written: all 16 KiB of it cost a fifth of a probe's instructions. */
    char auth[MAX_TOKEN + 32];
    int n = snprintf(auth, sizeof(auth), "Authorization: Bearer %s", e->token);
    rc |= rq_header(rq, auth);
    OPENSSL_cleanse(auth, n >= 0 && (size_t)n < sizeof(auth) ? (size_t)n : sizeof(auth));
    if (rc != 0) {
        rq_put(d, rq);
        return NULL;
    }
    return rq;
}

static request *introspect_request(engineer *e, const char *step)
{
    drill *d = e->d;
    const char *basic;
    const tt_sc_client *c = admin_client(d, &basic);
    request *rq = rq_get(d);
    if (rq == NULL) {
        return NULL;
    }
    int rc = form_add(rq, "token", e->token);
    rc |= form_add(rq, "token_type_hint", "access_token");
    rc |= add_client_auth(rq, c, basic);
    rq->eng = e;
    rq->step = step;
    rq_setup(d, rq, "POST", d->res->introspection_endpoint, (long)d->sc->request_timeout_ms);
    rc |= rq_header(rq, "Content-Type: application/x-www-form-urlencoded");
    rc |= rq_header(rq, "Accept: application/json");
    if (rc != 0) {
        rq_put(d, rq);
        return NULL;
    }
    return rq;
}

/* What is wrong with a 200 token response (RFC 6749 5.1), or NULL. The drill
 * sends the token as a Bearer token (RFC 6750), so another token_type (MAC,
 * DPoP, N_A) cannot be used; expires_in, when present, is a number of
 * seconds (a digit string is tolerated, as some servers send one). */
static const char *token_response_problem(const json_t *j, const char *tok)
{
    if (j == NULL || !json_is_object(j)) {
        return "the answer is not a JSON object";
    }
    if (json_object_get(j, "access_token") == NULL) {
        return "no access_token in the answer";
    }
    if (tok == NULL) {
        return "access_token is not a string";
    }
    if (tok[0] == '\0') {
        return "access_token is empty";
    }
    if (strlen(tok) > MAX_TOKEN) {
        return "access_token is longer than the drill accepts";
    }
    const json_t *tt = json_object_get(j, "token_type");
    if (tt == NULL) {
        return "no token_type in the answer (RFC 6749 5.1 requires it; the drill uses Bearer)";
    }
    if (!json_is_string(tt) || strcasecmp(json_string_value(tt), "Bearer") != 0) {
        return "token_type is not Bearer: the drill sends tokens as Bearer tokens (RFC 6750)";
    }
    const json_t *ei = json_object_get(j, "expires_in");
    if (ei != NULL && !json_is_null(ei)) {
        const char *s = json_string_value(ei);
        int digits = s != NULL && s[0] != '\0' && strspn(s, "0123456789") == strlen(s) &&
                     strlen(s) <= 12;
        if (!(json_is_integer(ei) && json_integer_value(ei) >= 0) && !digits) {
            return "expires_in is not a number of seconds";
        }
    }
    return NULL;
}

static void on_token(request *rq, long status, CURLcode cc)
{
    engineer *e = rq->eng;
    drill *d = e->d;
    const tt_scenario *sc = d->sc;
    json_t *j = cc == CURLE_OK ? rq_json(rq) : NULL;
    const char *errcode = j ? json_string_value(json_object_get(j, "error")) : NULL;
    if (sc->grant == TT_GRANT_DEVICE_CODE && status == 400 && errcode &&
        (strcmp(errcode, "authorization_pending") == 0 || strcmp(errcode, "slow_down") == 0)) {
        if (strcmp(errcode, "slow_down") == 0) {
            e->poll_interval_ms += SLOW_DOWN_MS;
        }
        json_decref(j);
        e->st = ST_DEVICE_POLL;
        schedule(e, now_ns() + e->poll_interval_ms * NS_PER_MS);
        return;
    }
    json_t *at = j ? json_object_get(j, "access_token") : NULL;
    const char *tok = json_string_value(at);
    const char *why = NULL;
    if (status == 200 && cc == CURLE_OK) {
        why = token_response_problem(j, tok);
    }
    if (status != 200 || cc != CURLE_OK || why != NULL) {
        char msg[512];
        describe(rq, status, cc, msg, sizeof(msg));
        if (why) {
            fail_iter(e, "%s (%s)", msg, why);
        } else {
            fail_iter(e, "%s", msg);
        }
        if (at && json_is_string(at)) {
            OPENSSL_cleanse((void *)json_string_value(at), json_string_length(at));
        }
        json_decref(j);
        return;
    }
    int64_t t = now_ns();
    tt_drill_iter *it = e->it;
    it->token_ns = rel(d, t);
    e->token = strdup(tok);
    tt_fingerprint(tok, strlen(tok), it->token_id);
    OPENSSL_cleanse((void *)tok, strlen(tok));
    const char *granted = json_string_value(json_object_get(j, "scope"));
    /* RFC 6749 5.1: no scope in the response means exactly the requested scope. */
    snprintf(it->granted_scope, sizeof(it->granted_scope), "%s",
             granted ? granted : (sc->scope ? sc->scope : ""));
    if (!scope_subset(it->granted_scope, sc->scope)) {
        it->widened = 1;
    }
    const json_t *ei = json_object_get(j, "expires_in");
    it->expires_in_s = json_is_string(ei) ? strtoll(json_string_value(ei), NULL, 10)
                                          : json_integer_value(ei);
    json_decref(j);
    if (e->token == NULL) {
        fail_iter(e, "out of memory");
        return;
    }
    if (sc->collector_url) {
        int64_t now_ms = tt_time_now_ms();
        char iat[TT_TIME_BUFSZ], exp[TT_TIME_BUFSZ], suffix[64];
        tt_time_format(now_ms, iat);
        tt_time_format(now_ms + (it->expires_in_s > 0 ? it->expires_in_s * 1000 : 0), exp);
        snprintf(suffix, sizeof(suffix), "e%d-i%d-issued", it->engineer, it->iteration);
        json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "token_id", it->token_id,
                                 "client_id", sc->client.id, "scopes", it->granted_scope,
                                 "grant_type", tt_grant_type_uri(sc->grant), "issued_at", iat,
                                 "expires_at", exp, "incident_id", it->incident_id);
        if (data && sc->resource) {
            json_object_set_new(data, "audience", json_string(sc->resource));
        }
        emit(d, e, "token.issued", suffix, data, NULL);
    }
    e->st = ST_USE;
    for (size_t i = 0; i < sc->n_rs; i++) {
        request *u = bearer_request(e, "first use", (int)i);
        if (u == NULL) {
            fail_iter(e, "out of memory");
            return;
        }
        send_or_fail(e, u, on_use);
    }
    if (d->res->introspection_endpoint) {
        request *in = introspect_request(e, "introspection after issue");
        if (in == NULL) {
            fail_iter(e, "out of memory");
            return;
        }
        send_or_fail(e, in, on_introspect_issued);
    }
}

static void on_use(request *rq, long status, CURLcode cc)
{
    engineer *e = rq->eng;
    drill *d = e->d;
    const tt_scenario *sc = d->sc;
    tt_drill_iter *it = e->it;
    tt_drill_rs_obs *o = &it->rs[rq->rs];
    if (cc != CURLE_OK) {
        char msg[512];
        describe(rq, status, cc, msg, sizeof(msg));
        fail_iter(e, "%s (%s)", msg, sc->rs[rq->rs].name);
        return;
    }
    o->first_use_ns = rel(d, now_ns());
    o->first_status = status;
    if (status == sc->rs[rq->rs].accept_status && sc->collector_url) {
        char suffix[96];
        snprintf(suffix, sizeof(suffix), "e%d-i%d-used-%s", it->engineer, it->iteration,
                 sc->rs[rq->rs].name);
        emit(d, e, "token.used", suffix,
             json_pack("{s:s, s:s, s:s, s:s, s:i, s:s}", "token_id", it->token_id, "client_id",
                       sc->client.id, "resource", sc->rs[rq->rs].name, "method",
                       sc->rs[rq->rs].method, "status", (int)status, "incident_id",
                       it->incident_id),
             NULL);
    }
    after_use(e);
}

static void on_introspect_issued(request *rq, long status, CURLcode cc)
{
    engineer *e = rq->eng;
    const tt_scenario *sc = e->d->sc;
    json_t *j = status == 200 && cc == CURLE_OK ? rq_json(rq) : NULL;
    if (j == NULL) {
        char msg[512];
        describe(rq, status, cc, msg, sizeof(msg));
        fail_iter(e, "%s", msg);
        return;
    }
    const char *scope = json_string_value(json_object_get(j, "scope"));
    snprintf(e->it->introspected_scope, sizeof(e->it->introspected_scope), "%s",
             scope ? scope : "");
    if (!json_is_true(json_object_get(j, "active"))) {
        fail_iter(e, "%s: %s: a fresh token is not active", rq->step, rq->url);
    } else if (scope && !scope_subset(scope, sc->scope)) {
        e->it->widened = 1;
    }
    json_decref(j);
    after_use(e);
}

/* Called after each use/introspection reply: end access once all are in. */
static void after_use(engineer *e)
{
    if (e->st != ST_USE || e->pending > 0) {
        return;
    }
    end_access(e);
}

static void on_revoke(request *rq, long status, CURLcode cc);
static void on_resolved(request *rq, long status, CURLcode cc);

static void end_access(engineer *e)
{
    drill *d = e->d;
    const tt_scenario *sc = d->sc;
    tt_drill_iter *it = e->it;
    if (sc->end == TT_END_EXPIRE) {
        if (it->expires_in_s <= 0) {
            fail_iter(e, "end by expire: the token response has no expires_in");
            return;
        }
        e->st = ST_EXPIRE_WAIT;
        schedule(e, d->base_ns + it->token_ns + it->expires_in_s * 1000 * NS_PER_MS);
        return;
    }
    e->st = ST_ENDING;
    if (sc->end == TT_END_RESOLVE) {
        char ts[TT_TIME_BUFSZ], suffix[64];
        tt_time_format(tt_time_now_ms(), ts);
        snprintf(suffix, sizeof(suffix), "e%d-i%d-resolved", it->engineer, it->iteration);
        if (emit(d, e, "incident.resolved", suffix,
                 json_pack("{s:s, s:s}", "incident_id", it->incident_id, "resolved_at", ts),
                 on_resolved) != 0) {
            fail_iter(e, "resolve_incident: could not send incident.resolved");
        }
        return;
    }
    const char *basic;
    const tt_sc_client *c = admin_client(d, &basic);
    request *rq = rq_get(d);
    if (rq == NULL) {
        fail_iter(e, "out of memory");
        return;
    }
    int rc = form_add(rq, "token", e->token);
    rc |= form_add(rq, "token_type_hint", "access_token");
    rc |= add_client_auth(rq, c, basic);
    rq->eng = e;
    rq->step = "revocation";
    rq_setup(d, rq, "POST", d->res->revocation_endpoint, (long)sc->request_timeout_ms);
    rc |= rq_header(rq, "Content-Type: application/x-www-form-urlencoded");
    if (rc != 0) {
        rq_put(d, rq);
        fail_iter(e, "revocation: out of memory");
        return;
    }
    send_or_fail(e, rq, on_revoke);
}

static void on_revoke(request *rq, long status, CURLcode cc)
{
    engineer *e = rq->eng;
    drill *d = e->d;
    const tt_scenario *sc = d->sc;
    if (cc != CURLE_OK || status != 200) {
        char msg[512];
        describe(rq, status, cc, msg, sizeof(msg));
        fail_iter(e, "%s", msg);
        return;
    }
    tt_drill_iter *it = e->it;
    it->end_ns = rel(d, now_ns());
    if (sc->collector_url) {
        char suffix[64];
        snprintf(suffix, sizeof(suffix), "e%d-i%d-revoked", it->engineer, it->iteration);
        emit(d, e, "token.revoked", suffix,
             json_pack("{s:s, s:s, s:s, s:s, s:s}", "token_id", it->token_id, "client_id",
                       sc->client.id, "reason", "fire drill: access ended by revocation",
                       "actor", "tokentrail-drill", "incident_id", it->incident_id),
             NULL);
    }
    start_probing(e);
}

static void on_resolved(request *rq, long status, CURLcode cc)
{
    engineer *e = rq->eng;
    drill *d = e->d;
    if (!event_ok(d, rq, status, cc)) {
        char msg[512];
        describe(rq, status, cc, msg, sizeof(msg));
        fail_iter(e, "resolve_incident: %s", msg);
        return;
    }
    e->it->end_ns = rel(d, now_ns());
    start_probing(e);
}

static void on_probe(request *rq, long status, CURLcode cc);

static void start_probing(engineer *e)
{
    drill *d = e->d;
    e->st = ST_PROBE;
    e->rs_left = 0;
    for (size_t i = 0; i < d->sc->n_rs; i++) {
        tt_drill_rs_obs *o = &e->it->rs[i];
        o->not_probed = o->first_status != d->sc->rs[i].accept_status;
        e->rs_left += !o->not_probed;
    }
    int64_t end = d->base_ns + e->it->end_ns;
    e->probe_deadline_ns = end + d->sc->probe_timeout_ms * NS_PER_MS;
    e->next_probe_ns = end;
    memset(e->missed, 0, d->sc->n_rs * sizeof(*e->missed));
    if (e->rs_left == 0) {
        final_introspect(e); /* no server accepted the token: nothing to watch */
        return;
    }
    schedule(e, now_ns());
}

/* The probe request for server i: set up on the iteration's first probe (URL,
 * options, the Authorization header), then re-sent as is: a probe costs no
 * allocation and no option setting. */
static request *probe_request(engineer *e, int i)
{
    request *rq = e->probe[i];
    if (rq) {
        if (rq->resp.len) {
            OPENSSL_cleanse(rq->resp.data, rq->resp.len);
        }
        tt_buf_reset(&rq->resp);
        rq->errbuf[0] = '\0';
        return rq;
    }
    rq = bearer_request(e, "probe", i);
    if (rq) {
        rq->keep = 1;
        e->probe[i] = rq;
    }
    return rq;
}

/* Give the iteration's probe requests back (their header holds the token). */
static void probe_release(engineer *e)
{
    for (size_t i = 0; i < e->d->sc->n_rs; i++) {
        request *rq = e->probe[i];
        if (rq == NULL) {
            continue;
        }
        e->probe[i] = NULL;
        rq->keep = 0;
        if (!rq->in_multi && !rq->in_done) {
            rq_put(e->d, rq); /* else drain_done puts it */
        }
    }
}

/* Send server i its probe (t = now) for the grid tick due_ns. */
static void probe_send(engineer *e, size_t i, int64_t t, int64_t due_ns)
{
    const tt_scenario *sc = e->d->sc;
    tt_drill_rs_obs *o = &e->it->rs[i];
    request *rq = probe_request(e, (int)i);
    if (rq == NULL) {
        fail_iter(e, "out of memory");
        return;
    }
    long left_ms = (long)((e->probe_deadline_ns - t) / NS_PER_MS) + 1;
    if (left_ms < (long)sc->request_timeout_ms) {
        curl_easy_setopt(rq->easy, CURLOPT_TIMEOUT_MS, left_ms);
    }
    o->busy = 1;
    o->probes++;
    rq->due_ns = due_ns;
    rq->catch_up = 0;
    send_or_fail(e, rq, on_probe);
}

/* Probe every server that has not refused yet; called on the probe tick. */
static void probe_tick(engineer *e)
{
    drill *d = e->d;
    const tt_scenario *sc = d->sc;
    int64_t t = now_ns();
    if (t >= e->probe_deadline_ns) {
        for (size_t i = 0; i < sc->n_rs; i++) {
            tt_drill_rs_obs *o = &e->it->rs[i];
            if (o->refused_ns < 0 && !o->lingering && !o->not_probed) {
                o->lingering = 1;
                e->rs_left--;
            }
        }
        final_introspect(e);
        return;
    }
    /* the tick this wakeup is for (the earliest one, if the loop missed some) */
    int64_t due = e->next_probe_ns < t ? e->next_probe_ns : t;
    for (size_t i = 0; i < sc->n_rs; i++) {
        tt_drill_rs_obs *o = &e->it->rs[i];
        if (o->refused_ns >= 0 || o->not_probed) {
            continue;
        }
        if (o->busy) {
            if (e->missed[i] == 0) {
                e->missed[i] = due; /* a slow server is not probed twice at once */
            }
            continue;
        }
        probe_send(e, i, t, due);
        if (e->st == ST_DONE) {
            return;
        }
    }
    /* fixed grid from the end of access; skip ticks the loop missed */
    int64_t step = sc->probe_interval_ms * NS_PER_MS;
    while (e->next_probe_ns <= t) {
        e->next_probe_ns += step;
    }
    schedule(e, e->next_probe_ns < e->probe_deadline_ns ? e->next_probe_ns
                                                        : e->probe_deadline_ns);
}

static void on_probe(request *rq, long status, CURLcode cc)
{
    engineer *e = rq->eng;
    drill *d = e->d;
    const tt_scenario *sc = d->sc;
    tt_drill_rs_obs *o = &e->it->rs[rq->rs];
    o->busy = 0;
    if (e->st != ST_PROBE || o->refused_ns >= 0 || o->lingering) {
        return;
    }
    if (rq->due_ns >= 0 && !rq->catch_up && rq->sent_ns - rq->due_ns > o->probe_late_ns) {
        o->probe_late_ns = rq->sent_ns - rq->due_ns; /* the loop's own lateness */
    }
    if (cc != CURLE_OK) {
        if (cc == CURLE_OPERATION_TIMEDOUT && now_ns() >= e->probe_deadline_ns) {
            return; /* the tick at the deadline marks it lingering */
        }
        char msg[512];
        describe(rq, status, cc, msg, sizeof(msg));
        fail_iter(e, "%s (%s)", msg, sc->rs[rq->rs].name);
        return;
    }
    /* The probe's instant is when it was sent: the server decided on it then. */
    if (status == sc->rs[rq->rs].accept_status) {
        o->last_accept_ns = rel(d, rq->sent_ns);
        int64_t t = now_ns();
        if (e->missed[rq->rs] && t < e->probe_deadline_ns) {
            /* its tick passed while this one was in flight: catch up now
             * rather than at the next tick, so the bracket stays short */
            int64_t tick = e->missed[rq->rs];
            e->missed[rq->rs] = 0;
            probe_send(e, (size_t)rq->rs, t, tick);
            rq->catch_up = 1;
        }
        return;
    }
    o->refused_ns = rel(d, rq->sent_ns);
    o->refused_status = status;
    if (rq->due_ns >= 0) {
        /* what the refusal's instant carries beyond the grid's quantisation,
         * whatever the cause (a late loop, a catch-up after a slow answer) */
        o->refusal_late_ns = rq->sent_ns - rq->due_ns;
    }
    e->rs_left--;
    if (e->rs_left == 0) {
        heap_remove(d, e);
        final_introspect(e);
    }
}

static void on_introspect_end(request *rq, long status, CURLcode cc);

static void final_introspect(engineer *e)
{
    drill *d = e->d;
    heap_remove(d, e);
    e->st = ST_FINAL;
    if (d->res->introspection_endpoint == NULL) {
        iter_finish(e);
        return;
    }
    request *rq = introspect_request(e, "introspection after the end");
    if (rq == NULL) {
        fail_iter(e, "out of memory");
        return;
    }
    send_or_fail(e, rq, on_introspect_end);
}

static void on_introspect_end(request *rq, long status, CURLcode cc)
{
    engineer *e = rq->eng;
    json_t *j = status == 200 && cc == CURLE_OK ? rq_json(rq) : NULL;
    if (j == NULL) {
        char msg[512];
        describe(rq, status, cc, msg, sizeof(msg));
        fail_iter(e, "%s", msg);
        return;
    }
    e->it->active_after_end = json_is_true(json_object_get(j, "active")) ? 1 : 0;
    json_decref(j);
    iter_finish(e);
}

static void wipe_str(char **s)
{
    if (*s) {
        OPENSSL_cleanse(*s, strlen(*s));
        free(*s);
        *s = NULL;
    }
}

/* The iteration is over (done or failed): free secrets, start the next. */
static void iter_finish(engineer *e)
{
    drill *d = e->d;
    if (e->st != ST_DONE) {
        e->st = ST_DONE;
    }
    if (e->pending > 0 || e->ev_pending > 0) {
        return; /* the last reply calls us again */
    }
    heap_remove(d, e);
    if (e->approval_pid > 0) {
        int wst;
        if (waitpid(e->approval_pid, &wst, WNOHANG) == 0) {
            kill(e->approval_pid, SIGTERM);
            waitpid(e->approval_pid, &wst, 0);
        }
        e->approval_pid = 0;
    }
    e->it->done_ns = rel(d, now_ns());
    probe_release(e);
    wipe_str(&e->token);
    wipe_str(&e->subject_token);
    wipe_str(&e->device_code);
    OPENSSL_cleanse(e->user_code, sizeof(e->user_code));
    d->iters_done++;
    e->iteration++;
    if (e->iteration >= (int)d->sc->iterations || (d->opts->stop && *d->opts->stop)) {
        e->st = ST_DONE;
        e->iteration = (int)d->sc->iterations; /* stale replies are ignored */
        d->done_eng++;
        return;
    }
    e->st = ST_WAIT_START;
    schedule(e, now_ns());
}

static void engineer_wake(engineer *e)
{
    drill *d = e->d;
    switch (e->st) {
    case ST_WAIT_START: iter_start(e); break;
    case ST_DEVICE_POLL: send_token_request(e); break;
    case ST_APPROVAL: {
        int wst;
        pid_t r = waitpid(e->approval_pid, &wst, WNOHANG);
        if (r == 0) {
            schedule(e, now_ns() + APPROVAL_CHECK_MS * NS_PER_MS);
        } else {
            e->approval_pid = 0;
            if (r < 0 || !WIFEXITED(wst) || WEXITSTATUS(wst) != 0) {
                fail_iter(e, "approval hook: %s exited with %s %d", d->sc->approval_argv[0],
                          r > 0 && WIFEXITED(wst) ? "status" : "signal",
                          r > 0 && WIFEXITED(wst) ? WEXITSTATUS(wst) : (r > 0 ? WTERMSIG(wst) : -1));
            } else {
                send_token_request(e);
            }
        }
        break;
    }
    case ST_EXPIRE_WAIT:
        e->it->end_ns = rel(d, now_ns());
        start_probing(e);
        break;
    case ST_PROBE: probe_tick(e); break;
    default: break;
    }
    if (e->st == ST_DONE && e->pending == 0 && e->ev_pending == 0 && e->heap_pos == SIZE_MAX &&
        e->iteration < (int)d->sc->iterations) {
        iter_finish(e);
    }
}

/* ---- the loop ---- */

/* The epoll data of a curl socket: the fd and its multi handle's index. */
static uint64_t ev_key(const shard *sh, curl_socket_t s)
{
    return (uint64_t)(uint32_t)s | (uint64_t)sh->idx << 32;
}

static int on_socket(CURL *h, curl_socket_t s, int what, void *ud, void *sockp)
{
    shard *sh = ud;
    drill *d = sh->d;
    (void)h;
    (void)sockp;
    unsigned st = s >= 0 && (size_t)s < d->n_fdst ? d->fdst[s] : 0;
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.data.u64 = ev_key(sh, s);
    if (what == CURL_POLL_REMOVE) {
        if (st & FD_OURS) {
            d->fdst[s] = (unsigned char)(st & ~FD_WATCH); /* stays registered: see FD_REG */
        } else {
            epoll_ctl(d->epfd, EPOLL_CTL_DEL, s, NULL);
        }
        return 0;
    }
    unsigned want = (what & CURL_POLL_IN ? FD_IN : 0) | (what & CURL_POLL_OUT ? FD_OUT : 0);
    if (st & FD_OURS) {
        d->fdst[s] = (unsigned char)(FD_OURS | FD_WATCH | (st & (FD_REG | FD_IN | FD_OUT)));
        if ((st & FD_REG) && (st & (FD_IN | FD_OUT)) == want) {
            return 0; /* already registered for exactly these events */
        }
    }
    ev.events = (want & FD_IN ? EPOLLIN : 0) | (want & FD_OUT ? EPOLLOUT : 0);
    int rc = epoll_ctl(d->epfd, st & FD_REG ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev);
    if (rc != 0 && errno == ENOENT) {
        rc = epoll_ctl(d->epfd, EPOLL_CTL_ADD, s, &ev);
    } else if (rc != 0 && errno == EEXIST) {
        rc = epoll_ctl(d->epfd, EPOLL_CTL_MOD, s, &ev);
    }
    if ((st & FD_OURS) && rc == 0) {
        d->fdst[s] = (unsigned char)(FD_OURS | FD_WATCH | FD_REG | want);
    }
    return 0;
}

/* An event on a kept socket that curl does not watch (e.g. the server closed
 * an idle connection): take it out of the epoll set (hangups and errors are
 * reported even for an empty event mask) until curl wants it again; curl
 * notices the dead connection itself before it would reuse it. Returns 1 when
 * the event was such a one. */
static int mute_unwatched(drill *d, int fd)
{
    if (fd < 0 || (size_t)fd >= d->n_fdst) {
        return 0;
    }
    unsigned st = d->fdst[fd];
    if (!(st & FD_OURS) || (st & FD_WATCH)) {
        return 0;
    }
    if (st & FD_REG) {
        epoll_ctl(d->epfd, EPOLL_CTL_DEL, fd, NULL);
    }
    d->fdst[fd] = FD_OURS;
    return 1;
}

static int on_timer(CURLM *m, long timeout_ms, void *ud)
{
    shard *sh = ud;
    (void)m;
    sh->deadline_ns = timeout_ms < 0 ? -1 : now_ns() + (int64_t)timeout_ms * NS_PER_MS;
    return 0;
}

/* Run the completion callbacks of sh's finished transfers. */
static void drain_done(shard *sh)
{
    drill *d = sh->d;
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(sh->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        CURL *h = msg->easy_handle;
        CURLcode cc = msg->data.result;
        request *rq = NULL;
        curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&rq);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(sh->multi, h);
        rq->in_multi = 0;
        d->in_flight--;
        engineer *e = rq->eng;
        if (e) {
            stale_or_count(rq);
            int stale = is_stale(rq);
            rq->in_done = 1;
            if (!stale || rq->done == emit_done_plain) {
                rq->done(rq, status, cc);
            } else if (rq->rs >= 0 && rq->iteration == e->iteration) {
                e->it->rs[rq->rs].busy = 0;
            }
            rq->in_done = 0;
            if (!rq->keep) {
                rq_put(d, rq);
            }
            if (e->st == ST_DONE && e->pending == 0 && e->ev_pending == 0 &&
                e->iteration < (int)d->sc->iterations) {
                iter_finish(e);
            }
        } else {
            rq->done(rq, status, cc);
            rq_put(d, rq);
        }
    }
}

static void print_progress(drill *d, int final)
{
    if (d->opts->quiet) {
        return;
    }
    size_t total = (size_t)d->sc->engineers * (size_t)d->sc->iterations;
    double el = (double)(now_ns() - d->base_ns) / 1e9;
    size_t errors = 0, running = 0;
    for (size_t i = 0; i < d->res->n_it; i++) {
        const tt_drill_iter *it = &d->res->it[i];
        errors += it->error[0] != '\0';
        running += it->opened_ns >= 0 && it->done_ns < 0 && it->error[0] == '\0';
    }
    if (d->opts->progress_tty) {
        fprintf(stderr, "\r\033[Kdrill %s: %zu/%zu iterations, %zu running, %zu errors, %.1f s%s",
                d->sc->name, d->iters_done, total, running, errors, el, final ? "\n" : "");
    } else {
        fprintf(stderr, "drill %s: %zu/%zu iterations, %zu running, %zu errors, %.1f s\n",
                d->sc->name, d->iters_done, total, running, errors, el);
    }
}

/* The earliest curl timer of all multi handles (-1 none). */
static int64_t curl_deadline(const drill *d)
{
    int64_t t = -1;
    for (size_t i = 0; i < d->n_shards; i++) {
        int64_t x = d->shards[i].deadline_ns;
        if (x >= 0 && (t < 0 || x < t)) {
            t = x;
        }
    }
    return t;
}

/* Wake every engineer that is due, then run curl's expired timers - which
 * is what sends the requests they just added (curl asks for that with a zero
 * timeout) - until nothing is due. */
static void run_due(drill *d)
{
    int running;
    for (;;) {
        int64_t t = now_ns();
        while (d->heap_n > 0 && d->heap[0]->wake_ns <= t) {
            engineer *e = d->heap[0];
            heap_remove(d, e);
            engineer_wake(e);
        }
        t = now_ns();
        int ran = 0;
        for (size_t i = 0; i < d->n_shards; i++) {
            shard *sh = &d->shards[i];
            if (sh->deadline_ns >= 0 && sh->deadline_ns <= t) {
                sh->deadline_ns = -1;
                curl_multi_socket_action(sh->multi, CURL_SOCKET_TIMEOUT, 0, &running);
                drain_done(sh);
                ran = 1;
            }
        }
        if (!ran) {
            return;
        }
    }
}

/* Run the loop until `until(d)` holds (or a stop is requested). */
static void loop_run(drill *d, int (*until)(const drill *d))
{
    struct epoll_event evs[LOOP_MAX_EVENTS];
    int running;
    while (!until(d)) {
        if (d->opts->stop && *d->opts->stop) {
            break;
        }
        run_due(d);
        if (until(d)) {
            break;
        }
        int64_t t = now_ns();
        if (t >= d->next_progress_ns) {
            print_progress(d, 0);
            d->next_progress_ns = t + (d->opts->progress_tty ? 200 : 5000) * NS_PER_MS;
        }
        int64_t next = d->next_progress_ns;
        if (d->heap_n > 0 && d->heap[0]->wake_ns < next) {
            next = d->heap[0]->wake_ns;
        }
        int64_t cd = curl_deadline(d);
        if (cd >= 0 && cd < next) {
            next = cd;
        }
        if (next <= t) {
            continue;
        }
        if (next != d->timer_armed_ns) { /* still armed for the same instant: no syscall */
            struct itimerspec its;
            memset(&its, 0, sizeof(its));
            its.it_value.tv_sec = next / 1000000000;
            its.it_value.tv_nsec = next % 1000000000;
            timerfd_settime(d->tfd, TFD_TIMER_ABSTIME, &its, NULL);
            d->timer_armed_ns = next;
        }
        int n = epoll_wait(d->epfd, evs, LOOP_MAX_EVENTS, 1000);
        for (int i = 0; i < n; i++) {
            int fd = (int)(uint32_t)evs[i].data.u64;
            uint32_t si = (uint32_t)(evs[i].data.u64 >> 32);
            if (fd == d->tfd) {
                uint64_t x;
                ssize_t rr = read(d->tfd, &x, sizeof(x));
                (void)rr;
                continue;
            }
            if (mute_unwatched(d, fd) || si >= d->n_shards) {
                continue;
            }
            shard *sh = &d->shards[si];
            int flags = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                        (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                        (evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
            curl_multi_socket_action(sh->multi, fd, flags, &running);
            /* A busy loop gets dozens of replies per wakeup, 20-40 us of curl
             * work each: each reply's callback (the end-of-access stamp, a
             * probe's catch-up) runs right after its own read, not after the
             * batch. Due engineers wait for the batch: sending their probes
             * first would leave replies unread, and an engineer whose last
             * probe is unread misses its next tick. */
            drain_done(sh);
        }
    }
}

/* ---- discovery ---- */

static int setup_done(const drill *d)
{
    return d->setup_pending == 0;
}

static int all_done(const drill *d)
{
    return d->done_eng == d->n_eng && d->in_flight == 0;
}

/* RFC 8414 3: the well-known suffix goes between the host and any path. */
static int well_known(const char *issuer, const char *suffix, int insert, char *out, size_t outlen)
{
    const char *host = strstr(issuer, "://");
    if (host == NULL) {
        return -1;
    }
    const char *path = strchr(host + 3, '/');
    size_t hl = path ? (size_t)(path - issuer) : strlen(issuer);
    const char *p = path ? path : "";
    size_t pl = strlen(p);
    while (pl > 0 && p[pl - 1] == '/') {
        pl--;
    }
    int n;
    if (insert) {
        n = snprintf(out, outlen, "%.*s/.well-known/%s%.*s", (int)hl, issuer, suffix, (int)pl, p);
    } else {
        n = snprintf(out, outlen, "%.*s%.*s/.well-known/%s", (int)hl, issuer, (int)pl, p, suffix);
    }
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

static char disc_url[2][TT_SC_MAX_SCALAR + 64];

static void on_discovery(request *rq, long status, CURLcode cc);

static int discovery_send(drill *d, int which)
{
    request *rq = rq_get(d);
    if (rq == NULL) {
        return -1;
    }
    rq->step = "discovery";
    rq->rs = which;
    rq_setup(d, rq, NULL, disc_url[which], (long)d->sc->request_timeout_ms);
    rq_header(rq, "Accept: application/json");
    if (rq_send(d, rq, on_discovery) != 0) {
        rq_put(d, rq);
        return -1;
    }
    d->setup_pending++;
    return 0;
}

static void on_discovery(request *rq, long status, CURLcode cc)
{
    drill *d = rq->d;
    d->setup_pending--;
    json_t *j = status == 200 && cc == CURLE_OK ? rq_json(rq) : NULL;
    if (j == NULL) {
        char msg[512];
        describe(rq, status, cc, msg, sizeof(msg));
        if (rq->rs == 0 && discovery_send(d, 1) == 0) {
            tt_debug("drill: %s; trying OpenID Connect discovery", msg);
            return;
        }
        d->setup_failed = 1;
        snprintf(d->setup_err, sizeof(d->setup_err), "%s%s", msg,
                 rq->rs == 1 ? " (after /.well-known/oauth-authorization-server also failed)"
                             : "");
        return;
    }
    const char *iss = json_string_value(json_object_get(j, "issuer"));
    if (iss == NULL || strcmp(iss, d->sc->issuer) != 0) {
        d->setup_failed = 1;
        snprintf(d->setup_err, sizeof(d->setup_err),
                 "discovery: %s: metadata issuer '%s' does not match the configured issuer '%s'",
                 rq->url, iss ? iss : "(none)", d->sc->issuer);
        json_decref(j);
        return;
    }
    d->discovery = j;
}

static int endpoint(drill *d, const char *given, const char *meta_key, char **out)
{
    const char *v = given;
    if (v == NULL && d->discovery) {
        v = json_string_value(json_object_get(d->discovery, meta_key));
    }
    if (v == NULL) {
        *out = NULL;
        return 0;
    }
    *out = strdup(v);
    return *out ? 0 : -1;
}

static int resolve_endpoints(drill *d, char *err, size_t errlen)
{
    const tt_scenario *sc = d->sc;
    tt_drill_result *r = d->res;
    if (endpoint(d, sc->token_endpoint, "token_endpoint", &r->token_endpoint) != 0 ||
        endpoint(d, sc->introspection_endpoint, "introspection_endpoint",
                 &r->introspection_endpoint) != 0 ||
        endpoint(d, sc->revocation_endpoint, "revocation_endpoint", &r->revocation_endpoint) !=
            0 ||
        endpoint(d, sc->device_authorization_endpoint, "device_authorization_endpoint",
                 &r->device_endpoint) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *src = d->discovery ? "in the discovery metadata or the scenario"
                                   : "in the scenario (no issuer for discovery)";
    if (r->token_endpoint == NULL) {
        snprintf(err, errlen, "setup: no token_endpoint %s", src);
        return -1;
    }
    if (sc->end == TT_END_REVOKE && r->revocation_endpoint == NULL) {
        snprintf(err, errlen, "setup: end is revoke but there is no revocation_endpoint %s", src);
        return -1;
    }
    if (sc->grant == TT_GRANT_DEVICE_CODE && r->device_endpoint == NULL) {
        snprintf(err, errlen, "setup: grant device_code but no device_authorization_endpoint %s",
                 src);
        return -1;
    }
    if (r->introspection_endpoint == NULL) {
        tt_warn("drill: no introspection_endpoint %s: scope and after-end checks use the token "
                "response only", src);
    }
    return 0;
}

static void drill_cleanup(drill *d)
{
    for (size_t i = 0; d->shards && i < d->n_shards; i++) {
        if (d->shards[i].multi) {
            curl_multi_cleanup(d->shards[i].multi);
        }
    }
    free(d->shards);
    while (d->all_rq) {
        request *rq = d->all_rq;
        d->all_rq = rq->next_all;
        rq_destroy(rq);
    }
    d->free_rq = NULL;
    if (d->rs_url) { /* after the easy handles, which point at them */
        for (size_t i = 0; i < d->sc->n_rs; i++) {
            curl_url_cleanup(d->rs_url[i]);
        }
        free(d->rs_url);
    }
    for (size_t i = 0; i < d->n_eng; i++) {
        engineer *e = &d->eng[i];
        wipe_str(&e->token);
        wipe_str(&e->subject_token);
        wipe_str(&e->device_code);
        free(e->probe); /* the requests themselves are in all_rq */
        free(e->missed);
        if (e->approval_pid > 0) {
            int wst;
            kill(e->approval_pid, SIGTERM);
            waitpid(e->approval_pid, &wst, 0);
        }
    }
    free(d->eng);
    free(d->heap);
    free(d->fdst);
    json_decref(d->discovery);
    OPENSSL_cleanse(d->basic_client, sizeof(d->basic_client));
    OPENSSL_cleanse(d->basic_admin, sizeof(d->basic_admin));
    OPENSSL_cleanse(d->basic_subject, sizeof(d->basic_subject));
    if (d->epfd >= 0) {
        close(d->epfd);
    }
    if (d->tfd >= 0) {
        close(d->tfd);
    }
}

/* Remove handles still in flight (after a stop) so cleanup is orderly. */
static void abort_in_flight(drill *d)
{
    for (request *rq = d->all_rq; rq; rq = rq->next_all) {
        if (rq->in_multi) {
            curl_multi_remove_handle(rq->sh->multi, rq->easy);
            rq->in_multi = 0;
            d->in_flight--;
            rq_put(d, rq);
        }
    }
}

/* One multi handle per ENGINEERS_PER_MULTI engineers (at least one), each
 * keeping a connection per engineer and server alive for reuse. Returns 0, or
 * -1 (what was made is freed by drill_cleanup). */
static int shards_init(drill *d)
{
    size_t per = ENGINEERS_PER_MULTI;
    const char *env = getenv("TT_DRILL_ENGINEERS_PER_MULTI");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == '\0' && v >= 1) {
            per = (size_t)v;
        }
    }
    d->n_shards = d->n_eng > per ? (d->n_eng + per - 1) / per : 1;
    d->shards = calloc(d->n_shards, sizeof(*d->shards));
    if (d->shards == NULL) {
        return -1;
    }
    size_t conns = (per < d->n_eng ? per : d->n_eng) * (d->sc->n_rs + 2);
    for (size_t i = 0; i < d->n_shards; i++) {
        shard *sh = &d->shards[i];
        sh->d = d;
        sh->idx = (uint32_t)i;
        sh->deadline_ns = -1;
        sh->multi = curl_multi_init();
        if (sh->multi == NULL) {
            return -1;
        }
        curl_multi_setopt(sh->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
        curl_multi_setopt(sh->multi, CURLMOPT_SOCKETDATA, sh);
        curl_multi_setopt(sh->multi, CURLMOPT_TIMERFUNCTION, on_timer);
        curl_multi_setopt(sh->multi, CURLMOPT_TIMERDATA, sh);
        curl_multi_setopt(sh->multi, CURLMOPT_MAXCONNECTS, (long)(conns < 100000 ? conns : 100000));
    }
    return 0;
}

int tt_drill_run(const tt_scenario *sc, const tt_drill_opts *opts, tt_drill_result **out,
                 char *err, size_t errlen)
{
    *out = NULL;
    drill dd;
    drill *d = &dd;
    memset(d, 0, sizeof(*d));
    d->sc = sc;
    d->opts = opts;
    d->epfd = d->tfd = -1;
    d->timer_armed_ns = -1;
    size_t n_it = (size_t)sc->engineers * (size_t)sc->iterations;
    d->res = tt_drill_result_new(sc, n_it);
    d->n_eng = (size_t)sc->engineers;
    d->eng = calloc(d->n_eng, sizeof(*d->eng));
    d->heap = calloc(d->n_eng, sizeof(*d->heap));
    struct rlimit nofile;
    d->n_fdst = getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY &&
                        nofile.rlim_cur < (1u << 22)
                    ? (size_t)nofile.rlim_cur
                    : (1u << 22);
    d->fdst = calloc(d->n_fdst, 1);
    d->rs_url = calloc(sc->n_rs ? sc->n_rs : 1, sizeof(*d->rs_url));
    for (size_t i = 0; d->rs_url && i < sc->n_rs; i++) {
        CURLU *u = curl_url();
        if (u && curl_url_set(u, CURLUPART_URL, sc->rs[i].url, 0) != CURLUE_OK) {
            curl_url_cleanup(u); /* curl parses the string and reports why it fails */
            u = NULL;
        }
        d->rs_url[i] = u;
    }
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    d->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (d->res == NULL || d->eng == NULL || d->heap == NULL || d->fdst == NULL ||
        d->rs_url == NULL || shards_init(d) != 0 || d->epfd < 0 || d->tfd < 0) {
        snprintf(err, errlen, "setup: out of memory or file descriptors");
        goto fail;
    }
    if (make_basic(&sc->client, d->basic_client, sizeof(d->basic_client)) != 0 ||
        make_basic(&sc->admin, d->basic_admin, sizeof(d->basic_admin)) != 0 ||
        make_basic(&sc->subject, d->basic_subject, sizeof(d->basic_subject)) != 0) {
        snprintf(err, errlen, "setup: client id or secret too long");
        goto fail;
    }
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.fd = d->tfd;
    epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->tfd, &ev);
    short_slice();
    run_id_new(d->res->run_id, sizeof(d->res->run_id));
    d->res->started_ms = tt_time_now_ms();
    d->base_ns = now_ns();
    d->res->mono_base_ns = d->base_ns;

    if (sc->issuer && (sc->token_endpoint == NULL ||
                       (sc->end == TT_END_REVOKE && sc->revocation_endpoint == NULL) ||
                       sc->introspection_endpoint == NULL ||
                       (sc->grant == TT_GRANT_DEVICE_CODE &&
                        sc->device_authorization_endpoint == NULL))) {
        if (well_known(sc->issuer, "oauth-authorization-server", 1, disc_url[0],
                       sizeof(disc_url[0])) != 0 ||
            well_known(sc->issuer, "openid-configuration", 0, disc_url[1],
                       sizeof(disc_url[1])) != 0 ||
            discovery_send(d, 0) != 0) {
            snprintf(err, errlen, "discovery: cannot build a request for issuer %s", sc->issuer);
            goto fail;
        }
        d->next_progress_ns = INT64_MAX;
        loop_run(d, setup_done);
        if (d->setup_failed || d->discovery == NULL) {
            snprintf(err, errlen, "%s", d->setup_failed ? d->setup_err : "discovery: interrupted");
            goto fail;
        }
    }
    if (resolve_endpoints(d, err, errlen) != 0) {
        goto fail;
    }
    for (size_t i = 0; i < d->n_eng; i++) {
        engineer *e = &d->eng[i];
        e->d = d;
        e->idx = (int)i;
        e->heap_pos = SIZE_MAX;
        e->st = ST_WAIT_START;
        e->probe = calloc(sc->n_rs, sizeof(*e->probe));
        e->missed = calloc(sc->n_rs, sizeof(*e->missed));
        e->sh = &d->shards[i % d->n_shards];
        if (e->probe == NULL || e->missed == NULL) {
            snprintf(err, errlen, "setup: out of memory");
            goto fail;
        }
        int64_t offset = d->n_eng > 1 ? sc->ramp_ms * NS_PER_MS * (int64_t)i / (int64_t)d->n_eng
                                      : 0;
        schedule(e, now_ns() + offset);
    }
    d->next_progress_ns = now_ns();
    loop_run(d, all_done);
    if (opts->stop && *opts->stop) {
        abort_in_flight(d);
        for (size_t i = 0; i < n_it; i++) {
            tt_drill_iter *it = &d->res->it[i];
            if (it->opened_ns >= 0 && it->done_ns < 0 && it->error[0] == '\0') {
                snprintf(it->error, sizeof(it->error), "interrupted");
            }
        }
        d->res->interrupted = 1;
        tt_drill_result_drop_unstarted(d->res);
    }
    print_progress(d, 1);
    d->res->finished_ms = tt_time_now_ms();
    *out = d->res;
    d->res = NULL;
    drill_cleanup(d);
    return 0;
fail:
    if (d->shards) {
        abort_in_flight(d);
    }
    tt_drill_result_free(d->res);
    drill_cleanup(d);
    return -1;
}
