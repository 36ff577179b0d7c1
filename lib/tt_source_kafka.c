/* tt_source_kafka.c - the Kafka event source: a group consumer with manual
 * offset commits delivers the token events of its partitions; a second,
 * group-less consumer delivers the incident events of every partition (an
 * incident's state is needed by tokens on other partitions). The position
 * text is "kafka:P=OFF,...;incidents:P=OFF,..." (next offset per partition;
 * only the first part is ever committed to the group).
 *
 * Threading: all of it runs on the caller's thread; librdkafka calls the
 * rebalance callback from inside rd_kafka_consumer_poll/close. */
#include "tt_source_kafka.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "tt_kafka.h"
#include "tt_log.h"
#include "tt_time.h"

/* How long the blocking broker calls of a rebalance may take. */
#define CALL_TIMEOUT_MS 10000
/* One consumer_poll wait: bounds how long a poll blocks when idle. */
#define POLL_WAIT_MS 100

typedef struct part {
    int32_t id;
    int assigned;
    int64_t next;            /* next offset to deliver; -1 = not known */
    int64_t ckpt;            /* from seek (the local checkpoint); -1 = none */
    int64_t committed;       /* last offset we committed; -1 = none */
    int64_t hwm;             /* --once: high watermark at assignment */
    int held;                /* the caller's state holds this partition up to next (or ckpt) */
    int64_t committed_clock; /* the clock committed with `committed` */
    int64_t max_ts;          /* newest message timestamp read from it (CreateTime: the
                              * event's time, ms); INT64_MIN = none yet */
} part;

typedef struct kafka_source {
    tt_source base; /* first: a tt_source * is a kafka_source * */
    rd_kafka_t *rk;
    char topic[256];
    part *parts;
    int n_parts;
    int have_assignment; /* an assignment (maybe empty) is in force */
    char last_error[256]; /* the last error librdkafka reported, for a timeout's message */
    int once;
    int closed;
    int64_t timeout_ms;
    int (*on_revoke)(void *ctx);
    int (*on_assign)(void *ctx, tt_source *src, const tt_source_kafka_handover *h, size_t n);
    void *ctx;
    char brokers[1024];
    const tt_strlist *props;  /* borrowed */
    int64_t clock_ms;         /* committed with the offsets (the checkpoint's clock) */
    rd_kafka_message_t *held; /* refused by the callback: delivered again next poll */
    int held_side;
    /* The incident reader: every partition, assigned directly, never committed. */
    rd_kafka_t *side;
    part *sparts;
    int n_sparts;
    int side_ready; /* partitions assigned */
    int prefer_side;
} kafka_source;

static part *find_in(part *parts, int *n, int32_t id, int add)
{
    for (int i = 0; i < *n; i++) {
        if (parts[i].id == id) {
            return &parts[i];
        }
    }
    if (!add || *n == TT_SOURCE_KAFKA_MAX_PARTITIONS) {
        return NULL;
    }
    part *p = &parts[(*n)++];
    *p = (part){.id = id,
                .next = -1,
                .ckpt = -1,
                .committed = -1,
                .hwm = -1,
                .committed_clock = INT64_MIN,
                .max_ts = INT64_MIN};
    return p;
}

static part *find_part(kafka_source *s, int32_t id, int add)
{
    return find_in(s->parts, &s->n_parts, id, add);
}

/* An incident event: the collector's ce_type header starts with "incident.". */
static int is_incident(const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t n = 0;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, "ce_type", &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return 0;
    }
    return n > 9 && memcmp(v, "incident.", 9) == 0;
}

/* The topic's metadata (the caller destroys it), or NULL with err naming
 * `what` needed it. */
static const struct rd_kafka_metadata *topic_metadata(rd_kafka_t *rk, const char *topic,
                                                      const char *what, char *err, size_t errlen)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e =
        rkt ? rd_kafka_metadata(rk, 0, rkt, &md, CALL_TIMEOUT_MS) : rd_kafka_last_error();
    if (rkt) {
        rd_kafka_topic_destroy(rkt);
    }
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1 ||
        md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "kafka: metadata of %s for %s: %s", topic, what,
                 rd_kafka_err2str(e != RD_KAFKA_RESP_ERR_NO_ERROR ? e : md->topics[0].err));
        if (md) {
            rd_kafka_metadata_destroy(md);
        }
        return NULL;
    }
    return md;
}

