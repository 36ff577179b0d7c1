/* server.c - HTTP ingest, health and metrics endpoints on libmicrohttpd.
 *
 * Threading: a pool of libmicrohttpd epoll threads (`threads`, default one per
 * CPU). A POST's events are handed to the store writer (tt_store_submit) and
 * its connection is suspended until the group commit holding them is fsynced;
 * the writer's callback resumes it. Many concurrent requests share one fsync,
 * no thread waits, and each client still gets its 2xx only once its events
 * are durable. In Kafka mode
 * "durable" includes the outbox row; delivery to Kafka happens after the
 * answer (tt_kafka), and a full outbox refuses new events with 503 (a
 * request with more new events than the cap could ever hold: 413). */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "tt_buf.h"
#include "tt_httpd.h"
#include "tt_ingest.h"
#include "tt_log.h"
#include "tt_metrics.h"
#include "tt_time.h"

#define MAX_INGEST_TOKENS 64
#define MAX_TOKEN_LINE 4096
/* libmicrohttpd's per-connection memory pool (request line, headers, read
 * buffer). It zeroes the whole pool for every request on a keep-alive
 * connection, so its default of 32 KiB was ~5% of the CPU of single-event
 * ingest; 16 KiB still holds 8 KiB of headers, and a body is streamed through
 * the read buffer in chunks of whatever size is left. */
#define CONNECTION_POOL_BYTES (16 * 1024)
/* Bytes of a rejected body we read and drop before closing the connection. */
#define DISCARD_MAX (UINT64_C(64) << 20)

/* HTTP status codes we count, in metric label order. */
static const unsigned int counted_codes[] = {200, 400, 401, 404, 405, 413, 415, 500, 503};
#define N_CODES (sizeof(counted_codes) / sizeof(counted_codes[0]))

typedef struct server_metrics {
    uint64_t accepted[TT_EV__COUNT];
    uint64_t duplicates[TT_EV__COUNT];
    uint64_t rejected[TT_EV__COUNT][TT_REJ__COUNT];
    uint64_t requests[N_CODES];
    uint64_t body_bytes;
    tt_histogram request_latency;
} server_metrics;

struct tt_server {
    struct MHD_Daemon *mhd;
    tt_store *store;
    tt_kafka *kafka;          /* NULL in embedded mode */
    int64_t max_body;
    unsigned char tokens[MAX_INGEST_TOKENS][32];  /* SHA-256 of ingest tokens */
    size_t n_tokens;
    char *tls_cert_pem;
    char *tls_key_pem;
    uint16_t port;
    int in_flight;
    server_metrics m;
};

/* Per-request state, created on the first callback. */
typedef struct request {
    int64_t t0;
    tt_buf body;
    tt_inflate *inflate;
    tt_body_format fmt;
    int is_ingest;
    int failed;           /* a response was already queued */
    unsigned int status;
    const char *allow;    /* a 405's Allow header (NULL: "POST") */
    /* libmicrohttpd can only answer before the body or after all of it, so a
     * body found bad midway is drained (up to DISCARD_MAX) and answered at the end. */
    unsigned int deferred_status;
    char deferred_msg[200];
    uint64_t discarded;
    /* While its rows wait for the group commit the connection is suspended
     * (no thread blocks); the store's callback records the outcome and
     * resumes it, and the handler runs again to answer. */
    struct MHD_Connection *con;
    tt_ingest *ingest;
    tt_ingest_stats stats;
    int committed;        /* set by the store callback (atomic) */
    int store_rc;
    char store_err[256];
} request;

static void count_status(tt_server *srv, unsigned int status)
{
    for (size_t i = 0; i < N_CODES; i++) {
        if (counted_codes[i] == status) {
            tt_counter_add(&srv->m.requests[i], 1);
            return;
        }
    }
}

static enum MHD_Result reply(struct MHD_Connection *con, request *rq, unsigned int status,
                             const char *ctype, const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (status == 401) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"tokentrail\"");
    } else if (status == 405) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, rq && rq->allow ? rq->allow : "POST");
    } else if (status == 503) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    }
    enum MHD_Result ret = MHD_queue_response(con, status, r);
    MHD_destroy_response(r);
    if (rq) {
        rq->status = status;
    }
    return ret;
}

