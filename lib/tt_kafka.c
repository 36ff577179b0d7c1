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
    const char *why;
} required_props[] = {
    {"enable.idempotence", "true", "true",
     "no event may be lost or doubled by a producer retry"},
    {"acks", "all", "-1", "no event may be lost or doubled by a producer retry"},
    /* A key must always map to the same partition, or its events lose their
     * order (and the Java clients' mapping, which consumers may rely on). */
    {"partitioner", "murmur2_random", "murmur2_random",
     "a key must always land on the same partition, or its events lose their order"},
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
    int rewind_waits;          /* ... after the backoff (a retriable error) */
    int64_t rewind_to;
    int64_t retry_at_ns;
    /* Dead letters. A permanent per-message error fails the whole batch the
     * message was in (librdkafka 2.0 has no per-record errors), so it does
     * not say which event is bad: the failed events up to suspect_hi are
     * produced again one at a time (isolate_until), and an event that fails
     * alone is the bad one. */
    int64_t suspect_hi;        /* highest seq failed by a permanent error */
    int64_t isolate_until;     /* produce one at a time while cursor < this */
    int64_t alone_seq;         /* the event produced alone, awaiting its report */
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
    err_count dead[TT_KAFKA_MAX_ERROR_CODES];  /* dead letters by code (emu) */
    size_t n_dead;
    uint64_t dead_other;
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

int tt_kafka_topic_check(const char *topic, char *err, size_t errlen)
{
    size_t n = topic ? strlen(topic) : 0;
    if (n == 0) {
        snprintf(err, errlen, "kafka.topic: is empty");
        return -1;
    }
    if (n > TT_KAFKA_MAX_TOPIC_LEN) {
        snprintf(err, errlen, "kafka.topic: %zu characters; Kafka allows at most %d", n,
                 TT_KAFKA_MAX_TOPIC_LEN);
        return -1;
    }
    if (strcmp(topic, ".") == 0 || strcmp(topic, "..") == 0) {
        snprintf(err, errlen, "kafka.topic: '%s' is not a legal Kafka topic name", topic);
        return -1;
    }
    size_t bad = strspn(topic, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789._-");
    if (bad < n) {
        snprintf(err, errlen, "kafka.topic: '%.64s' is not a legal Kafka topic name (character "
                 "%zu; use only a-z, A-Z, 0-9, '.', '_' and '-')", topic, bad + 1);
        return -1;
    }
    return 0;
}

/* The value of `key` in props ("key=value" pairs), or NULL. The last one
 * wins, as it would in librdkafka. */
static const char *prop_value(const tt_strlist *props, const char *key)
{
    const char *v = NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; props && i < props->n; i++) {
        if (strncmp(props->v[i], key, kl) == 0 && props->v[i][kl] == '=') {
            v = props->v[i] + kl + 1;
        }
    }
    return v;
}

/* librdkafka names for settings tokentrail has a key of its own for: set
 * beside (or instead of) ours they would silently win, since kafka.* is
 * applied last. */
static const struct {
    const char *alias;
    const char *ours;
} aliased_props[] = {
    {"bootstrap.servers", "kafka.brokers"},
    {"metadata.broker.list", "kafka.brokers"},
    {"compression.type", "kafka.compression"},
    {"compression.codec", "kafka.compression"},
};

int tt_kafka_check_opts(const tt_kafka_opts *opts, char *err, size_t errlen)
{
    const tt_strlist *props = opts->props;
    for (size_t a = 0; a < sizeof(aliased_props) / sizeof(aliased_props[0]); a++) {
        if (prop_value(props, aliased_props[a].alias) != NULL) {
            snprintf(err, errlen, "kafka.%s: an alias of %s, which tokentrail sets itself; "
                     "set %s only", aliased_props[a].alias, aliased_props[a].ours,
                     aliased_props[a].ours);
            return -1;
        }
    }
    if (opts->brokers == NULL) {
        return 0; /* Kafka off: nothing else applies */
    }
    if (opts->brokers[0] == '\0') {
        snprintf(err, errlen, "kafka.brokers: is empty");
        return -1;
    }
    if (tt_kafka_topic_check(opts->topic ? opts->topic : TT_KAFKA_DEFAULT_TOPIC, err, errlen) !=
        0) {
        return -1;
    }
    for (size_t r = 0; r < sizeof(required_props) / sizeof(required_props[0]); r++) {
        const char *v = prop_value(props, required_props[r].key);
        if (v != NULL && strcmp(v, required_props[r].value) != 0 &&
            strcmp(v, required_props[r].also_ok) != 0) {
            snprintf(err, errlen, "kafka.%s: must be %s (%s)", required_props[r].key,
                     required_props[r].value, required_props[r].why);
            return -1;
        }
    }
    return 0;
}

/* One more of `code` in a table of counts by error code (k->emu held). */
static void count_code(err_count *tab, size_t *n, uint64_t *other, rd_kafka_resp_err_t code)
{
    size_t i = 0;
    while (i < *n && tab[i].code != (int)code) {
        i++;
    }
    if (i == *n && *n < TT_KAFKA_MAX_ERROR_CODES) {
        tab[(*n)++] = (err_count){(int)code, 0};
    }
    if (i < *n) {
        tab[i].n++;
    } else {
        (*other)++;
    }
}

static void count_error(tt_kafka *k, rd_kafka_resp_err_t code)
{
    pthread_mutex_lock(&k->emu);
    count_code(k->errs, &k->n_errs, &k->errs_other, code);
    pthread_mutex_unlock(&k->emu);
}

/* Errors that condemn one message and that no retry can fix: librdkafka
 * fails them at once (not retriable) and the broker would reject the same
 * bytes again. Errors that concern the cluster, the topic or the producer
 * (authorisation, unknown topic, timeouts, ...) are not here: they are
 * retried, since every other event would fail the same way. */
int tt_kafka_err_is_per_message(rd_kafka_resp_err_t err)
{
    switch (err) {
    /* The broker's max.message.bytes, and (from rd_kafka_producev) the
     * client's message.max.bytes. */
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:        /* message.timestamp.*.max.ms */
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:           /* e.g. broker-side validation */
    /* Not INVALID_MSG (Kafka's CORRUPT_MESSAGE): a CRC mismatch on the wire,
     * which Kafka itself retries; a good event must not be given up on. */
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        return 1;
    default:
        return 0;
    }
}

/* Give up on one event for good (relay thread): count it, log it once, and
 * have the store move it from the outbox to outbox_dead. */
static void dead_letter(tt_kafka *k, int64_t seq, const char *source, const char *id,
                        rd_kafka_resp_err_t err)
{
    pthread_mutex_lock(&k->emu);
    count_code(k->dead, &k->n_dead, &k->dead_other, err);
    pthread_mutex_unlock(&k->emu);
    tt_error("kafka: event %s (source %s, seq %lld) rejected for good: %s (%s); moved from the "
             "outbox to outbox_dead, delivery of the others goes on", id ? id : "?",
             source ? source : "?", (long long)seq, rd_kafka_err2name(err),
             rd_kafka_err2str(err));
    if (tt_store_outbox_dead(k->store, seq, rd_kafka_err2name(err)) != 0) {
        tt_warn("kafka: event seq %lld could not be moved to outbox_dead; it is produced again "
                "at the next start", (long long)seq);
    }
}

/* Something failed for the event with this seq: after everything in flight
 * has reported, start producing again from there (relay thread). With wait
 * (a retriable error) only after the backoff; a permanent error in a batch
 * is looked into at once (the events are produced one at a time). */
static void schedule_rewind(tt_kafka *k, int64_t seq, int wait)
{
    if (!k->rewind || seq - 1 < k->rewind_to) {
        k->rewind_to = seq - 1;
    }
    if (!k->rewind) {
        k->rewind = 1;
        k->rewind_waits = 0;
        k->retry_at_ns = tt_time_mono_ns();
    }
    if (wait && !k->rewind_waits) {
        k->rewind_waits = 1;
        k->retry_at_ns = tt_time_mono_ns() + k->backoff_ms * 1000000;
        k->backoff_ms = k->backoff_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : k->backoff_ms * 2;
    }
}

/* The value of header `name` of a produced message, NUL-terminated in buf. */
static const char *msg_header(const rd_kafka_message_t *m, const char *name, char *buf, size_t n)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *v = NULL;
    size_t len = 0;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(hdrs, name, &v, &len) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        v == NULL) {
        return NULL;
    }
    snprintf(buf, n, "%.*s", (int)(len < n ? len : n - 1), (const char *)v);
    return buf;
}