/* Assign every partition of the topic to the incident reader, from the
 * checkpoint or the beginning. Returns 0, or -1 with err (tried again). */
static int side_setup(kafka_source *s, char *err, size_t errlen)
{
    const struct rd_kafka_metadata *md =
        topic_metadata(s->side, s->topic, "the incident reader", err, errlen);
    if (md == NULL) {
        return -1;
    }
    int np = md->topics[0].partition_cnt;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np > 0 ? np : 1);
    int rc = 0;
    for (int i = 0; i < np && rc == 0; i++) {
        int32_t id = md->topics[0].partitions[i].id;
        part *p = find_in(s->sparts, &s->n_sparts, id, 1);
        int64_t lo = -1, hi = -1;
        if (p == NULL ||
            rd_kafka_query_watermark_offsets(s->side, s->topic, id, &lo, &hi, CALL_TIMEOUT_MS) !=
                RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(err, errlen, "kafka: watermarks of %s [%d] for the incident reader", s->topic,
                     (int)id);
            rc = -1;
            break;
        }
        p->next = p->ckpt >= 0 ? p->ckpt : lo;
        p->hwm = hi;
        p->assigned = 1;
        rd_kafka_topic_partition_list_add(l, s->topic, id)->offset = p->next;
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (rc == 0 && (e = rd_kafka_assign(s->side, l)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "kafka: assign for the incident reader: %s", rd_kafka_err2str(e));
        rc = -1;
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (rc == 0) {
        s->side_ready = 1;
        tt_info("kafka: reading the incident events of all %d partitions of %s", np, s->topic);
    }
    return rc;
}

/* Offsets after what was delivered, for the assigned partitions. */
static rd_kafka_topic_partition_list_t *delivered_list(kafka_source *s)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(s->n_parts + 1);
    for (int i = 0; i < s->n_parts; i++) {
        part *p = &s->parts[i];
        /* A new clock alone is worth a commit: a member taking over
         * continues from it (timers fired since were reported here). */
        if (p->assigned && p->next >= 0 &&
            (p->next != p->committed || s->clock_ms != p->committed_clock)) {
            rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(l, s->topic, p->id);
            tp->offset = p->next;
            /* The analyzer clock of the checkpoint behind this offset: a member
             * that takes the partition over rebuilds the state up to it. */
            char md[48];
            int n = snprintf(md, sizeof(md), "clock=%" PRId64, s->clock_ms);
            tp->metadata = malloc((size_t)n);
            if (tp->metadata) {
                memcpy(tp->metadata, md, (size_t)n);
                tp->metadata_size = (size_t)n;
            }
        }
    }
    return l;
}

static int commit_now(kafka_source *s, char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = delivered_list(s);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (l->cnt > 0) {
        e = rd_kafka_commit(s->rk, l, 0);
    }
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < l->cnt; i++) {
            part *p = find_part(s, l->elems[i].partition, 0);
            if (p) {
                p->committed = l->elems[i].offset;
                p->committed_clock = s->clock_ms;
            }
        }
    } else {
        snprintf(err, errlen, "kafka: committing offsets of %s: %s", s->topic, rd_kafka_err2str(e));
    }
    rd_kafka_topic_partition_list_destroy(l);
    return e == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

/* The clock from a commit's metadata ("clock=MS"); INT64_MIN when absent. */
static int64_t metadata_clock(const rd_kafka_topic_partition_t *tp)
{
    char md[48];
    if (tp->metadata == NULL || tp->metadata_size < 7 || tp->metadata_size >= sizeof(md)) {
        return INT64_MIN;
    }
    memcpy(md, tp->metadata, tp->metadata_size);
    md[tp->metadata_size] = '\0';
    char *end;
    long long v = strncmp(md, "clock=", 6) == 0 ? strtoll(md + 6, &end, 10) : 0;
    return strncmp(md, "clock=", 6) == 0 && end != md + 6 && *end == '\0' ? (int64_t)v : INT64_MIN;
}