static enum MHD_Result reply_error(struct MHD_Connection *con, request *rq, unsigned int status,
                                   const char *msg)
{
    tt_buf b;
    tt_buf_init(&b, 4096);
    tt_buf_adds(&b, "{\"error\":\"");
    tt_buf_add_json_escaped(&b, msg);
    tt_buf_adds(&b, "\"}\n");
    enum MHD_Result ret = reply(con, rq, status, "application/json", b.data, b.len);
    tt_buf_free(&b);
    if (rq) {
        rq->failed = 1;
    }
    return ret;
}

/* Constant-time check of "Bearer <token>" against every configured hash. */
static int auth_ok(tt_server *srv, struct MHD_Connection *con)
{
    if (srv->n_tokens == 0) {
        return 1;
    }
    const char *h = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
        return 0;
    }
    const char *tok = h + 7;
    while (*tok == ' ') {
        tok++;
    }
    unsigned char digest[32];
    unsigned int dlen = 0;
    if (EVP_Digest(tok, strlen(tok), digest, &dlen, EVP_sha256(), NULL) != 1) {
        return 0;
    }
    /* Compare against all of them, without early exit, so timing reveals
     * neither which token matched nor how much of it. */
    int match = 0;
    for (size_t i = 0; i < srv->n_tokens; i++) {
        match |= CRYPTO_memcmp(digest, srv->tokens[i], 32) == 0;
    }
    return match;
}

static void render_metrics(tt_server *srv, tt_buf *b)
{
    server_metrics *m = &srv->m;
    tt_metrics_family(b, "tokentrail_build_info", "gauge", "Version of the running binary.");
    tt_buf_printf(b, "tokentrail_build_info{version=\"%s\",component=\"collector\"} 1\n",
                  TT_VERSION);

    tt_metrics_family(b, "tokentrail_events_accepted_total", "counter",
                      "Events accepted and committed to the store, by type.");
    for (int t = 1; t < TT_EV__COUNT; t++) {
        tt_buf_printf(b, "tokentrail_events_accepted_total{type=\"%s\"} %llu\n",
                      tt_event_type_name(t), (unsigned long long)tt_counter_get(&m->accepted[t]));
    }
    tt_metrics_family(b, "tokentrail_events_duplicate_total", "counter",
                      "Events received again with an already stored (source, id), by type.");
    for (int t = 1; t < TT_EV__COUNT; t++) {
        tt_buf_printf(b, "tokentrail_events_duplicate_total{type=\"%s\"} %llu\n",
                      tt_event_type_name(t), (unsigned long long)tt_counter_get(&m->duplicates[t]));
    }
    tt_metrics_family(b, "tokentrail_events_rejected_total", "counter",
                      "Events rejected by validation, by type and reason.");
    for (int t = 0; t < TT_EV__COUNT; t++) {
        for (int r = 0; r < TT_REJ__COUNT; r++) {
            tt_buf_printf(b, "tokentrail_events_rejected_total{type=\"%s\",reason=\"%s\"} %llu\n",
                          tt_event_type_name(t), tt_reject_reason_name(r),
                          (unsigned long long)tt_counter_get(&m->rejected[t][r]));
        }
    }
    tt_metrics_family(b, "tokentrail_http_requests_total", "counter",
                      "Ingest requests answered, by HTTP status code (404 and 405: requests to "
                      "a wrong path or with a wrong method).");
    for (size_t i = 0; i < N_CODES; i++) {
        tt_buf_printf(b, "tokentrail_http_requests_total{code=\"%u\"} %llu\n", counted_codes[i],
                      (unsigned long long)tt_counter_get(&m->requests[i]));
    }
    tt_metrics_family(b, "tokentrail_http_requests_in_flight", "gauge",
                      "Ingest requests being processed now.");
    tt_buf_printf(b, "tokentrail_http_requests_in_flight %d\n",
                  __atomic_load_n(&srv->in_flight, __ATOMIC_RELAXED));
    tt_metrics_family(b, "tokentrail_ingest_body_bytes_total", "counter",
                      "Request body bytes received, after decompression.");
    tt_buf_printf(b, "tokentrail_ingest_body_bytes_total %llu\n",
                  (unsigned long long)tt_counter_get(&m->body_bytes));
    tt_metrics_family(b, "tokentrail_http_request_duration_seconds", "histogram",
                      "Time from the first byte of an ingest request to its response.");
    tt_metrics_histogram(b, "tokentrail_http_request_duration_seconds", "", &m->request_latency);
    tt_metrics_family(b, "tokentrail_store_commit_duration_seconds", "histogram",
                      "Time of one group commit (insert, commit and fsync).");
    tt_metrics_histogram(b, "tokentrail_store_commit_duration_seconds", "",
                         tt_store_commit_hist(srv->store));
    tt_metrics_family(b, "tokentrail_store_commits_total", "counter", "Group commits done.");
    tt_buf_printf(b, "tokentrail_store_commits_total %llu\n",
                  (unsigned long long)tt_store_commits(srv->store));
    tt_metrics_family(b, "tokentrail_store_size_bytes", "gauge",
                      "Size of the SQLite database and its WAL on disk.");
    tt_buf_printf(b, "tokentrail_store_size_bytes %lld\n",
                  (long long)tt_store_size_bytes(srv->store));
    tt_metrics_family(b, "tokentrail_store_ready", "gauge",
                      "1 when the last store commit succeeded.");
    tt_buf_printf(b, "tokentrail_store_ready %d\n", tt_store_ready(srv->store));
    if (srv->kafka) {
        tt_kafka_render_metrics(srv->kafka, b);
    }
}

