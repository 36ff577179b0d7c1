/* findings_out.c - produce new findings to Kafka with librdkafka: delivery
 * reports counted, idempotence and acks=all enforced, flush on close. */
#include "findings_out.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "tt_finding.h"
#include "tt_kafka.h"
#include "tt_log.h"
#include "tt_time.h"

struct tt_findings_out {
    rd_kafka_t *rk;
    char topic[256];
    uint64_t delivered, failed; /* from dr_msg_cb (this thread, inside rd_kafka_poll) */
    int fatal;
    char last_err[256];
};

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    tt_findings_out *o = opaque;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        o->delivered++;
    } else {
        o->failed++;
        snprintf(o->last_err, sizeof(o->last_err), "%s", rd_kafka_err2str(m->err));
    }
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    tt_findings_out *o = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        o->fatal = 1;
        snprintf(o->last_err, sizeof(o->last_err), "fatal: %s", reason);
    }
    tt_warn("kafka findings producer: %s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

tt_findings_out *tt_findings_out_new(const char *brokers, const char *topic,
                                     const tt_strlist *props, char *err, size_t errlen)
{
    tt_findings_out *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(o->topic, sizeof(o->topic), "%s", topic ? topic : TT_FINDINGS_DEFAULT_TOPIC);
    rd_kafka_conf_t *conf = tt_kafka_conf_new(brokers, props, err, errlen);
    /* After the kafka.* properties: the no-loss, no-duplicate guarantee. */
    if (conf == NULL || tt_kafka_conf_set(conf, "enable.idempotence", "true", err, errlen) != 0 ||
        tt_kafka_conf_set(conf, "acks", "all", err, errlen) != 0 ||
        tt_kafka_conf_set(conf, "partitioner", "murmur2_random", err, errlen) != 0 ||
        tt_kafka_conf_set(conf, "client.id", "tokentrail-analyzer", err, errlen) != 0) {
        if (conf) {
            rd_kafka_conf_destroy(conf);
        }
        free(o);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_opaque(conf, o);
    char why[512];
    o->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (o->rk == NULL) {
        snprintf(err, errlen, "kafka: %s", why);
        rd_kafka_conf_destroy(conf);
        free(o);
        return NULL;
    }
    return o; /* conf belongs to librdkafka now */
}

int tt_findings_out_send(tt_findings_out *o, tt_finding_row **rows, size_t n, int64_t timeout_ms,
                         char *err, size_t errlen)
{
    uint64_t want = o->delivered + o->failed + n, failed0 = o->failed;
    int64_t deadline = tt_time_mono_ns() + timeout_ms * 1000000;
    for (size_t i = 0; i < n && !o->fatal; i++) {
        const tt_finding_row *r = rows[i];
        const char *key = r->token_id ? r->token_id : r->incident_id;
        const char *kind = tt_finding_kind_name(r->kind);
        for (;;) {
            rd_kafka_resp_err_t e = rd_kafka_producev(
                o->rk, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                RD_KAFKA_V_VALUE(r->json, strlen(r->json)),
                RD_KAFKA_V_HEADER("content-type", "application/json", -1),
                RD_KAFKA_V_HEADER("finding_kind", kind, -1),
                RD_KAFKA_V_HEADER("finding_id", r->id, -1), RD_KAFKA_V_TIMESTAMP(r->time_ms),
                RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
                break;
            }
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || tt_time_mono_ns() > deadline) {
                snprintf(err, errlen, "kafka: producing finding %s to %s: %s", r->id, o->topic,
                         rd_kafka_err2str(e));
                o->failed++;
                return -1;
            }
            rd_kafka_poll(o->rk, 100); /* bounded wait for room */
        }
        rd_kafka_poll(o->rk, 0);
    }
    while (o->delivered + o->failed < want && !o->fatal && tt_time_mono_ns() < deadline) {
        rd_kafka_poll(o->rk, 50);
    }
    if (o->fatal || o->failed != failed0 || o->delivered + o->failed < want) {
        snprintf(err, errlen, "kafka: findings to %s: %s", o->topic,
                 o->delivered + o->failed < want ? "no delivery report in time" : o->last_err);
        return -1;
    }
    return 0;
}

void tt_findings_out_counts(const tt_findings_out *o, uint64_t *delivered, uint64_t *failed)
{
    *delivered = o ? o->delivered : 0;
    *failed = o ? o->failed : 0;
}

int tt_findings_out_close(tt_findings_out *o, int64_t timeout_ms)
{
    if (o == NULL) {
        return 0;
    }
    rd_kafka_flush(o->rk, (int)timeout_ms);
    int left = rd_kafka_outq_len(o->rk);
    if (left > 0) {
        tt_error("kafka: %d findings not delivered to %s at shutdown (they are in the findings "
                 "table)",
                 left, o->topic);
    }
    rd_kafka_destroy(o->rk);
    free(o);
    return left;
}