static void on_assign(kafka_source *s, rd_kafka_topic_partition_list_t *l)
{
    /* The group's committed offsets are the position. Where the caller's
     * state holds a partition at or past it (it was the last to commit, or
     * crashed between its checkpoint and the commit) it continues from its
     * own position; otherwise another member moved the partition on, and the
     * caller rebuilds the partition's state up to the committed offset
     * (on_assign callback) before reading on from there. */
    rd_kafka_resp_err_t e = rd_kafka_committed(s->rk, l, CALL_TIMEOUT_MS);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        tt_warn("kafka: reading committed offsets: %s; starting from the stored offsets",
                rd_kafka_err2str(e));
    }
    tt_source_kafka_handover *h = calloc((size_t)s->n_parts + (size_t)l->cnt + 1, sizeof(*h));
    size_t nh = 0;
    for (int i = 0; i < l->cnt; i++) {
        find_part(s, l->elems[i].partition, 1); /* so the drop pass below sees all */
    }
    /* Held partitions that are not assigned any more: their state goes. */
    for (int i = 0; i < s->n_parts; i++) {
        part *p = &s->parts[i];
        int kept = 0;
        for (int j = 0; j < l->cnt && !kept; j++) {
            kept = l->elems[j].partition == p->id;
        }
        if (p->held && !kept) {
            if (h) {
                h[nh++] = (tt_source_kafka_handover){.partition = p->id, .drop = 1};
            }
            p->held = 0;
            p->next = p->ckpt = -1;
        }
    }
    for (int i = 0; i < l->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &l->elems[i];
        part *p = find_part(s, tp->partition, 0);
        if (p == NULL) {
            tt_error("kafka: more than %d partitions; partition %d ignored",
                     TT_SOURCE_KAFKA_MAX_PARTITIONS, (int)tp->partition);
            continue;
        }
        int64_t lo = -1, hi = -1;
        if (rd_kafka_query_watermark_offsets(s->rk, s->topic, tp->partition, &lo, &hi,
                                             CALL_TIMEOUT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            lo = hi = -1;
        }
        int64_t committed = e == RD_KAFKA_RESP_ERR_NO_ERROR && tp->offset >= 0 ? tp->offset : -1;
        int64_t local = !p->held ? -1 : p->next >= 0 ? p->next : p->ckpt;
        int64_t off = local;
        p->committed = committed;
        p->committed_clock = metadata_clock(tp);
        if (committed >= 0 && committed > local) {
            /* moved on by another member (or never held here) */
            if (h) {
                h[nh++] = (tt_source_kafka_handover){.partition = p->id,
                                                     .drop = p->held,
                                                     .restore = 1,
                                                     .committed = committed,
                                                     .clock_ms = metadata_clock(tp)};
            }
            off = committed;
        }
        if (off < 0 && lo >= 0) {
            off = lo;
        }
        tp->offset = off >= 0 ? off : RD_KAFKA_OFFSET_BEGINNING;
        p->next = off;
        p->hwm = hi;
        p->assigned = 1;
        p->held = 1; /* from here on (after any restore) the caller's state holds it */
        tt_info("kafka: assigned %s [%d] from offset %lld (committed %lld, high watermark %lld)",
                s->topic, (int)tp->partition, (long long)off, (long long)committed, (long long)hi);
    }
    if (h == NULL) {
        tt_error("kafka: out of memory preparing the hand-over of partitions");
    } else if (nh > 0 && s->on_assign != NULL && s->on_assign(s->ctx, &s->base, h, nh) != 0) {
        tt_error("kafka: the hand-over of partitions failed; their findings may be incomplete");
    }
    free(h);
    e = rd_kafka_assign(s->rk, l);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        tt_error("kafka: assign: %s", rd_kafka_err2str(e));
    }
    s->have_assignment = 1;
}

