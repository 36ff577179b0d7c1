/* tt_kafka_read.c - one pass over a topic with librdkafka's consumer: find the
 * partitions, their watermarks and (with a start time) offsets-for-times,
 * assign them directly (no group join, no offset commit), and consume until
 * every partition reached the high watermark captured at the start. */
#include "tt_kafka_read.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "tt_kafka.h"
#include "tt_time.h"

typedef struct part_range {
    int32_t id;
    int64_t start, end;        /* [start, end): end is the high watermark */
    int done;
} part_range;

/* Partition ids and ranges of the topic; returns the count or -1. */
static int find_ranges(rd_kafka_t *rk, const tt_kafka_read_opts *o, part_range *parts,
                       char *err, size_t errlen)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o->topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rkt ? rd_kafka_metadata(rk, 0, rkt, &md, (int)o->timeout_ms)
                                : rd_kafka_last_error();
    if (rkt) {
        rd_kafka_topic_destroy(rkt);
    }
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "kafka: cannot read metadata of topic '%s' from %s: %s", o->topic,
                 o->brokers, rd_kafka_err2str(e));
        return -1;
    }
    int n = -1;
    if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "kafka: topic '%s': %s", o->topic,
                 md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err) : "not found");
    } else if (md->topics[0].partition_cnt > TT_KAFKA_READ_MAX_PARTITIONS) {
        snprintf(err, errlen, "kafka: topic '%s' has more than %d partitions", o->topic,
                 TT_KAFKA_READ_MAX_PARTITIONS);
    } else {
        n = md->topics[0].partition_cnt;
        for (int i = 0; i < n; i++) {
            parts[i] = (part_range){.id = md->topics[0].partitions[i].id};
        }
    }
    rd_kafka_metadata_destroy(md);
    for (int i = 0; i < n; i++) {
        e = rd_kafka_query_watermark_offsets(rk, o->topic, parts[i].id, &parts[i].start,
                                             &parts[i].end, (int)o->timeout_ms);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(err, errlen, "kafka: watermarks of %s [%d]: %s", o->topic, parts[i].id,
                     rd_kafka_err2str(e));
            return -1;
        }
    }
    if (n > 0 && o->since_ms != INT64_MIN) {
        /* The earliest offset with timestamp >= since-1 ms: every message
         * before it has a smaller timestamp (Kafka's time index lookup). */
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
        for (int i = 0; i < n; i++) {
            rd_kafka_topic_partition_list_add(l, o->topic, parts[i].id)->offset =
                o->since_ms > 0 ? o->since_ms - 1 : 0;
        }
        e = rd_kafka_offsets_for_times(rk, l, (int)o->timeout_ms);
        for (int i = 0; e == RD_KAFKA_RESP_ERR_NO_ERROR && i < l->cnt; i++) {
            for (int j = 0; j < n; j++) {
                if (parts[j].id == l->elems[i].partition) {
                    /* -1: no message that late, nothing to read there. */
                    parts[j].start = l->elems[i].offset < 0 ? parts[j].end : l->elems[i].offset;
                }
            }
        }
        rd_kafka_topic_partition_list_destroy(l);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(err, errlen, "kafka: offsets for times on %s: %s", o->topic,
                     rd_kafka_err2str(e));
            return -1;
        }
    }
    return n;
}

int64_t tt_kafka_read(const tt_kafka_read_opts *o, int (*cb)(void *ctx, const tt_kafka_msg *m),
                      void *ctx, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = tt_kafka_conf_new(o->brokers, o->props, err, errlen);
    if (conf == NULL) {
        return -1;
    }
    char group[64];
    snprintf(group, sizeof(group), "tokentrail-events-%d", (int)getpid());
    /* A group id is needed by the consumer API, but partitions are assigned
     * directly: the group is never joined and no offset is ever committed. */
    if (tt_kafka_conf_set(conf, "group.id", group, err, errlen) != 0 ||
        tt_kafka_conf_set(conf, "enable.auto.commit", "false", err, errlen) != 0 ||
        tt_kafka_conf_set(conf, "enable.auto.offset.store", "false", err, errlen) != 0 ||
        tt_kafka_conf_set(conf, "enable.partition.eof", "true", err, errlen) != 0 ||
        tt_kafka_conf_set(conf, "allow.auto.create.topics", "false", err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (rk == NULL) {
        snprintf(err, errlen, "kafka: %s", why);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    conf = NULL; /* rd_kafka_new took it */
    part_range *parts = calloc(TT_KAFKA_READ_MAX_PARTITIONS, sizeof(*parts));
    int np = parts ? find_ranges(rk, o, parts, err, errlen) : -1;
    if (parts == NULL) {
        snprintf(err, errlen, "out of memory");
    }
    int64_t visited = np < 0 ? -1 : 0;
    int left = 0;
    if (np > 0) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
        for (int i = 0; i < np; i++) {
            if (parts[i].start >= parts[i].end) {
                parts[i].done = 1;
                continue;
            }
            rd_kafka_topic_partition_list_add(l, o->topic, parts[i].id)->offset = parts[i].start;
            left++;
        }
        rd_kafka_resp_err_t e = left > 0 ? rd_kafka_assign(rk, l) : RD_KAFKA_RESP_ERR_NO_ERROR;
        rd_kafka_topic_partition_list_destroy(l);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(err, errlen, "kafka: assign: %s", rd_kafka_err2str(e));
            visited = -1;
            left = 0;
        }
    }
    int64_t last_progress = tt_time_mono_ns();
    while (left > 0 && visited >= 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (m == NULL) {
            if (tt_time_mono_ns() - last_progress > o->timeout_ms * 1000000) {
                snprintf(err, errlen, "kafka: no progress reading %s for %lld ms", o->topic,
                         (long long)o->timeout_ms);
                visited = -1;
            }
            continue;
        }
        last_progress = tt_time_mono_ns();
        part_range *p = NULL;
        for (int i = 0; i < np && p == NULL; i++) {
            if (parts[i].id == m->partition) {
                p = &parts[i];
            }
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (p && !p->done) {
                p->done = 1;
                left--;
            }
        } else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(err, errlen, "kafka: reading %s: %s", o->topic, rd_kafka_message_errstr(m));
            visited = -1;
        } else if (p && !p->done && m->offset < p->end) {
            rd_kafka_timestamp_type_t tt;
            tt_kafka_msg km = {.partition = m->partition,
                               .offset = m->offset,
                               .timestamp_ms = rd_kafka_message_timestamp(m, &tt),
                               .key = m->key,
                               .key_len = m->key_len,
                               .value = m->payload ? m->payload : "",
                               .len = m->len};
            visited++;
            if (cb(ctx, &km) != 0) {
                left = 0;
            }
            if (m->offset + 1 >= p->end && !p->done) {
                p->done = 1;
                left--;
            }
        }
        rd_kafka_message_destroy(m);
    }
    free(parts);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return visited;
}