static const char *link_name(tt_kafka_link l)
{
    return l == TT_KAFKA_UP ? "up" : l == TT_KAFKA_DOWN ? "down" : "connecting";
}

/* /readyz. Embedded: ready while the store commits. With Kafka: "ready" while
 * events flow; "degraded" (still 200: ingest works, events wait in the
 * outbox) while Kafka is unreachable or the outbox holds an event older than
 * TT_KAFKA_DEGRADED_AGE_MS; 503 when ingest would be refused (store failing,
 * outbox full, producer failed). */
static enum MHD_Result handle_readyz(tt_server *srv, struct MHD_Connection *con)
{
    int store_ok = tt_store_ready(srv->store);
    if (srv->kafka == NULL) {
        if (store_ok) {
            static const char ok[] = "{\"status\":\"ready\",\"store\":\"ok\"}\n";
            return reply(con, NULL, 200, "application/json", ok, sizeof(ok) - 1);
        }
        static const char bad[] = "{\"status\":\"unavailable\",\"store\":\"failing\"}\n";
        return reply(con, NULL, 503, "application/json", bad, sizeof(bad) - 1);
    }
    tt_kafka_status st;
    tt_kafka_get_status(srv->kafka, &st);
    const char *status = "ready";
    unsigned int code = 200;
    if (!store_ok || st.outbox_full || st.failed) {
        status = "unavailable";
        code = 503;
    } else if (st.link != TT_KAFKA_UP || st.oldest_age_ms >= TT_KAFKA_DEGRADED_AGE_MS) {
        status = "degraded";
    }
    char body[400];
    int n = snprintf(body, sizeof(body),
                     "{\"status\":\"%s\",\"store\":\"%s\",\"kafka\":\"%s\",\"outbox_events\":%lld,"
                     "\"outbox_oldest_age_seconds\":%.3f,\"outbox_full\":%s}\n",
                     status, store_ok ? "ok" : "failing", st.failed ? "failed" : link_name(st.link),
                     (long long)st.outbox_events, st.oldest_age_ms / 1000.0,
                     st.outbox_full ? "true" : "false");
    return reply(con, NULL, code, "application/json", body, (size_t)n);
}

/* The read-only endpoints: GET (or HEAD) only. */
static int is_get_endpoint(const char *url)
{
    return strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0 ||
           strcmp(url, "/metrics") == 0;
}

