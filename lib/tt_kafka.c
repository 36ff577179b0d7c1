/* tt_kafka.c - the outbox relay: one thread reads undelivered events from the
 * store in seq order, produces them with librdkafka, serves delivery reports
 * and hands the delivered seqs back to the store for deletion.
 *
 * Threading: everything that touches the producer's callbacks runs in the
 * relay thread (rd_kafka_poll is only called there), so the delivery-report
 * state needs no lock. Other threads read counters with relaxed atomics. */
#include "tt_kafka.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tt_log.h"
#include "tt_metrics.h"
#include "tt_time.h"

/* Settings librdkafka must keep: the no-loss guarantee rests on them. */
static const struct {
    const char *key;
    const char *value;
    const char *also_ok;
} required_props[] = {
    {"enable.idempotence", "true", "true"},
    {"acks", "all", "-1"},
};

/* Backoff between re-production attempts after delivery errors. */
#define RETRY_MIN_MS 500
#define RETRY_MAX_MS 30000
/* Probe the cluster this often while the link is not known to be up. */
#define PROBE_EVERY_MS 2000

typedef struct err_count {
    int code;
    uint64_t n;
} err_count;

struct tt_kafka {
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    tt_store *store;
    char topic[256];
    pthread_t relay;
    int started;

    /* Set by other threads, read by the relay. */
    int stopping;              /* atomic */
    int64_t stop_deadline_ns;  /* written before stopping is set */
    int fatal;                 /* atomic; fatal_msg is written before it */
    char fatal_msg[512];
    int link;                  /* atomic tt_kafka_link */

    /* Relay thread only. */
    int64_t cursor;            /* highest seq produced (or skipped past) */
    int64_t *acks;             /* delivered seqs not yet handed to the store */
    size_t n_acks, cap_acks;
    int rewind;                /* delivery errors: re-produce from rewind_to */
    int64_t rewind_to;
    int64_t retry_at_ns;
    int64_t backoff_ms;
    int64_t next_probe_ns;

    /* Metrics (atomics). */
    int64_t in_flight;         /* produced, no delivery report yet */
    uint64_t produced;
    uint64_t delivered;
    tt_histogram delivery_hist;
    pthread_mutex_t emu;       /* guards errs */
    err_count errs[TT_KAFKA_MAX_ERROR_CODES];
    size_t n_errs;
    uint64_t errs_other;
};

static int64_t load64(const int64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* syslog levels: 0-3 error, 4 warning, 5-6 notice/info, 7 debug. */
    tt_log_level lvl = level <= 3   ? TT_LOG_ERROR
                       : level == 4 ? TT_LOG_WARN
                       : level <= 6 ? TT_LOG_INFO
                                    : TT_LOG_DEBUG;
    tt_log_write(lvl, "librdkafka", 0, "%s: %s", fac, buf);
}

int tt_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err,
                      size_t errlen)
{
    char why[256];
    if (rd_kafka_conf_set(conf, key, value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "kafka.%s: %s", key, why);
        return -1;
    }
    return 0;
}

/* bootstrap.servers and every "key=value" of props onto conf. Returns 0, or
 * -1 with err naming the key. */
