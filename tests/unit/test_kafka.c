/* test_kafka.c - the outbox and the Kafka relay, against librdkafka's mock
 * cluster (no real broker): delivery empties the outbox, a broker outage
 * fills it up to the cap (then writes are refused), recovery drains it, and
 * bad librdkafka properties are start-up errors naming the key. The real
 * broker tests are tests/integration/t_kafka_*.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "suites.h"
#include "tt_kafka.h"
#include "tt_log.h"
#include "tt_store.h"

static char dbpath[64];

static void fresh_db(void)
{
    snprintf(dbpath, sizeof(dbpath), "/tmp/tt_kafka_%d.db", (int)getpid());
    char side[80];
    unlink(dbpath);
    snprintf(side, sizeof(side), "%s-wal", dbpath);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", dbpath);
    unlink(side);
}

static int write_events(tt_store *s, int from, int n, char *err, size_t errlen)
{
    char ids[64][16], bodies[64][128];
    tt_store_row rows[64];
    ck_assert_int_le(n, 64);
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], sizeof(ids[i]), "e%d", from + i);
        snprintf(bodies[i], sizeof(bodies[i]), "{\"id\":\"e%d\"}", from + i);
        rows[i] = (tt_store_row){.source = "src", .id = ids[i], .type = "token.used",
                                 .token_id = (i % 2) ? "tok-a" : "tok-b",
                                 .time_ms = 1700000000000 + i, .body = bodies[i],
                                 .body_len = strlen(bodies[i])};
    }
    return tt_store_write(s, rows, (size_t)n, err, errlen);
}

/* Wait up to 15 s for the outbox to reach `depth`. */
static int wait_depth(tt_store *s, int64_t depth)
{
    for (int i = 0; i < 1500; i++) {
        if (tt_store_outbox_depth(s) == depth) {
            return 1;
        }
        usleep(10000);
    }
    return 0;
}

/* Creates the topic "unit" on the mock cluster. The relay thread is already
 * running: its first metadata request (the link probe, or producing restored
 * outbox rows) may auto-create the topic before we do, which under load made
 * these tests fail now and then with TOPIC_ALREADY_EXISTS. Either way the
 * topic exists afterwards, which is all the tests need. */
static void mock_topic(rd_kafka_mock_cluster_t *mc, int partitions)
{
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, "unit", partitions, 1);
    ck_assert_msg(e == RD_KAFKA_RESP_ERR_NO_ERROR || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS,
                  "mock topic: %s", rd_kafka_err2name(e));
}

static tt_strlist mock_props(void)
{
    tt_strlist l = {NULL, 0};
    tt_strlist_add(&l, "test.mock.num.brokers=1");
    tt_strlist_add(&l, "log_level=3"); /* the mock cluster is chatty */
    return l;
}