static enum MHD_Result handle_get(tt_server *srv, struct MHD_Connection *con, request *rq,
                                  const char *url)
{
    if (strcmp(url, "/healthz") == 0) {
        static const char ok[] = "{\"status\":\"ok\"}\n";
        return reply(con, NULL, 200, "application/json", ok, sizeof(ok) - 1);
    }
    if (strcmp(url, "/readyz") == 0) {
        return handle_readyz(srv, con);
    }
    if (strcmp(url, "/metrics") == 0) {
        tt_buf b;
        tt_buf_init(&b, 4 << 20);
        render_metrics(srv, &b);
        enum MHD_Result ret =
            reply(con, NULL, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
        tt_buf_free(&b);
        return ret;
    }
    if (strcmp(url, "/v1/events") == 0) {
        return reply_error(con, rq, 405, "method not allowed: POST events to /v1/events");
    }
    return reply_error(con, rq, 404, "not found: endpoints are POST /v1/events, "
                                     "GET /healthz, /readyz, /metrics");
}

/* Allocates room for an announced body of n bytes up front, so a 450 KB batch
 * is not copied through a dozen doubling reallocs. tt_buf has no reserve call;
 * its fields are public, and this keeps its invariant (NUL-terminated data).
 * Only a hint: on failure, or when the body turns out longer, it grows as usual. */
static void presize_body(tt_buf *b, size_t n)
{
    char *p = malloc(n + 1);
    if (p == NULL) {
        return;
    }
    p[0] = '\0';
    b->data = p;
    b->len = 0;
    b->cap = n + 1;
}

/* First callback of a POST /v1/events: check auth and headers, set up. */
static enum MHD_Result begin_ingest(tt_server *srv, struct MHD_Connection *con, request *rq)
{
    rq->is_ingest = 1;
    __atomic_fetch_add(&srv->in_flight, 1, __ATOMIC_RELAXED);
    if (!auth_ok(srv, con)) {
        return reply_error(con, rq, 401, "unauthorized: send Authorization: Bearer <ingest token>");
    }
    const char *enc = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_CONTENT_ENCODING);
    if (enc && (strcasecmp(enc, "gzip") == 0 || strcasecmp(enc, "x-gzip") == 0 ||
                strcasecmp(enc, "deflate") == 0)) {
        rq->inflate = tt_inflate_new();
        if (rq->inflate == NULL) {
            return reply_error(con, rq, 503, "out of memory");
        }
    } else if (enc && strcasecmp(enc, "identity") != 0) {
        return reply_error(con, rq, 415, "Content-Encoding: only gzip, deflate or identity");
    }
    const char *ct = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct) {
        /* The media type is the part before any parameter (";charset=..."). */
        static const struct {
            const char *type;
            tt_body_format fmt;
        } types[] = {
            {"application/json", TT_BODY_JSON},
            {"application/cloudevents+json", TT_BODY_JSON},
            {"application/cloudevents-batch+json", TT_BODY_BATCH},
            {"application/x-ndjson", TT_BODY_NDJSON},
            {"application/jsonl", TT_BODY_NDJSON},
            {"application/jsonlines", TT_BODY_NDJSON},
        };
        size_t n = strcspn(ct, "; \t");
        size_t i = 0;
        while (i < sizeof(types) / sizeof(types[0]) &&
               !(strlen(types[i].type) == n && strncasecmp(ct, types[i].type, n) == 0)) {
            i++;
        }
        if (i == sizeof(types) / sizeof(types[0])) {
            return reply_error(con, rq, 415,
                               "Content-Type: use application/json, "
                               "application/cloudevents+json, "
                               "application/cloudevents-batch+json, application/x-ndjson, "
                               "application/jsonl or application/jsonlines");
        }
        rq->fmt = types[i].fmt;
    }
    const char *cl = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    long long announced = cl ? strtoll(cl, NULL, 10) : 0;
    if (srv->kafka) {
        /* Refuse before parsing when nothing could be accepted. Read the
         * body first, as for a late 413, so the client sees the answer. */
        char why[512];
        if (tt_kafka_failed(srv->kafka, why, sizeof(why))) {
            rq->deferred_status = 503;
            snprintf(rq->deferred_msg, sizeof(rq->deferred_msg),
                     "kafka producer failed; the collector is shutting down");
            return MHD_YES;
        }
        /* No early refusal when the outbox is full: only new events count
         * against the cap, and a retry of stored events must still get its
         * 200 (duplicates). The store applies the cap at commit. */
    }
    if (rq->inflate == NULL && announced > srv->max_body) {
        char msg[160];
        snprintf(msg, sizeof(msg), "body too large: the limit is %lld bytes (max_body)",
                 (long long)srv->max_body);
        /* Many clients send the whole body before reading: answering now and
         * closing would hand them a reset instead of the 413. So drain a body
         * of reasonable size and answer after it; hang up only on huge ones. */
        if ((unsigned long long)announced - (unsigned long long)srv->max_body > DISCARD_MAX) {
            return reply_error(con, rq, 413, msg);
        }
        rq->deferred_status = 413;
        snprintf(rq->deferred_msg, sizeof(rq->deferred_msg), "%s", msg);
        return MHD_YES;
    }
    tt_buf_init(&rq->body, (size_t)srv->max_body);
    /* Bounded by max_body just above; a compressed body's size says nothing
     * about the inflated one, so those grow on demand. */
    if (rq->inflate == NULL && announced > 0) {
        presize_body(&rq->body, (size_t)announced);
    }
    return MHD_YES;
}