static void on_revoke(kafka_source *s)
{
    char err[512];
    /* Without a caller to checkpoint (closing without tt_source_kafka_leave)
     * nothing is committed: the events since the last commit are read again. */
    int ok = s->on_revoke != NULL;
    if (ok && s->on_revoke(s->ctx) != 0) {
        ok = 0;
        tt_warn("kafka: partitions revoked before a checkpoint succeeded; their offsets are not "
                "committed (the next owner reads them again)");
    }
    if (ok && commit_now(s, err, sizeof(err)) != 0) {
        tt_warn("%s", err);
    }
    if (s->held && !s->held_side) {
        rd_kafka_message_destroy(s->held);
        s->held = NULL;
    }
    for (int i = 0; i < s->n_parts; i++) {
        if (s->parts[i].assigned) {
            tt_info("kafka: revoked %s [%d] at offset %lld", s->topic, (int)s->parts[i].id,
                    (long long)s->parts[i].next);
        }
        s->parts[i].assigned = 0;
    }
    rd_kafka_assign(s->rk, NULL);
    s->have_assignment = 0;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *l, void *opaque)
{
    (void)rk;
    kafka_source *s = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        on_assign(s, l);
    } else {
        on_revoke(s);
    }
}

/* Served from rd_kafka_consumer_poll, i.e. on the main thread. */
static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    kafka_source *s = opaque;
    tt_warn("kafka consumer: %s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
    if (s) {
        snprintf(s->last_error, sizeof(s->last_error), "%s: %s",
                 rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
    }
}

static int at_end(const part *parts, int n)
{
    for (int i = 0; i < n; i++) {
        const part *p = &parts[i];
        /* An unknown high watermark is never reached: --once then fails
         * with "no progress" rather than skip the partition. */
        if (p->assigned && (p->hwm < 0 || p->next < p->hwm)) {
            return 0;
        }
    }
    return 1;
}

static int all_at_end(kafka_source *s)
{
    return s->have_assignment && (s->side == NULL || s->side_ready) &&
           at_end(s->parts, s->n_parts) && (s->side == NULL || at_end(s->sparts, s->n_sparts));
}

/* The next message: alternately from the group consumer and the incident
 * reader, waiting a little only when both are empty. */
static rd_kafka_message_t *next_message(kafka_source *s, int *from_side)
{
    if (s->held) {
        rd_kafka_message_t *m = s->held;
        *from_side = s->held_side;
        s->held = NULL;
        return m;
    }
    if (!s->side_ready) {
        *from_side = 0;
        return rd_kafka_consumer_poll(s->rk, POLL_WAIT_MS);
    }
    s->prefer_side = !s->prefer_side;
    for (int k = 0; k < 2; k++) {
        int side = (k == 0) == s->prefer_side;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(side ? s->side : s->rk, 0);
        if (m) {
            *from_side = side;
            return m;
        }
    }
    *from_side = 0;
    return rd_kafka_consumer_poll(s->rk, POLL_WAIT_MS / 2);
}

static int64_t kf_poll(tt_source *src, size_t max, tt_source_cb cb, void *ctx, char *err,
                       size_t errlen)
{
    kafka_source *s = (kafka_source *)src;
    int64_t n = 0;
    int64_t last_progress = tt_time_mono_ns();
    err[0] = '\0';
    while ((size_t)n < max) {
        if (s->once && all_at_end(s)) {
            break;
        }
        if (s->side && !s->side_ready && s->have_assignment && side_setup(s, err, errlen) != 0) {
            if (s->once) {
                return -1;
            }
            tt_warn("%s (will retry)", err);
            err[0] = '\0';
            break;
        }
        int from_side = 0;
        rd_kafka_message_t *m = next_message(s, &from_side);
        if (m == NULL) {
            if (!s->once) {
                break;
            }
            if (tt_time_mono_ns() - last_progress > s->timeout_ms * 1000000) {
                snprintf(err, errlen, "kafka: no %s from %s for %lld ms%s%s",
                         s->have_assignment ? "progress reading" : "partition assignment", s->topic,
                         (long long)s->timeout_ms,
                         s->last_error[0] ? "; last error from the cluster: " : "",
                         s->last_error);
                return -1;
            }
            continue;
        }
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            int fatal = m->err == RD_KAFKA_RESP_ERR__FATAL ||
                        m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                        m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
                        m->err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED;
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                snprintf(err, errlen, "kafka: reading %s: %s", s->topic,
                         rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
            if (fatal) {
                return -1;
            }
            if (err[0]) {
                tt_warn("%s", err); /* librdkafka retries on its own */
                err[0] = '\0';
            }
            continue;
        }
        part *p = from_side ? find_in(s->sparts, &s->n_sparts, m->partition, 0)
                            : find_part(s, m->partition, 0);
        if (p == NULL || !p->assigned || (p->next >= 0 && m->offset < p->next)) {
            rd_kafka_message_destroy(m); /* from before a seek or a revoked partition */
            continue;
        }
        last_progress = tt_time_mono_ns();
        rd_kafka_timestamp_type_t tst;
        int64_t ts = rd_kafka_message_timestamp(m, &tst);
        if (tst != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE && ts > p->max_ts) {
            p->max_ts = ts; /* read, whichever reader delivers the event */
        }
        /* Each event comes through exactly one of the two readers. */
        if (s->side && is_incident(m) != from_side) {
            p->next = m->offset + 1;
            rd_kafka_message_destroy(m);
            continue;
        }
        int64_t ord = m->offset * TT_SOURCE_KAFKA_MAX_PARTITIONS + m->partition;
        if (cb(ctx, m->payload ? (const char *)m->payload : "", m->len, ord) != 0) {
            s->held = m;
            s->held_side = from_side;
            break;
        }
        p->next = m->offset + 1;
        n++;
        rd_kafka_message_destroy(m);
    }
    return n;
}

static size_t put_offsets(char *out, size_t len, const part *parts, int n)
{
    for (int i = 0; i < n && len < TT_SOURCE_MAX_POSITION; i++) {
        const part *p = &parts[i];
        int64_t off = p->next >= 0 ? p->next : p->ckpt;
        if (off < 0) {
            continue;
        }
        int w = snprintf(out + len, TT_SOURCE_MAX_POSITION - len, "%s%d=%" PRId64,
                         out[len - 1] == ':' ? "" : ",", (int)p->id, off);
        if (w < 0 || (size_t)w >= TT_SOURCE_MAX_POSITION - len) {
            break; /* cannot happen below ~200 partitions; the rest restarts from the group */
        }
        len += (size_t)w;
    }
    return len;
}

static void kf_position(const tt_source *src, char out[TT_SOURCE_MAX_POSITION])
{
    const kafka_source *s = (const kafka_source *)src;
    size_t len = (size_t)snprintf(out, TT_SOURCE_MAX_POSITION, "kafka:");
    len = put_offsets(out, len, s->parts, s->n_parts);
    if (s->side && len + 12 < TT_SOURCE_MAX_POSITION) {
        len += (size_t)snprintf(out + len, TT_SOURCE_MAX_POSITION - len, ";incidents:");
        put_offsets(out, len, s->sparts, s->n_sparts);
    }
}

static int kf_seek(tt_source *src, const char *pos, char *err, size_t errlen)
{
    kafka_source *s = (kafka_source *)src;
    if (strncmp(pos, "kafka:", 6) != 0) {
        snprintf(err, errlen,
                 "checkpoint position '%.64s' is not from a Kafka source (use another --state "
                 "file)",
                 pos);
        return -1;
    }
    const char *c = pos + 6;
    part *parts = s->parts;
    int *np = &s->n_parts;
    while (*c) {
        if (strncmp(c, ";incidents:", 11) == 0 && parts == s->parts) {
            c += 11;
            parts = s->sparts;
            np = &s->n_sparts;
            continue;
        }
        char *end;
        long id = strtol(c, &end, 10);
        if (end == c || *end != '=' || id < 0 || id > INT32_MAX) {
            goto bad;
        }
        c = end + 1;
        long long off = strtoll(c, &end, 10);
        if (end == c || off < 0 || (*end != ',' && *end != '\0' && *end != ';') ||
            (*end == ',' && end[1] == '\0')) {
            goto bad;
        }
        part *p = find_in(parts, np, (int32_t)id, 1);
        if (p == NULL) {
            goto bad;
        }
        p->ckpt = off;
        p->held = parts == s->parts; /* the restored state holds it */
        c = *end == ',' ? end + 1 : end;
    }
    return 0;
bad:
    snprintf(err, errlen, "checkpoint position '%.64s' is malformed", pos);
    return -1;
}

/* Messages of p not read yet by consumer rk (cached high watermark, else the
 * one queried at assignment); -1 when not known. */
static int64_t part_lag(rd_kafka_t *rk, const char *topic, const part *p)
{
    int64_t lo, hi;
    if (rd_kafka_get_watermark_offsets(rk, topic, p->id, &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        hi < 0) {
        hi = p->hwm;
    }
    if (hi < 0 || p->next < 0) {
        return -1;
    }
    return hi > p->next ? hi - p->next : 0;
}

static int64_t kf_lag(tt_source *src)
{
    kafka_source *s = (kafka_source *)src;
    if (!s->have_assignment || (s->side && !s->side_ready)) {
        return -1;
    }
    int64_t lag = 0;
    for (int i = 0; i < s->n_parts; i++) {
        int64_t l = s->parts[i].assigned ? part_lag(s->rk, s->topic, &s->parts[i]) : 0;
        if (l < 0) {
            return -1;
        }
        lag += l;
    }
    for (int i = 0; s->side && i < s->n_sparts; i++) {
        int64_t l = part_lag(s->side, s->topic, &s->sparts[i]);
        if (l < 0) {
            return -1;
        }
        lag += l;
    }
    return lag;
}

/* The oldest of the newest times read from each input that still has a
 * backlog (a partition of the group consumer or of the incident reader). */
static int64_t backlog_time_of(rd_kafka_t *rk, const char *topic, const part *parts, int n,
                               int64_t t)
{
    for (int i = 0; i < n && t != INT64_MIN; i++) {
        const part *p = &parts[i];
        if (!p->assigned || part_lag(rk, topic, p) == 0) {
            continue; /* caught up: it holds nobody back */
        }
        t = p->max_ts < t ? p->max_ts : t; /* INT64_MIN: nothing read from it yet */
    }
    return t;
}

int64_t tt_source_kafka_backlog_time(tt_source *src)
{
    kafka_source *s = (kafka_source *)src;
    if (!s->have_assignment || (s->side && !s->side_ready)) {
        return INT64_MIN;
    }
    int64_t t = backlog_time_of(s->rk, s->topic, s->parts, s->n_parts, INT64_MAX);
    return s->side ? backlog_time_of(s->side, s->topic, s->sparts, s->n_sparts, t) : t;
}

static void kf_close(tt_source *src)
{
    kafka_source *s = (kafka_source *)src;
    if (s->rk) {
        s->on_revoke = NULL; /* the caller may be gone: do not call back */
        if (!s->closed) {
            rd_kafka_consumer_close(s->rk);
        }
        if (s->held) {
            rd_kafka_message_destroy(s->held);
        }
        rd_kafka_destroy(s->rk);
    }
    if (s->side) {
        rd_kafka_consumer_close(s->side); /* never commits: no group joined */
        rd_kafka_destroy(s->side);
    }
    free(s->parts);
    free(s->sparts);
    free(s);
}

static const tt_source_ops kafka_ops = {"kafka", kf_poll, kf_position, kf_seek, kf_lag, kf_close};

tt_source *tt_source_kafka_open(const tt_source_kafka_opts *o, char *err, size_t errlen)
{
    kafka_source *s = calloc(1, sizeof(*s));
    part *parts = calloc(TT_SOURCE_KAFKA_MAX_PARTITIONS, sizeof(*parts));
    part *sparts = calloc(TT_SOURCE_KAFKA_MAX_PARTITIONS, sizeof(*sparts));
    if (s == NULL || parts == NULL || sparts == NULL) {
        free(s);
        free(parts);
        free(sparts);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base.ops = &kafka_ops;
    s->parts = parts;
    s->sparts = sparts;
    s->once = o->once;
    s->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
    s->on_revoke = o->on_revoke;
    s->on_assign = o->on_assign;
    s->ctx = o->ctx;
    s->props = o->props;
    s->clock_ms = INT64_MIN;
    snprintf(s->brokers, sizeof(s->brokers), "%s", o->brokers ? o->brokers : "");
    snprintf(s->topic, sizeof(s->topic), "%s", o->topic ? o->topic : TT_KAFKA_DEFAULT_TOPIC);
    rd_kafka_conf_t *conf = tt_kafka_conf_new(o->brokers, o->props, err, errlen);
    if (conf == NULL) {
        kf_close(&s->base);
        return NULL;
    }
    /* Set after the kafka.* properties, so they win: committing only after
     * a checkpoint rests on them. */
    if (tt_kafka_conf_set(conf, "group.id", o->group ? o->group : TT_SOURCE_KAFKA_DEFAULT_GROUP,
                          err, errlen) != 0 ||
        tt_kafka_conf_set(conf, "enable.auto.commit", "false", err, errlen) != 0 ||
        tt_kafka_conf_set(conf, "enable.auto.offset.store", "false", err, errlen) != 0 ||
        tt_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        kf_close(&s->base);
        return NULL;
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_opaque(conf, s);
    char why[512];
    s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (s->rk == NULL) {
        snprintf(err, errlen, "kafka: %s", why);
        rd_kafka_conf_destroy(conf);
        kf_close(&s->base);
        return NULL;
    }
    conf = NULL; /* rd_kafka_new took it */
    rd_kafka_poll_set_consumer(s->rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, s->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(s->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "kafka: subscribe to %s: %s", s->topic, rd_kafka_err2str(e));
        kf_close(&s->base);
        return NULL;
    }
    if (o->all_incidents) {
        /* A group id is required by the consumer API; this one is never
         * joined (partitions are assigned directly) and never committed. */
        conf = tt_kafka_conf_new(o->brokers, o->props, err, errlen);
        if (conf == NULL ||
            tt_kafka_conf_set(conf, "group.id", "tokentrail-analyzer-incidents", err, errlen) !=
                0 ||
            tt_kafka_conf_set(conf, "enable.auto.commit", "false", err, errlen) != 0 ||
            tt_kafka_conf_set(conf, "enable.auto.offset.store", "false", err, errlen) != 0) {
            if (conf) {
                rd_kafka_conf_destroy(conf);
            }
            kf_close(&s->base);
            return NULL;
        }
        rd_kafka_conf_set_error_cb(conf, error_cb);
        s->side = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
        if (s->side == NULL) {
            snprintf(err, errlen, "kafka: %s", why);
            rd_kafka_conf_destroy(conf);
            kf_close(&s->base);
            return NULL;
        }
        rd_kafka_poll_set_consumer(s->side);
    }
    return &s->base;
}

int tt_source_kafka_commit(tt_source *src, char *err, size_t errlen)
{
    return commit_now((kafka_source *)src, err, errlen);
}

void tt_source_kafka_leave(tt_source *src)
{
    kafka_source *s = (kafka_source *)src;
    if (!s->closed) {
        rd_kafka_consumer_close(s->rk); /* revokes: on_revoke, commit */
        s->closed = 1;
    }
}

void tt_source_kafka_assignment(const tt_source *src, char *out, size_t n)
{
    const kafka_source *s = (const kafka_source *)src;
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < s->n_parts && len < n; i++) {
        if (s->parts[i].assigned) {
            int w = snprintf(out + len, n - len, "%s%d", len ? "," : "", (int)s->parts[i].id);
            if (w < 0) {
                break;
            }
            len += (size_t)w;
        }
    }
}

void tt_source_kafka_set_clock(tt_source *src, int64_t clock_ms)
{
    ((kafka_source *)src)->clock_ms = clock_ms;
}

int tt_source_kafka_assigned(const tt_source *src)
{
    return ((const kafka_source *)src)->have_assignment;
}

int64_t tt_source_kafka_replay(tt_source *src, const int64_t *until, size_t n_until,
                               tt_source_cb cb, void *ctx, char *err, size_t errlen)
{
    kafka_source *s = (kafka_source *)src;
    rd_kafka_conf_t *conf = tt_kafka_conf_new(s->brokers, s->props, err, errlen);
    if (conf == NULL ||
        tt_kafka_conf_set(conf, "group.id", "tokentrail-analyzer-handover", err, errlen) != 0 ||
        tt_kafka_conf_set(conf, "enable.auto.commit", "false", err, errlen) != 0 ||
        tt_kafka_conf_set(conf, "enable.auto.offset.store", "false", err, errlen) != 0) {
        if (conf) {
            rd_kafka_conf_destroy(conf);
        }
        return -1;
    }
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "kafka: %s", why);
        return -1;
    }
    rd_kafka_poll_set_consumer(rk);
    int64_t n = -1;
    int64_t *stop = NULL;
    int np = 0;
    rd_kafka_topic_partition_list_t *l = NULL;
    rd_kafka_resp_err_t e;
    const struct rd_kafka_metadata *md = topic_metadata(rk, s->topic, "a hand-over", err, errlen);
    if (md == NULL) {
        goto out;
    }
    np = md->topics[0].partition_cnt;
    stop = calloc((size_t)(np > 0 ? np : 1), sizeof(*stop));
    l = rd_kafka_topic_partition_list_new(np > 0 ? np : 1);
    if (stop == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    int open_parts = 0;
    for (int i = 0; i < np; i++) {
        int32_t id = md->topics[0].partitions[i].id;
        int64_t lo = -1, hi = -1;
        if (id < 0 || id >= np ||
            rd_kafka_query_watermark_offsets(rk, s->topic, id, &lo, &hi, CALL_TIMEOUT_MS) !=
                RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(err, errlen, "kafka: watermarks of %s [%d] for a hand-over", s->topic,
                     (int)id);
            goto out;
        }
        stop[id] = hi;
        if (lo < hi) {
            rd_kafka_topic_partition_list_add(l, s->topic, id)->offset = lo;
            open_parts++;
        }
    }
    if ((e = rd_kafka_assign(rk, l)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "kafka: assign for a hand-over: %s", rd_kafka_err2str(e));
        goto out;
    }
    n = 0;
    int64_t last_progress = tt_time_mono_ns();
    while (open_parts > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, POLL_WAIT_MS);
        if (m == NULL) {
            if (tt_time_mono_ns() - last_progress > s->timeout_ms * 1000000) {
                snprintf(err, errlen, "kafka: no progress reading %s for a hand-over for %lld ms",
                         s->topic, (long long)s->timeout_ms);
                n = -1;
                break;
            }
            continue;
        }
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR || m->partition < 0 || m->partition >= np ||
            m->offset >= stop[m->partition]) {
            if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR &&
                m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                tt_warn("kafka: reading %s for a hand-over: %s", s->topic,
                        rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        last_progress = tt_time_mono_ns();
        int32_t pid = m->partition;
        /* Token events of the partitions taken over, below their committed
         * offset; incident events of every partition. */
        int want =
            is_incident(m) || ((size_t)pid < n_until && until[pid] >= 0 && m->offset < until[pid]);
        int rc = 0;
        if (want) {
            int64_t ord = m->offset * TT_SOURCE_KAFKA_MAX_PARTITIONS + pid;
            rc = cb(ctx, m->payload ? (const char *)m->payload : "", m->len, ord);
            n++;
        }
        if (m->offset + 1 >= stop[pid]) {
            open_parts--;
        }
        rd_kafka_message_destroy(m);
        if (rc != 0) {
            snprintf(err, errlen, "hand-over stopped by the caller");
            n = -1;
            break;
        }
    }
out:
    if (l) {
        rd_kafka_topic_partition_list_destroy(l);
    }
    if (md) {
        rd_kafka_metadata_destroy(md);
    }
    free(stop);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}