START_TEST(kafka_bad_property_names_key)
{
    fresh_db();
    char err[512];
    tt_store_opts so = {.outbox = 1};
    tt_store *s = tt_store_open(dbpath, &so, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    tt_strlist l = {NULL, 0};
    tt_strlist_add(&l, "no.such.property=1");
    tt_kafka_opts ko = {.brokers = "127.0.0.1:1", .props = &l};
    ck_assert_ptr_null(tt_kafka_start(&ko, s, err, sizeof(err)));
    ck_assert_msg(strstr(err, "kafka.no.such.property") != NULL, "%s", err);
    tt_strlist_free(&l);

    tt_strlist_add(&l, "acks=1");
    ck_assert_ptr_null(tt_kafka_start(&ko, s, err, sizeof(err)));
    ck_assert_msg(strstr(err, "kafka.acks: must be all") != NULL, "%s", err);
    tt_strlist_free(&l);

    tt_strlist_add(&l, "enable.idempotence=false");
    ck_assert_ptr_null(tt_kafka_start(&ko, s, err, sizeof(err)));
    ck_assert_msg(strstr(err, "kafka.enable.idempotence") != NULL, "%s", err);
    tt_strlist_free(&l);

    tt_kafka_opts bad_comp = {.brokers = "127.0.0.1:1", .compression = "rar"};
    ck_assert_ptr_null(tt_kafka_start(&bad_comp, s, err, sizeof(err)));
    ck_assert_msg(strstr(err, "kafka.compression") != NULL, "%s", err);

    tt_kafka_opts no_brokers = {.brokers = ""};
    ck_assert_ptr_null(tt_kafka_start(&no_brokers, s, err, sizeof(err)));
    ck_assert_msg(strstr(err, "kafka.brokers") != NULL, "%s", err);
    tt_store_close(s);
    unlink(dbpath);
}
END_TEST

START_TEST(kafka_embedded_store_keeps_no_outbox)
{
    fresh_db();
    char err[512];
    tt_store *s = tt_store_open(dbpath, NULL, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_int_eq(write_events(s, 0, 10, err, sizeof(err)), 0);
    ck_assert_int_eq(tt_store_outbox_depth(s), 0);
    ck_assert_int_eq(tt_store_outbox_last_seq(s), 0);
    tt_store_close(s);
    unlink(dbpath);
}
END_TEST

START_TEST(kafka_outbox_ack_and_restart)
{
    /* Without a relay: rows are queued with their events, acks delete them,
     * and what is left is found again after a reopen, in seq order. */
    fresh_db();
    char err[512];
    tt_store_opts so = {.outbox = 1, .outbox_max = 100};
    tt_store *s = tt_store_open(dbpath, &so, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_int_eq(write_events(s, 0, 10, err, sizeof(err)), 0);
    ck_assert_int_eq(write_events(s, 0, 10, err, sizeof(err)), 0); /* duplicates: no rows */
    ck_assert_int_eq(tt_store_outbox_depth(s), 10);
    ck_assert_int_eq(tt_store_outbox_last_seq(s), 10);
    int64_t acks[] = {3, 1, 2, 7};
    ck_assert_int_eq(tt_store_outbox_ack(s, acks, 4, 1), 0);
    ck_assert_int_eq(tt_store_outbox_depth(s), 6);
    ck_assert_int_eq(tt_store_outbox_acks_pending(s), 0);
    tt_store_close(s);

    s = tt_store_open(dbpath, &so, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_int_eq(tt_store_outbox_depth(s), 6);
    ck_assert(tt_store_outbox_oldest_ms(s) > 0);
    tt_store_close(s);
    unlink(dbpath);
}
END_TEST

typedef struct seen {
    int64_t seq[64];
    char key[64][16];
    int n;
} seen;

static int remember(void *ctx, const tt_outbox_row *r)
{
    seen *sn = ctx;
    sn->seq[sn->n] = r->seq;
    snprintf(sn->key[sn->n], sizeof(sn->key[0]), "%s", r->key ? r->key : "");
    sn->n++;
    return 0;
}

START_TEST(kafka_outbox_read_in_seq_order)
{
    fresh_db();
    char err[512];
    tt_store_opts so = {.outbox = 1};
    tt_store *s = tt_store_open(dbpath, &so, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_int_eq(write_events(s, 0, 8, err, sizeof(err)), 0);
    int64_t acks[] = {2, 5};
    ck_assert_int_eq(tt_store_outbox_ack(s, acks, 2, 1), 0);
    seen sn = {.n = 0};
    ck_assert_int_eq(tt_store_outbox_read(s, 0, 100, remember, &sn, err, sizeof(err)), 6);
    int64_t want[] = {1, 3, 4, 6, 7, 8};
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(sn.seq[i], want[i]);
    }
    ck_assert_str_eq(sn.key[0], "tok-b");
    sn.n = 0;
    ck_assert_int_eq(tt_store_outbox_read(s, 4, 2, remember, &sn, err, sizeof(err)), 2);
    ck_assert_int_eq(sn.seq[0], 6);
    ck_assert_int_eq(sn.seq[1], 7);
    tt_store_close(s);
    unlink(dbpath);
}
END_TEST

/* A store with an outbox and a relay to librdkafka's mock cluster (one
 * broker; topic "unit" with `parts` partitions): most relay tests start so. */
typedef struct rig {
    tt_store *s;
    tt_kafka *k;
    rd_kafka_mock_cluster_t *mc;
    tt_strlist l;
} rig;

static void rig_start(rig *r, int64_t outbox_max, int parts)
{
    fresh_db();
    char err[512];
    tt_store_opts so = {.outbox = 1, .outbox_max = outbox_max};
    r->s = tt_store_open(dbpath, &so, err, sizeof(err));
    ck_assert_msg(r->s != NULL, "%s", err);
    r->l = mock_props();
    tt_kafka_opts ko = {.brokers = "mock", .topic = "unit", .props = &r->l};
    r->k = tt_kafka_start(&ko, r->s, err, sizeof(err));
    ck_assert_msg(r->k != NULL, "%s", err);
    r->mc = rd_kafka_handle_mock_cluster(tt_kafka_handle(r->k));
    ck_assert_ptr_nonnull(r->mc);
    mock_topic(r->mc, parts);
}

/* Stop the relay (every event delivered), close and remove the store. */
static void rig_stop(rig *r)
{
    ck_assert_int_eq(tt_kafka_stop(r->k, 5000), 0);
    tt_store_close(r->s);
    tt_strlist_free(&r->l);
    unlink(dbpath);
}

START_TEST(kafka_mock_delivers_and_empties_outbox)
{
    rig r;
    rig_start(&r, 1000, 3);
    tt_store *s = r.s;
    tt_kafka *k = r.k;
    char err[512];
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(write_events(s, i * 50, 50, err, sizeof(err)), 0);
    }
    ck_assert_msg(wait_depth(s, 0), "outbox still holds %lld", (long long)tt_store_outbox_depth(s));
    tt_buf b;
    tt_buf_init(&b, 1 << 20);
    tt_kafka_render_metrics(k, &b);
    ck_assert_msg(strstr(b.data, "tokentrail_kafka_delivered_total 200\n") != NULL, "%s", b.data);
    ck_assert_msg(strstr(b.data, "tokentrail_outbox_events 0\n") != NULL, "%s", b.data);
    ck_assert_msg(strstr(b.data, "tokentrail_kafka_delivery_duration_seconds_count 200\n"), "%s",
                  b.data);
    tt_buf_free(&b);
    rig_stop(&r);
}
END_TEST

START_TEST(kafka_mock_outage_fills_outbox_to_cap_then_drains)
{
    rig r;
    rig_start(&r, 120, 2);
    tt_store *s = r.s;
    tt_kafka *k = r.k;
    rd_kafka_mock_cluster_t *mc = r.mc;
    char err[512];
    ck_assert_int_eq(write_events(s, 0, 10, err, sizeof(err)), 0);
    ck_assert(wait_depth(s, 0));

    /* Broker down: the collector keeps accepting into the outbox... */
    ck_assert_int_eq(rd_kafka_mock_broker_set_down(mc, 1), 0);
    for (int i = 1; i <= 2; i++) {
        ck_assert_int_eq(write_events(s, i * 60, 60, err, sizeof(err)), 0);
    }
    usleep(300000);
    ck_assert_int_eq(tt_store_outbox_depth(s), 120);
    ck_assert(tt_store_outbox_full(s));
    /* ...up to the cap; beyond it a write is refused whole. */
    ck_assert_int_eq(write_events(s, 500, 1, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, TT_STORE_OUTBOX_FULL) != NULL, "%s", err);
    tt_kafka_status st;
    tt_kafka_get_status(k, &st);
    ck_assert(st.outbox_full);
    ck_assert_int_eq(st.outbox_events, 120);

    /* Broker back: the backlog drains, and writes are taken again. */
    ck_assert_int_eq(rd_kafka_mock_broker_set_up(mc, 1), 0);
    ck_assert_msg(wait_depth(s, 0), "outbox still holds %lld", (long long)tt_store_outbox_depth(s));
    ck_assert_int_eq(write_events(s, 500, 1, err, sizeof(err)), 0);
    ck_assert(wait_depth(s, 0));
    tt_kafka_get_status(k, &st);
    ck_assert(!st.outbox_full);
    ck_assert_int_eq(st.link, TT_KAFKA_UP);
    rig_stop(&r);
}
END_TEST

START_TEST(kafka_mock_undelivered_survive_restart)
{
    /* Broker down at shutdown: the events stay in the outbox, and a new
     * relay delivers them. */
    fresh_db();
    char err[512];
    tt_store_opts so = {.outbox = 1};
    tt_store *s = tt_store_open(dbpath, &so, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    tt_strlist l = mock_props();
    tt_kafka_opts ko = {.brokers = "mock", .topic = "unit", .props = &l};
    tt_kafka *k = tt_kafka_start(&ko, s, err, sizeof(err));
    ck_assert_msg(k != NULL, "%s", err);
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(tt_kafka_handle(k));
    mock_topic(mc, 2);
    ck_assert_int_eq(rd_kafka_mock_broker_set_down(mc, 1), 0);
    ck_assert_int_eq(write_events(s, 0, 30, err, sizeof(err)), 0);
    ck_assert_int_eq(tt_kafka_stop(k, 300), 30);
    tt_store_close(s);

    s = tt_store_open(dbpath, &so, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_int_eq(tt_store_outbox_depth(s), 30);
    k = tt_kafka_start(&ko, s, err, sizeof(err));
    ck_assert_msg(k != NULL, "%s", err);
    mc = rd_kafka_handle_mock_cluster(tt_kafka_handle(k));
    mock_topic(mc, 2);
    ck_assert_msg(wait_depth(s, 0), "outbox still holds %lld", (long long)tt_store_outbox_depth(s));
    ck_assert_int_eq(tt_kafka_stop(k, 5000), 0);
    tt_store_close(s);
    tt_strlist_free(&l);
    unlink(dbpath);
}
END_TEST

/* Regressions: kafka.partitioner passed through (random breaks per-key
 * order); kafka.* aliases of our own keys silently overrode them; an illegal
 * topic started and failed every delivery; kafka.brokers "" ran without
 * Kafka. All are start-up errors naming the key(s). */
START_TEST(kafka_start_up_checks)
{
    char err[512];
    struct {
        const char *brokers, *topic, *prop, *want;
    } bad[] = {
        {"h:1", NULL, "partitioner=random", "kafka.partitioner: must be murmur2_random"},
        {"h:1", NULL, "partitioner=consistent", "kafka.partitioner: must be murmur2_random"},
        {"h:1", NULL, "bootstrap.servers=x:1",
         "kafka.bootstrap.servers: an alias of kafka.brokers"},
        {"h:1", NULL, "metadata.broker.list=x:1",
         "kafka.metadata.broker.list: an alias of kafka.brokers"},
        {NULL, NULL, "bootstrap.servers=x:1",
         "kafka.bootstrap.servers: an alias of kafka.brokers"},
        {"h:1", NULL, "compression.type=gzip",
         "kafka.compression.type: an alias of kafka.compression"},
        {"h:1", NULL, "compression.codec=gzip",
         "kafka.compression.codec: an alias of kafka.compression"},
        {"h:1", "bad topic name!", NULL, "kafka.topic: 'bad topic name!' is not a legal"},
        {"h:1", "", NULL, "kafka.topic: is empty"},
        {"h:1", ".", NULL, "kafka.topic: '.' is not a legal"},
        {"h:1", "..", NULL, "kafka.topic: '..' is not a legal"},
        {"h:1", "t\xc3\xa9", NULL, "kafka.topic:"},
        {"", NULL, NULL, "kafka.brokers: is empty"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tt_strlist l = {NULL, 0};
        if (bad[i].prop) {
            tt_strlist_add(&l, bad[i].prop);
        }
        tt_kafka_opts ko = {.brokers = bad[i].brokers, .topic = bad[i].topic, .props = &l};
        err[0] = '\0';
        ck_assert_msg(tt_kafka_check_opts(&ko, err, sizeof(err)) == -1, "case %zu accepted", i);
        ck_assert_msg(strstr(err, bad[i].want) != NULL, "case %zu: %s", i, err);
        tt_strlist_free(&l);
    }
    char long_topic[251];
    memset(long_topic, 'a', sizeof(long_topic) - 1);
    long_topic[250] = '\0';
    tt_kafka_opts ko = {.brokers = "h:1", .topic = long_topic};
    ck_assert_int_eq(tt_kafka_check_opts(&ko, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "kafka.topic: 250 characters") != NULL, "%s", err);
    long_topic[249] = '\0';
    ck_assert_int_eq(tt_kafka_check_opts(&ko, err, sizeof(err)), 0);

    tt_strlist l = {NULL, 0};
    tt_strlist_add(&l, "partitioner=murmur2_random");
    tt_strlist_add(&l, "acks=-1");
    tt_strlist_add(&l, "security.protocol=plaintext");
    tt_kafka_opts ok = {.brokers = "h:1", .topic = "Tt.events_2-x", .props = &l};
    ck_assert_msg(tt_kafka_check_opts(&ok, err, sizeof(err)) == 0, "%s", err);
    tt_kafka_opts off = {.brokers = NULL, .props = &l};
    ck_assert_msg(tt_kafka_check_opts(&off, err, sizeof(err)) == 0, "%s", err);
    tt_strlist_free(&l);

    /* tt_kafka_start applies the same checks. */
    fresh_db();
    tt_store_opts so = {.outbox = 1};
    tt_store *s = tt_store_open(dbpath, &so, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    tt_strlist_add(&l, "partitioner=random");
    tt_kafka_opts rnd = {.brokers = "127.0.0.1:1", .props = &l};
    ck_assert_ptr_null(tt_kafka_start(&rnd, s, err, sizeof(err)));
    ck_assert_msg(strstr(err, "kafka.partitioner") != NULL, "%s", err);
    tt_strlist_free(&l);
    tt_kafka_opts topic = {.brokers = "127.0.0.1:1", .topic = "bad topic name!"};
    ck_assert_ptr_null(tt_kafka_start(&topic, s, err, sizeof(err)));
    ck_assert_msg(strstr(err, "kafka.topic") != NULL, "%s", err);
    tt_store_close(s);
    unlink(dbpath);
}
END_TEST

static int metric_has(tt_kafka *k, const char *line)
{
    tt_buf b;
    tt_buf_init(&b, 1 << 20);
    tt_kafka_render_metrics(k, &b);
    int found = strstr(b.data, line) != NULL;
    tt_buf_free(&b);
    return found;
}

/* The value of the sample named exactly `name` (with its labels), or -1. */
static long long metric_value(tt_kafka *k, const char *name)
{
    tt_buf b;
    tt_buf_init(&b, 1 << 20);
    tt_kafka_render_metrics(k, &b);
    long long v = -1;
    size_t nl = strlen(name);
    for (const char *p = b.data; p != NULL && *p;) {
        if (strncmp(p, name, nl) == 0 && p[nl] == ' ') {
            v = strtoll(p + nl + 1, NULL, 10);
            break;
        }
        const char *nl_at = strchr(p, '\n');
        p = nl_at ? nl_at + 1 : NULL;
    }
    tt_buf_free(&b);
    return v;
}

/* Wait up to 15 s for `line` in the metrics. */
static int wait_metric(tt_kafka *k, const char *line)
{
    for (int i = 0; i < 1500; i++) {
        if (metric_has(k, line)) {
            return 1;
        }
        usleep(10000);
    }
    return 0;
}

/* Regression: an event the broker rejects for good (here INVALID_TIMESTAMP,
 * twice: in its batch, then alone) blocked the outbox forever. It is now a
 * dead letter and the events after it are delivered. */
START_TEST(kafka_mock_permanent_error_dead_letters_the_event)
{
    rig r;
    rig_start(&r, 1000, 1);
    tt_store *s = r.s;
    tt_kafka *k = r.k;
    rd_kafka_mock_cluster_t *mc = r.mc;
    char err[512];
    ck_assert_int_eq(write_events(s, 0, 2, err, sizeof(err)), 0);
    ck_assert(wait_depth(s, 0));
    rd_kafka_mock_push_request_errors(mc, 0 /* Produce */, 2, RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP,
                                      RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP);
    ck_assert_int_eq(write_events(s, 10, 1, err, sizeof(err)), 0);
    ck_assert_msg(wait_depth(s, 0), "outbox still holds %lld", (long long)tt_store_outbox_depth(s));
    ck_assert_int_eq(tt_store_outbox_dead_count(s), 1);
    ck_assert(wait_metric(k, "tokentrail_kafka_dead_letter_total{code=\"INVALID_TIMESTAMP\"} 1\n"));
    ck_assert(metric_has(k, "tokentrail_outbox_dead_events 1\n"));
    /* Delivery goes on. */
    ck_assert_int_eq(write_events(s, 20, 20, err, sizeof(err)), 0);
    ck_assert_msg(wait_depth(s, 0), "outbox still holds %lld", (long long)tt_store_outbox_depth(s));
    ck_assert(wait_metric(k, "tokentrail_kafka_delivered_total 22\n"));
    ck_assert_int_eq(tt_store_outbox_dead_count(s), 1);
    rig_stop(&r);
}
END_TEST

/* A permanent error fails a whole batch: the events of the batch are produced
 * again one at a time, and the ones that then go through are delivered, not
 * dead-lettered. */
START_TEST(kafka_mock_batch_error_spares_the_good_events)
{
    rig r;
    rig_start(&r, 1000, 1);
    tt_store *s = r.s;
    tt_kafka *k = r.k;
    rd_kafka_mock_cluster_t *mc = r.mc;
    char err[512];
    ck_assert_int_eq(write_events(s, 0, 1, err, sizeof(err)), 0);
    ck_assert(wait_depth(s, 0));
    rd_kafka_mock_push_request_errors(mc, 0 /* Produce */, 1, RD_KAFKA_RESP_ERR_INVALID_RECORD);
    ck_assert_int_eq(write_events(s, 10, 30, err, sizeof(err)), 0);
    ck_assert_msg(wait_depth(s, 0), "outbox still holds %lld", (long long)tt_store_outbox_depth(s));
    ck_assert(wait_metric(k, "tokentrail_kafka_delivered_total 31\n"));
    ck_assert_int_eq(tt_store_outbox_dead_count(s), 0);
    /* The events of the failed batch (all 30, or fewer when the relay or
     * librdkafka split them into more than one request) were produced again
     * exactly once each: 31 first productions plus one per failed delivery. */
    long long failed =
        metric_value(k, "tokentrail_kafka_delivery_errors_total{code=\"INVALID_RECORD\"}");
    ck_assert_msg(failed >= 1 && failed <= 30, "%lld failed deliveries", failed);
    long long produced = metric_value(k, "tokentrail_kafka_produced_total");
    ck_assert_msg(produced == 31 + failed, "produced %lld, failed %lld", produced, failed);
    rig_stop(&r);
}
END_TEST

/* Retriable errors keep the old behaviour: produced again, nothing dead. */
START_TEST(kafka_mock_retriable_error_is_not_dead_lettered)
{
    rig r;
    rig_start(&r, 1000, 1);
    tt_store *s = r.s;
    tt_kafka *k = r.k;
    rd_kafka_mock_cluster_t *mc = r.mc;
    char err[512];
    ck_assert_int_eq(write_events(s, 0, 1, err, sizeof(err)), 0);
    ck_assert(wait_depth(s, 0));
    /* Permanent for librdkafka, but not the message's fault. */
    rd_kafka_mock_push_request_errors(mc, 0 /* Produce */, 2,
                                      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                                      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    ck_assert_int_eq(write_events(s, 10, 5, err, sizeof(err)), 0);
    ck_assert_msg(wait_depth(s, 0), "outbox still holds %lld", (long long)tt_store_outbox_depth(s));
    ck_assert_int_eq(tt_store_outbox_dead_count(s), 0);
    ck_assert(metric_has(
        k, "tokentrail_kafka_delivery_errors_total{code=\"TOPIC_AUTHORIZATION_FAILED\"}"));
    rig_stop(&r);
}
END_TEST

Suite *tt_kafka_suite(void)
{
    Suite *s = suite_create("kafka");
    TCase *tc = tcase_create("outbox");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, kafka_bad_property_names_key);
    tcase_add_test(tc, kafka_embedded_store_keeps_no_outbox);
    tcase_add_test(tc, kafka_outbox_ack_and_restart);
    tcase_add_test(tc, kafka_outbox_read_in_seq_order);
    tcase_add_test(tc, kafka_mock_delivers_and_empties_outbox);
    tcase_add_test(tc, kafka_mock_outage_fills_outbox_to_cap_then_drains);
    tcase_add_test(tc, kafka_mock_undelivered_survive_restart);
    tcase_add_test(tc, kafka_start_up_checks);
    tcase_add_test(tc, kafka_mock_permanent_error_dead_letters_the_event);
    tcase_add_test(tc, kafka_mock_batch_error_spares_the_good_events);
    tcase_add_test(tc, kafka_mock_retriable_error_is_not_dead_lettered);
    suite_add_tcase(s, tc);
    return s;
}