static enum MHD_Result body_chunk(tt_server *srv, request *rq, const char *data, size_t n)
{
    if (rq->deferred_status) {
        rq->discarded += n;
        /* Past this, the client is not listening: hang up rather than read on. */
        return rq->discarded > DISCARD_MAX ? MHD_NO : MHD_YES;
    }
    int rc = rq->inflate ? tt_inflate_feed(rq->inflate, data, n, &rq->body)
                         : (tt_buf_add(&rq->body, data, n) == 0 ? 0 : -2);
    if (rc == -1) {
        rq->deferred_status = 400;
        snprintf(rq->deferred_msg, sizeof(rq->deferred_msg), "body: corrupt gzip/deflate data");
    } else if (rc == -2) {
        rq->deferred_status = 413;
        snprintf(rq->deferred_msg, sizeof(rq->deferred_msg),
                 "body too large: more than %lld bytes%s (max_body)", (long long)srv->max_body,
                 rq->inflate ? " after decompression" : "");
    }
    if (rq->deferred_status) {
        tt_buf_free_wipe(&rq->body);
    }
    return MHD_YES;
}

/* The store's callback, on its writer thread: note the outcome, wake the
 * connection. Nothing else may touch rq until the handler runs again. */
static void on_stored(void *arg, int rc, const char *err)
{
    request *rq = arg;
    rq->store_rc = rc;
    if (err) {
        snprintf(rq->store_err, sizeof(rq->store_err), "%s", err);
    }
    __atomic_store_n(&rq->committed, 1, __ATOMIC_RELEASE);
    MHD_resume_connection(rq->con);
}

/* Second half: the rows were committed (or the commit failed, or there was
 * nothing to commit); count and answer. */
static enum MHD_Result answer_ingest(tt_server *srv, struct MHD_Connection *con, request *rq)
{
    tt_ingest_stats *st = &rq->stats;
    tt_buf resp;
    tt_buf_init(&resp, SIZE_MAX / 2);
    tt_ingest_status s = tt_ingest_finish(rq->ingest, rq->store_rc, rq->store_err, &resp);
    tt_ingest_free(rq->ingest);
    rq->ingest = NULL;