/* Delivery report, served by rd_kafka_poll/flush in the relay thread. */
static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    tt_kafka *k = opaque;
    int64_t seq = (int64_t)(intptr_t)m->_private;
    __atomic_fetch_sub(&k->in_flight, 1, __ATOMIC_RELAXED);
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (seq == k->alone_seq) {
            k->alone_seq = 0;
        }
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
    int alone = seq == k->alone_seq;
    if (alone) {
        k->alone_seq = 0;
    }
    if (tt_kafka_err_is_per_message(m->err)) {
        if (alone) {
            /* It failed in a batch of its own: this event is the bad one. */
            char id[256], source[256];
            dead_letter(k, seq, msg_header(m, "ce_source", source, sizeof(source)),
                        msg_header(m, "ce_id", id, sizeof(id)), m->err);
            return;
        }
        if (!k->rewind) {
            int size = m->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
                       m->err == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
            tt_warn("kafka: delivery of event seq %lld failed: %s; that error condemns one "
                    "message of its batch: producing the failed events again one at a time%s",
                    (long long)seq, rd_kafka_err2str(m->err),
                    size ? " (if none is too large alone, the batch was: the topic's "
                           "max.message.bytes is below the producer's batch size; set "
                           "kafka.batch.size below it, or delivery crawls one event at a time)"
                         : "");
        }
        if (seq > k->suspect_hi) {
            k->suspect_hi = seq;
        }
        schedule_rewind(k, seq, 0);
        return;
    }
    if (!k->rewind) {
        tt_warn("kafka: delivery of event seq %lld failed: %s; it stays in the outbox and is "
                "produced again", (long long)seq, rd_kafka_err2str(m->err));
    }
    schedule_rewind(k, seq, 1);
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
            if (k->cursor < k->isolate_until) {
                k->alone_seq = r->seq;
            }
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
        if (tt_kafka_err_is_per_message(e)) {
            /* librdkafka refused this message itself (e.g. over
             * message.max.bytes): no batch involved, it is the bad one. */
            dead_letter(k, r->seq, r->source, r->id, e);
            k->cursor = r->seq;
            return 0;
        }
        tt_warn("kafka: cannot produce event seq %lld: %s; it stays in the outbox",
                (long long)r->seq, rd_kafka_err2str(e));
        schedule_rewind(k, r->seq, 1);
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
    if (k->cursor < k->isolate_until) {
        /* Looking for the event a permanent error was about: one at a time,
         * each in a batch of its own, the next only after its report. */
        if (load64(&k->in_flight) > 0) {
            return 0;
        }
        room = 1;
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
            if (k->suspect_hi > k->isolate_until) {
                k->isolate_until = k->suspect_hi;
            }
            k->suspect_hi = 0;
            if (k->isolate_until > k->rewind_to) {
                tt_info("kafka: producing the outbox again from seq %lld (one at a time up to "
                        "seq %lld)", (long long)k->rewind_to + 1, (long long)k->isolate_until);
            } else {
                tt_info("kafka: producing the outbox again from seq %lld",
                        (long long)k->rewind_to + 1);
            }
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
    if (opts->brokers == NULL) {
        snprintf(err, errlen, "kafka.brokers: is empty");
        tt_kafka_stop(k, 0);
        return NULL;
    }
    if (tt_kafka_check_opts(opts, err, errlen) != 0) {
        tt_kafka_stop(k, 0);
        return NULL;
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
    int64_t dead = tt_store_outbox_dead_count(store);
    if (dead > 0) {
        tt_warn("kafka: %lld events in outbox_dead were rejected by Kafka for good and are not "
                "produced (docs/kafka.md, dead letters)", (long long)dead);
    }
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
                      "are produced again, or dead-lettered when the error condemns them.");
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
    tt_metrics_family(b, "tokentrail_kafka_dead_letter_total", "counter",
                      "Events Kafka rejected for good, by librdkafka error code; moved from the "
                      "outbox to outbox_dead.");
    for (size_t i = 0; i < k->n_dead; i++) {
        tt_buf_printf(b, "tokentrail_kafka_dead_letter_total{code=\"%s\"} %llu\n",
                      rd_kafka_err2name((rd_kafka_resp_err_t)k->dead[i].code),
                      (unsigned long long)k->dead[i].n);
    }
    if (k->dead_other > 0) {
        tt_buf_printf(b, "tokentrail_kafka_dead_letter_total{code=\"other\"} %llu\n",
                      (unsigned long long)k->dead_other);
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
                      "1 while the outbox is at kafka.outbox_max_events (new events get 503).");
    tt_buf_printf(b, "tokentrail_outbox_full %d\n", st.outbox_full);
    tt_metrics_family(b, "tokentrail_outbox_dead_events", "gauge",
                      "Events Kafka rejected for good, kept in outbox_dead (dead letters).");
    tt_buf_printf(b, "tokentrail_outbox_dead_events %lld\n",
                  (long long)tt_store_outbox_dead_count(k->store));
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