static int apply_user(rd_kafka_conf_t *conf, const char *brokers, const tt_strlist *props,
                      char *err, size_t errlen)
{
    char why[512];
    if (brokers == NULL || brokers[0] == '\0' ||
        rd_kafka_conf_set(conf, "bootstrap.servers", brokers, why, sizeof(why)) !=
            RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "kafka.brokers: %s", brokers && brokers[0] ? why : "is empty");
        return -1;
    }
    for (size_t i = 0; props && i < props->n; i++) {
        const char *kv = props->v[i];
        const char *eq = strchr(kv, '=');
        char key[256];
        size_t kl = eq ? (size_t)(eq - kv) : strlen(kv);
        if (eq == NULL || kl >= sizeof(key)) {
            snprintf(err, errlen, "kafka.%.200s: not key=value", kv);
            return -1;
        }
        memcpy(key, kv, kl);
        key[kl] = '\0';
        if (rd_kafka_conf_set(conf, key, eq + 1, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
            snprintf(err, errlen, "kafka.%s: %s", key, why);
            return -1;
        }
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
    return 0;
}

rd_kafka_conf_t *tt_kafka_conf_new(const char *brokers, const tt_strlist *props, char *err,
                                   size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf == NULL) {
        snprintf(err, errlen, "kafka: out of memory");
        return NULL;
    }
    if (apply_user(conf, brokers, props, err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

static void count_error(tt_kafka *k, rd_kafka_resp_err_t code)
{
    pthread_mutex_lock(&k->emu);
    size_t i = 0;
    while (i < k->n_errs && k->errs[i].code != (int)code) {
        i++;
    }
    if (i == k->n_errs && k->n_errs < TT_KAFKA_MAX_ERROR_CODES) {
        k->errs[k->n_errs++] = (err_count){(int)code, 0};
    }
    if (i < k->n_errs) {
        k->errs[i].n++;
    } else {
        k->errs_other++;
    }
    pthread_mutex_unlock(&k->emu);
}

/* Something failed for the event with this seq: after everything in flight
 * has reported, start producing again from there (relay thread). */
static void schedule_rewind(tt_kafka *k, int64_t seq)
{
    if (!k->rewind || seq - 1 < k->rewind_to) {
        k->rewind_to = seq - 1;
    }
    if (!k->rewind) {
        k->rewind = 1;
        k->retry_at_ns = tt_time_mono_ns() + k->backoff_ms * 1000000;
        k->backoff_ms = k->backoff_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : k->backoff_ms * 2;
    }
}

/* Delivery report, served by rd_kafka_poll/flush in the relay thread. */
static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    tt_kafka *k = opaque;
    int64_t seq = (int64_t)(intptr_t)m->_private;
    __atomic_fetch_sub(&k->in_flight, 1, __ATOMIC_RELAXED);
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (k->n_acks == k->cap_acks) {
            size_t cap = k->cap_acks ? k->cap_acks * 2 : 4096;
            int64_t *a = realloc(k->acks, cap * sizeof(*a));
            if (a == NULL) {
                /* It stays in the outbox and is delivered again later. */
                tt_error("kafka: out of memory recording a delivery (seq %lld)", (long long)seq);
                return;
            }
            k->acks = a;
            k->cap_acks = cap;
        }
        k->acks[k->n_acks++] = seq;
        tt_counter_add(&k->delivered, 1);
        tt_hist_observe_ns(&k->delivery_hist, rd_kafka_message_latency(m) * 1000);
        __atomic_store_n(&k->link, TT_KAFKA_UP, __ATOMIC_RELAXED);
        k->backoff_ms = RETRY_MIN_MS;
        return;
    }
    if (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
        return; /* our own purge at shutdown: still in the outbox */
    }
    count_error(k, m->err);
    if (!k->rewind) {
        tt_warn("kafka: delivery of event seq %lld failed: %s; it stays in the outbox and is "
                "produced again", (long long)seq, rd_kafka_err2str(m->err));
    }
    schedule_rewind(k, seq);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    tt_kafka *k = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[400];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof(why));
        snprintf(k->fatal_msg, sizeof(k->fatal_msg), "%s: %s", rd_kafka_err2name(orig), why);
        tt_error("kafka: fatal error: %s", k->fatal_msg);
        __atomic_store_n(&k->fatal, 1, __ATOMIC_RELEASE);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        __atomic_store_n(&k->link, TT_KAFKA_DOWN, __ATOMIC_RELAXED);
    }
    tt_warn("kafka: %s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* Produce one outbox row (outbox read callback, relay thread). Returns 0 to
 * go on, 1 to stop reading (queue full, or an error scheduled a rewind). */
static int produce_row(void *ctx, const tt_outbox_row *r)
{
    tt_kafka *k = ctx;
    for (int attempt = 0;; attempt++) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            k->rk, RD_KAFKA_V_RKT(k->rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_VALUE((void *)(uintptr_t)r->body, r->body_len),
            RD_KAFKA_V_KEY(r->key, r->key ? strlen(r->key) : 0),
            /* The event time, so that offsets-for-times finds events by the
             * same time `tokentrail events --since` filters on. */
            RD_KAFKA_V_TIMESTAMP(r->time_ms),
            RD_KAFKA_V_HEADER("content-type", "application/cloudevents+json", -1),
            RD_KAFKA_V_HEADER("ce_specversion", "1.0", -1),
            RD_KAFKA_V_HEADER("ce_type", r->type, -1), RD_KAFKA_V_HEADER("ce_id", r->id, -1),
            RD_KAFKA_V_HEADER("ce_source", r->source, -1),
            RD_KAFKA_V_OPAQUE((void *)(intptr_t)r->seq), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            k->cursor = r->seq;
            __atomic_fetch_add(&k->in_flight, 1, __ATOMIC_RELAXED);
            tt_counter_add(&k->produced, 1);
            return 0;
        }
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            /* Bounded wait for delivery reports to make room; then give up
             * for now: the event waits in the outbox (back-pressure). */
            if (attempt < 10 && !__atomic_load_n(&k->stopping, __ATOMIC_RELAXED)) {
                rd_kafka_poll(k->rk, 100);
                continue;
            }
            return 1;
        }
        count_error(k, e);
        tt_warn("kafka: cannot produce event seq %lld: %s; it stays in the outbox",
                (long long)r->seq, rd_kafka_err2str(e));
        schedule_rewind(k, r->seq);
        return 1;
    }
}