    for (int t = 0; t < TT_EV__COUNT; t++) {
        tt_counter_add(&srv->m.accepted[t], st->accepted[t]);
        tt_counter_add(&srv->m.duplicates[t], st->duplicates[t]);
        for (int r = 0; r < TT_REJ__COUNT; r++) {
            tt_counter_add(&srv->m.rejected[t][r], st->rejected[t][r]);
        }
    }
    unsigned int status;
    switch (s) {
    case TT_INGEST_OK:
        status = st->n_accepted + st->n_duplicates > 0 ? 200 : 400;
        break;
    case TT_INGEST_TOO_MANY:
        status = 413;
        break;
    case TT_INGEST_EMPTY:
    case TT_INGEST_NOT_ARRAY:
        status = 400;
        break;
    default:
        status = 503;
        break;
    }
    if (s == TT_INGEST_STORE_FAILED &&
        strncmp(rq->store_err, TT_STORE_OUTBOX_TOO_BIG, strlen(TT_STORE_OUTBOX_TOO_BIG)) == 0) {
        /* More new events than the outbox cap could ever hold: a retry would
         * fail the same way, so this is the client's to fix (413), not 503. */
        tt_buf_free(&resp);
        char msg[320];
        snprintf(msg, sizeof(msg), "%s; nothing was accepted", rq->store_err);
        return reply_error(con, rq, 413, msg);
    }
    tt_buf_adds(&resp, "\n");
    enum MHD_Result ret = reply(con, rq, status, "application/json", resp.data, resp.len);
    tt_buf_free(&resp);
    return ret;
}

/* First half, once the whole body is in: parse and validate, hand the valid
 * events to the store's next group commit and suspend the connection. */
static enum MHD_Result finish_ingest(tt_server *srv, struct MHD_Connection *con, request *rq)
{
    if (rq->deferred_status) {
        return reply_error(con, rq, rq->deferred_status, rq->deferred_msg);
    }
    if (rq->inflate && !tt_inflate_done(rq->inflate)) {
        return reply_error(con, rq, 400, "body: truncated gzip/deflate data");
    }
    tt_counter_add(&srv->m.body_bytes, rq->body.len);
    rq->ingest = tt_ingest_prepare(rq->body.data ? rq->body.data : "", rq->body.len, rq->fmt,
                                   &rq->stats);
    /* The body may have held raw tokens: wipe it now, not at free time. */
    tt_buf_free_wipe(&rq->body);
    if (rq->ingest == NULL) {
        return reply_error(con, rq, 503, "out of memory");
    }
    tt_store_row *rows;
    size_t n = tt_ingest_rows(rq->ingest, &rows);
    if (n == 0) {
        return answer_ingest(srv, con, rq);
    }
    /* Suspend before submitting: the callback may resume at once. */
    rq->con = con;
    MHD_suspend_connection(con);
    if (tt_store_submit(srv->store, rows, n, on_stored, rq, rq->store_err,
                        sizeof(rq->store_err)) != 0) {
        rq->store_rc = -1;
        __atomic_store_n(&rq->committed, 1, __ATOMIC_RELEASE);
        MHD_resume_connection(con);
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    tt_server *srv = cls;
    request *rq = *con_cls;

    if (rq == NULL) {
        rq = calloc(1, sizeof(*rq));
        if (rq == NULL) {
            return MHD_NO;
        }
        rq->t0 = tt_time_mono_ns();
        *con_cls = rq;
        if (strcmp(method, "POST") == 0 && strcmp(url, "/v1/events") == 0) {
            return begin_ingest(srv, con, rq);
        }
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
            if (strcmp(url, "/v1/events") == 0) {
                return reply_error(con, rq, 405, "method not allowed: POST events to /v1/events");
            }
            if (is_get_endpoint(url)) {
                rq->allow = "GET, HEAD";
                return reply_error(con, rq, 405, "method not allowed: use GET");
            }
            return reply_error(con, rq, 404, "not found: endpoints are POST /v1/events, "
                                             "GET /healthz, /readyz, /metrics");
        }
        return MHD_YES;
    }
    if (!rq->is_ingest) {
        if (*upload_data_size > 0) {
            *upload_data_size = 0; /* ignore bodies on GET */
            return MHD_YES;
        }
        return rq->failed ? MHD_YES : handle_get(srv, con, rq, url);
    }
    if (rq->failed) {
        /* An early error was queued; discard the rest of the upload. */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        enum MHD_Result ret = body_chunk(srv, rq, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return ret;
    }
    if (rq->ingest != NULL) {
        /* Resumed after the commit (or a spurious call while waiting). */
        if (!__atomic_load_n(&rq->committed, __ATOMIC_ACQUIRE)) {
            return MHD_YES;
        }
        return answer_ingest(srv, con, rq);
    }
    return finish_ingest(srv, con, rq);
}

static void on_completed(void *cls, struct MHD_Connection *con, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)con;
    (void)toe;
    tt_server *srv = cls;
    request *rq = *con_cls;
    if (rq == NULL) {
        return;
    }
    if (rq->is_ingest) {
        tt_hist_observe_ns(&srv->m.request_latency, tt_time_mono_ns() - rq->t0);
        count_status(srv, rq->status);
        __atomic_fetch_sub(&srv->in_flight, 1, __ATOMIC_RELAXED);
    } else if (rq->status == 404 || rq->status == 405) {
        count_status(srv, rq->status); /* a wrong path or method, likely a misconfigured sender */
    }
    tt_inflate_free(rq->inflate);
    tt_buf_free_wipe(&rq->body);
    tt_ingest_free(rq->ingest);
    free(rq);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    tt_log_vwrite(TT_LOG_WARN, "libmicrohttpd", 0, fmt, ap);
}

/* Read a whole small file (PEM) into a NUL-terminated string. */
static char *read_small_file(const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    tt_buf b;
    tt_buf_init(&b, 1 << 20);
    char chunk[4096];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0 && rc == 0) {
        rc = tt_buf_add(&b, chunk, n);
    }
    fclose(fp);
    if (rc != 0 || b.data == NULL) {
        snprintf(err, errlen, "%s: empty or larger than 1 MiB", path);
        tt_buf_free_wipe(&b);
        return NULL;
    }
    return tt_buf_detach(&b);
}

static int load_tokens(tt_server *srv, const tt_collect_config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->auth_fingerprints.n; i++) {
        const char *fp = cfg->auth_fingerprints.v[i];
        if (!tt_is_fingerprint(fp)) {
            snprintf(err, errlen, "auth.token_sha256: '%.80s' is not sha256:<64 hex digits>", fp);
            return -1;
        }
        if (srv->n_tokens == MAX_INGEST_TOKENS) {
            snprintf(err, errlen, "auth: more than %d ingest tokens", MAX_INGEST_TOKENS);
            return -1;
        }
        for (int j = 0; j < 32; j++) {
            unsigned int byte;
            sscanf(fp + 7 + 2 * j, "%2x", &byte);
            srv->tokens[srv->n_tokens][j] = (unsigned char)byte;
        }
        srv->n_tokens++;
    }
    for (size_t i = 0; i < cfg->auth_tokens_files.n; i++) {
        const char *path = cfg->auth_tokens_files.v[i];
        FILE *fp = fopen(path, "r");
        if (fp == NULL) {
            snprintf(err, errlen, "auth.tokens_file: %s: %s", path, strerror(errno));
            return -1;
        }
        char line[MAX_TOKEN_LINE];
        int lineno = 0, rc = 0;
        while (rc == 0 && fgets(line, sizeof(line), fp)) {
            lineno++;
            size_t n = strcspn(line, "\r\n");
            if (line[n] == '\0' && !feof(fp)) {
                snprintf(err, errlen, "%s:%d: line longer than %d bytes", path, lineno,
                         MAX_TOKEN_LINE - 2);
                rc = -1;
                break;
            }
            line[n] = '\0';
            char *t = line;
            while (*t == ' ' || *t == '\t') {
                t++;
            }
            size_t tl = strlen(t);
            while (tl > 0 && (t[tl - 1] == ' ' || t[tl - 1] == '\t')) {
                t[--tl] = '\0';
            }
            if (tl == 0 || t[0] == '#') {
                continue;
            }
            if (srv->n_tokens == MAX_INGEST_TOKENS) {
                snprintf(err, errlen, "auth: more than %d ingest tokens", MAX_INGEST_TOKENS);
                rc = -1;
                break;
            }
            unsigned int dlen;
            EVP_Digest(t, tl, srv->tokens[srv->n_tokens++], &dlen, EVP_sha256(), NULL);
        }
        OPENSSL_cleanse(line, sizeof(line));
        fclose(fp);
        if (rc != 0) {
            return -1;
        }
    }
    if ((cfg->auth_tokens_files.n > 0 || cfg->auth_fingerprints.n > 0) && srv->n_tokens == 0) {
        snprintf(err, errlen, "auth: token files are configured but hold no token");
        return -1;
    }
    return 0;
}