/* Hand delivered seqs to the store (relay thread). */
static void hand_acks(tt_kafka *k, int wait)
{
    if (k->n_acks == 0 && !wait) {
        return;
    }
    if (tt_store_outbox_ack(k->store, k->acks, k->n_acks, wait) != 0) {
        tt_warn("kafka: %zu delivered events could not be marked; they will be delivered again "
                "after a restart", k->n_acks);
    }
    k->n_acks = 0;
}

/* Produce the next batch of undelivered events, as room allows. Returns how
 * many were produced. */
static int64_t produce_some(tt_kafka *k)
{
    int64_t unacked = load64(&k->in_flight) + (int64_t)k->n_acks +
                      tt_store_outbox_acks_pending(k->store);
    int64_t room = TT_KAFKA_MAX_UNACKED - unacked;
    if (room <= 0 || tt_store_outbox_last_seq(k->store) <= k->cursor) {
        return 0;
    }
    int64_t before = tt_counter_get(&k->produced);
    char err[256];
    if (tt_store_outbox_read(k->store, k->cursor, room < TT_KAFKA_READ_BATCH ? room
                                                                             : TT_KAFKA_READ_BATCH,
                             produce_row, k, err, sizeof(err)) < 0) {
        tt_error("kafka relay: %s", err);
    }
    return (int64_t)(tt_counter_get(&k->produced) - (uint64_t)before);
}

/* While the link is not known to be up, ask for metadata now and then: the
 * only way to learn the cluster is back when there is nothing to deliver. */
static void probe_link(tt_kafka *k)
{
    int64_t now = tt_time_mono_ns();
    if (__atomic_load_n(&k->link, __ATOMIC_RELAXED) == TT_KAFKA_UP || now < k->next_probe_ns) {
        return;
    }
    k->next_probe_ns = now + (int64_t)PROBE_EVERY_MS * 1000000;
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(k->rk, 0, k->rkt, &md, 500) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        __atomic_store_n(&k->link, TT_KAFKA_UP, __ATOMIC_RELAXED);
        rd_kafka_metadata_destroy(md);
    } else {
        __atomic_store_n(&k->link, TT_KAFKA_DOWN, __ATOMIC_RELAXED);
    }
}