tt_server *tt_server_start(const tt_collect_config *cfg, tt_store *store, tt_kafka *kafka,
                           char *err, size_t errlen)
{
    tt_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->store = store;
    srv->kafka = kafka;
    srv->max_body = cfg->max_body;
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (load_tokens(srv, cfg, err, errlen) != 0 ||
        tt_httpd_resolve_listen(cfg->listen, &ss, &sslen, err, errlen) != 0) {
        tt_server_stop(srv);
        return NULL;
    }
    /* A pool of event-loop threads (epoll), not a thread per connection: a
     * request waiting for its group commit is suspended rather than parked on
     * a thread, so 64 keep-alive clients cost 64 sockets, not 64 context
     * switches per commit. */
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                         MHD_USE_ITC | MHD_USE_ERROR_LOG;
    unsigned int threads = (unsigned int)cfg->threads;
    if (threads == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus > 0 ? (unsigned int)cpus : 1;
    }
    if (ss.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }
    if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
        snprintf(err, errlen, "tls: set both --tls-cert and --tls-key");
        tt_server_stop(srv);
        return NULL;
    }
    if (cfg->tls_cert) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(err, errlen, "tls: this libmicrohttpd was built without TLS");
            tt_server_stop(srv);
            return NULL;
        }
        srv->tls_cert_pem = read_small_file(cfg->tls_cert, err, errlen);
        srv->tls_key_pem = srv->tls_cert_pem ? read_small_file(cfg->tls_key, err, errlen) : NULL;
        if (srv->tls_key_pem == NULL) {
            tt_server_stop(srv);
            return NULL;
        }
        flags |= MHD_USE_TLS;
    }
    struct MHD_OptionItem tls_opts[] = {
        {cfg->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, srv->tls_cert_pem},
        {cfg->tls_cert ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, srv->tls_key_pem},
        {MHD_OPTION_END, 0, NULL},
    };
    srv->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)(cfg->idle_timeout_ms / 1000),
        MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_POOL_BYTES,
        MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
    if (srv->mhd == NULL) {
        snprintf(err, errlen, "cannot listen on %s: address in use, not local, or TLS key/cert "
                              "invalid (see the log above)", cfg->listen);
        tt_server_stop(srv);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : 0;
    return srv;
}

uint16_t tt_server_port(const tt_server *srv)
{
    return srv->port;
}

void tt_server_quiesce(tt_server *srv)
{
    MHD_socket fd = MHD_quiesce_daemon(srv->mhd);
    if (fd != MHD_INVALID_SOCKET) {
        close(fd);
    }
}

int tt_server_drain(tt_server *srv, int64_t timeout_ms)
{
    int64_t deadline = tt_time_mono_ns() + timeout_ms * 1000000;
    int n;
    while ((n = __atomic_load_n(&srv->in_flight, __ATOMIC_RELAXED)) > 0 &&
           tt_time_mono_ns() < deadline) {
        usleep(10000);
    }
    return n;
}

void tt_server_stop(tt_server *srv)
{
    if (srv == NULL) {
        return;
    }
    if (srv->mhd) {
        MHD_stop_daemon(srv->mhd);
    }
    if (srv->tls_key_pem) {
        OPENSSL_cleanse(srv->tls_key_pem, strlen(srv->tls_key_pem));
    }
    free(srv->tls_key_pem);
    free(srv->tls_cert_pem);
    OPENSSL_cleanse(srv->tokens, sizeof(srv->tokens));
    free(srv);
}