static void *relay_main(void *arg)
{
    tt_kafka *k = arg;
    for (;;) {
        int failed = __atomic_load_n(&k->fatal, __ATOMIC_ACQUIRE);
        if (__atomic_load_n(&k->stopping, __ATOMIC_ACQUIRE)) {
            int caught_up = load64(&k->in_flight) == 0 &&
                            tt_store_outbox_last_seq(k->store) <= k->cursor && !k->rewind;
            if (failed || caught_up || tt_time_mono_ns() >= k->stop_deadline_ns) {
                break;
            }
        }
        int64_t n = 0;
        if (!failed && !k->rewind) {
            n = produce_some(k);
        }
        rd_kafka_poll(k->rk, 0);
        hand_acks(k, 0);
        if (k->rewind && load64(&k->in_flight) == 0 && tt_time_mono_ns() >= k->retry_at_ns) {
            /* Deletions first, so delivered events are not read again. */
            hand_acks(k, 1);
            tt_info("kafka: producing the outbox again from seq %lld", (long long)k->rewind_to + 1);
            k->cursor = k->rewind_to;
            k->rewind = 0;
        }
        if (n == 0) {
            probe_link(k);
            if (load64(&k->in_flight) > 0 || k->rewind || failed) {
                rd_kafka_poll(k->rk, 20);
            } else {
                /* Idle: wake for new events, and poll at least every 100 ms
                 * for error and log callbacks. */
                tt_store_outbox_wait(k->store, k->cursor, 100);
            }
        }
    }
    /* Shutdown: what is queued gets until the deadline to be delivered. */
    int64_t left_ms = (k->stop_deadline_ns - tt_time_mono_ns()) / 1000000;
    if (!__atomic_load_n(&k->fatal, __ATOMIC_ACQUIRE) && left_ms > 0) {
        rd_kafka_flush(k->rk, (int)left_ms);
    }
    int outq = rd_kafka_outq_len(k->rk);
    if (outq > 0) {
        rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(k->rk, 0);
    }
    hand_acks(k, 1);
    return NULL;
}

tt_kafka *tt_kafka_start(const tt_kafka_opts *opts, tt_store *store, char *err, size_t errlen)
{
    tt_kafka *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        snprintf(err, errlen, "kafka: out of memory");
        return NULL;
    }
    pthread_mutex_init(&k->emu, NULL);
    k->store = store;
    k->backoff_ms = RETRY_MIN_MS;
    snprintf(k->topic, sizeof(k->topic), "%s", opts->topic ? opts->topic : TT_KAFKA_DEFAULT_TOPIC);
    if (k->topic[0] == '\0') {
        snprintf(err, errlen, "kafka.topic: is empty");
        tt_kafka_stop(k, 0);
        return NULL;
    }
    for (size_t i = 0; opts->props && i < opts->props->n; i++) {
        for (size_t r = 0; r < sizeof(required_props) / sizeof(required_props[0]); r++) {
            size_t kl = strlen(required_props[r].key);
            const char *kv = opts->props->v[i];
            if (strncmp(kv, required_props[r].key, kl) == 0 && kv[kl] == '=' &&
                strcmp(kv + kl + 1, required_props[r].value) != 0 &&
                strcmp(kv + kl + 1, required_props[r].also_ok) != 0) {
                snprintf(err, errlen, "kafka.%s: must be %s (no event may be lost or doubled "
                         "by a producer retry)", required_props[r].key, required_props[r].value);
                tt_kafka_stop(k, 0);
                return NULL;
            }
        }
    }
    char sizebuf[32];
    snprintf(sizebuf, sizeof(sizebuf), "%d", TT_KAFKA_MAX_UNACKED + 1000);
    /* Our defaults first, then kafka.* (which may override them), then the
     * settings the guarantee needs. */
    static const char *const defaults[][2] = {
        {"client.id", "tokentrail-collector"},
        /* Retry forever: a finite timeout would fail events during a long
         * outage and re-producing them later could reorder a token's events
         * (docs/kafka.md). The outbox cap bounds what waits. */
        {"message.timeout.ms", "0"},
        /* Java clients' partitioner: the same key lands on the same
         * partition whichever client produced it. */
        {"partitioner", "murmur2_random"},
        {"linger.ms", "5"},
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[512];
    int bad = conf == NULL;
    for (size_t i = 0; !bad && i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        bad = rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], why, sizeof(why)) !=
              RD_KAFKA_CONF_OK;
    }
    if (!bad && rd_kafka_conf_set(conf, "queue.buffering.max.messages", sizebuf, why,
                                  sizeof(why)) != RD_KAFKA_CONF_OK) {
        bad = 1;
    }
    if (bad) {
        snprintf(err, errlen, "kafka: cannot set a default: %s", conf ? why : "out of memory");
        rd_kafka_conf_destroy(conf);
        tt_kafka_stop(k, 0);
        return NULL;
    }
    if (rd_kafka_conf_set(conf, "compression.type", opts->compression ? opts->compression : "lz4",
                          why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "kafka.compression: %s", why);
        rd_kafka_conf_destroy(conf);
        tt_kafka_stop(k, 0);
        return NULL;
    }
    if (apply_user(conf, opts->brokers, opts->props, err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        tt_kafka_stop(k, 0);
        return NULL;
    }
    for (size_t r = 0; !bad && r < sizeof(required_props) / sizeof(required_props[0]); r++) {
        bad = rd_kafka_conf_set(conf, required_props[r].key, required_props[r].value, why,
                                sizeof(why)) != RD_KAFKA_CONF_OK;
        if (bad) {
            snprintf(err, errlen, "kafka.%s: %s", required_props[r].key, why);
        }
    }
    if (bad) {
        rd_kafka_conf_destroy(conf);
        tt_kafka_stop(k, 0);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_opaque(conf, k);
    k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (k->rk == NULL) {
        snprintf(err, errlen, "kafka: %s", why);
        rd_kafka_conf_destroy(conf);
        tt_kafka_stop(k, 0);
        return NULL;
    }
    conf = NULL; /* rd_kafka_new took it */
    k->rkt = rd_kafka_topic_new(k->rk, k->topic, NULL);
    if (k->rkt == NULL) {
        snprintf(err, errlen, "kafka.topic: '%s': %s", k->topic,
                 rd_kafka_err2str(rd_kafka_last_error()));
        tt_kafka_stop(k, 0);
        return NULL;
    }
    if (pthread_create(&k->relay, NULL, relay_main, k) != 0) {
        snprintf(err, errlen, "kafka: cannot start the relay thread");
        tt_kafka_stop(k, 0);
        return NULL;
    }
    k->started = 1;
    return k;
}

void tt_kafka_get_status(tt_kafka *k, tt_kafka_status *st)
{
    st->link = (tt_kafka_link)__atomic_load_n(&k->link, __ATOMIC_RELAXED);
    st->failed = __atomic_load_n(&k->fatal, __ATOMIC_ACQUIRE);
    st->outbox_events = tt_store_outbox_depth(k->store);
    int64_t oldest = st->outbox_events > 0 ? tt_store_outbox_oldest_ms(k->store) : 0;
    int64_t age = oldest > 0 ? tt_time_now_ms() - oldest : 0;
    st->oldest_age_ms = age > 0 ? age : 0;
    st->outbox_full = tt_store_outbox_full(k->store);
}

int tt_kafka_failed(tt_kafka *k, char *why, size_t n)
{
    if (!__atomic_load_n(&k->fatal, __ATOMIC_ACQUIRE)) {
        return 0;
    }
    snprintf(why, n, "%s", k->fatal_msg);
    return 1;
}

rd_kafka_t *tt_kafka_handle(tt_kafka *k)
{
    return k->rk;
}

void tt_kafka_render_metrics(tt_kafka *k, tt_buf *b)
{
    tt_kafka_status st;
    tt_kafka_get_status(k, &st);
    tt_metrics_family(b, "tokentrail_kafka_produced_total", "counter",
                      "Events handed to librdkafka (re-productions after errors count again).");
    tt_buf_printf(b, "tokentrail_kafka_produced_total %llu\n",
                  (unsigned long long)tt_counter_get(&k->produced));
    tt_metrics_family(b, "tokentrail_kafka_delivered_total", "counter",
                      "Events whose delivery report said the broker has them.");
    tt_buf_printf(b, "tokentrail_kafka_delivered_total %llu\n",
                  (unsigned long long)tt_counter_get(&k->delivered));
    tt_metrics_family(b, "tokentrail_kafka_delivery_errors_total", "counter",
                      "Failed deliveries and productions, by librdkafka error code; the events "
                      "stay in the outbox and are produced again.");
    pthread_mutex_lock(&k->emu);
    for (size_t i = 0; i < k->n_errs; i++) {
        tt_buf_printf(b, "tokentrail_kafka_delivery_errors_total{code=\"%s\"} %llu\n",
                      rd_kafka_err2name((rd_kafka_resp_err_t)k->errs[i].code),
                      (unsigned long long)k->errs[i].n);
    }
    if (k->errs_other > 0) {
        tt_buf_printf(b, "tokentrail_kafka_delivery_errors_total{code=\"other\"} %llu\n",
                      (unsigned long long)k->errs_other);
    }
    pthread_mutex_unlock(&k->emu);
    tt_metrics_family(b, "tokentrail_kafka_delivery_duration_seconds", "histogram",
                      "Time from producing an event to its successful delivery report.");
    tt_metrics_histogram(b, "tokentrail_kafka_delivery_duration_seconds", "",
                         &k->delivery_hist);
    tt_metrics_family(b, "tokentrail_kafka_in_flight_events", "gauge",
                      "Events produced and waiting for their delivery report.");
    tt_buf_printf(b, "tokentrail_kafka_in_flight_events %lld\n",
                  (long long)load64(&k->in_flight));
    tt_metrics_family(b, "tokentrail_kafka_up", "gauge",
                      "1 while the Kafka cluster is reachable, as far as the producer knows.");
    tt_buf_printf(b, "tokentrail_kafka_up %d\n", st.link == TT_KAFKA_UP);
    tt_metrics_family(b, "tokentrail_outbox_events", "gauge",
                      "Events committed locally and not yet delivered to Kafka.");
    tt_buf_printf(b, "tokentrail_outbox_events %lld\n", (long long)st.outbox_events);
    tt_metrics_family(b, "tokentrail_outbox_oldest_age_seconds", "gauge",
                      "Age of the oldest undelivered event (0 when the outbox is empty).");
    tt_buf_printf(b, "tokentrail_outbox_oldest_age_seconds %.3f\n", st.oldest_age_ms / 1000.0);
    tt_metrics_family(b, "tokentrail_outbox_full", "gauge",
                      "1 while the outbox is at kafka.outbox_max_events (ingest answers 503).");
    tt_buf_printf(b, "tokentrail_outbox_full %d\n", st.outbox_full);
}

int64_t tt_kafka_stop(tt_kafka *k, int64_t timeout_ms)
{
    if (k == NULL) {
        return 0;
    }
    if (k->started) {
        k->stop_deadline_ns = tt_time_mono_ns() + timeout_ms * 1000000;
        __atomic_store_n(&k->stopping, 1, __ATOMIC_RELEASE);
        pthread_join(k->relay, NULL);
    }
    int64_t left = 0;
    if (k->rk) {
        int outq = rd_kafka_outq_len(k->rk);
        if (outq > 0) {
            tt_debug("kafka: %d librdkafka requests still queued at shutdown", outq);
        }
    }
    if (k->started) {
        left = tt_store_outbox_depth(k->store);
        if (left > 0) {
            tt_warn("kafka: %lld events not delivered yet; they stay in the outbox and are "
                    "produced at the next start", (long long)left);
        } else {
            tt_info("kafka: every event delivered; outbox empty");
        }
    }
    if (k->rkt) {
        rd_kafka_topic_destroy(k->rkt);
    }
    if (k->rk) {
        rd_kafka_destroy(k->rk);
    }
    free(k->acks);
    pthread_mutex_destroy(&k->emu);
    free(k);
    return left;
}
