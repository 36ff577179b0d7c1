/* analyze.c - `tokentrail analyze`: follow the event stream (or read it once),
 * run the lingering-token and scope-drift checks, and commit findings and
 * checkpoints to the SQLite file; /metrics, optional Alertmanager push. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "analyzer.h"
#include "findings_out.h"
#include "tt_aev.h"
#include "tt_alert.h"
#include "tt_anstore.h"
#include "tt_engine.h"
#include "tt_httpd.h"
#include "tt_log.h"
#include "tt_metrics.h"
#include "tt_policy.h"
#include "tt_source.h"
#include "tt_source_kafka.h"
#include "tt_time.h"

/* Events between checkpoints in --once mode: bounds the work a crash loses
 * and the length of each write transaction. */
#define ONCE_CHECKPOINT_EVENTS 1000000
#define MAX_LOGGED_INVALID 20
/* How long a checkpoint waits for the delivery reports of its findings. */
#define FINDINGS_DELIVERY_TIMEOUT_MS 10000

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

/* What /metrics shows; written by the main thread, read by the HTTP thread. */
typedef struct snapshot {
    pthread_mutex_t mu;
    tt_engine_stats st;
    uint64_t findings[TT_FK__COUNT];
    uint64_t invalid, checkpoints, checkpoint_failures, alerts_sent, alerts_failed;
    uint64_t produced, produce_failed, commit_failures;
    int64_t source_lag;
} snapshot;

typedef struct analyzer {
    tt_analyze_config cfg;
    int once;
    int as_json;
    int64_t as_of;
    tt_policy *policy;
    tt_engine *engine;
    tt_source *source;
    tt_anstore *store;
    tt_findings_out *fout; /* Kafka mode: new findings to the findings topic */
    int kafka;             /* the source is Kafka: commit offsets after checkpoints */
    uint64_t commit_failures;
    int produce_failed; /* a finding could not be produced: --once exits 2 */
    tt_httpd *httpd;
    tt_aev_scratch scratch;
    int prepared;                /* SQLite: records come from prepare(), not bodies */
    tt_aev_scratch prep_scratch; /* prepare()'s, touched only on the read-ahead thread */
    tt_finding_row **rows;       /* found, not yet committed */
    size_t n_rows, cap_rows;
    tt_finding_row **out; /* --once: committed new findings, printed at the end */
    size_t n_out, cap_out;
    uint64_t invalid;
    uint64_t since_checkpoint;
    int oom;
    snapshot snap;
    uint64_t findings[TT_FK__COUNT];
    uint64_t checkpoints, checkpoint_failures, alerts_sent, alerts_failed;
} analyzer;

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: tokentrail analyze --db PATH --policy FILE [--once] [OPTIONS]\n"
            "       tokentrail analyze --kafka-brokers B [--topic T] [--group G] [--state PATH]\n"
            "                          --policy FILE [--once] [OPTIONS]\n"
            "\n"
            "Find lingering tokens and scope drift in the event trail. Events are analysed\n"
            "in event-time order (late or out-of-order events up to --lateness are put\n"
            "back in order). Findings go to the 'findings' table of the same file, to\n"
            "stdout, to /metrics and optionally to Alertmanager. State is checkpointed in\n"
            "the file, so a restart continues where it stopped without repeating findings.\n"
            "\n"
            "Options (each overrides the same key of the config file):\n"
            "  -c, --config FILE        YAML config file (keys below)\n"
            "  -d, --db PATH            SQLite database written by 'tokentrail collect'\n"
            "      --kafka-brokers B    read events from Kafka (consumer group) instead\n"
            "      --topic T            events topic (default tokentrail.events)\n"
            "      --group G            consumer group (default tokentrail-analyzer)\n"
            "      --state PATH         with Kafka: SQLite file for checkpoints and findings\n"
            "                           (default tokentrail-analyzer.db, created if missing)\n"
            "      --findings-topic T   with Kafka: topic for new findings\n"
            "                           (default tokentrail.findings)\n"
            "  -p, --policy FILE        policy: scopes, client baselines, defaults\n"
            "                           (docs/policy.md)\n"
            "      --once               analyse what is there, print new findings, exit\n"
            "      --as-of T            --once: the analyzer clock for time-based findings\n"
            "                           (RFC 3339, epoch, or a duration ago; default now)\n"
            "      --lateness DUR       how late events may arrive (default 5m)\n"
            "  -f, --format FMT         table (default on a terminal) or json (NDJSON)\n"
            "  -l, --listen HOST:PORT   serve /metrics and /healthz (default 127.0.0.1:9109;\n"
            "                           with --once only when given)\n"
            "      --port-file FILE     write the bound /metrics port to FILE\n"
            "      --alertmanager URL   push new findings to URL/api/v2/alerts\n"
            "      --log-level LEVEL    error, warn, info (default) or debug\n"
            "  -h, --help               show this help\n"
            "\n"
            "Exit status: with --once 0 when there are no new findings, 3 when there are,\n"
            "2 on error; following, 0 after SIGTERM/SIGINT, 2 on error.\n"
            "\n"
            "Config file keys:\n");
    tt_config_print_help(tt_analyze_config_table, fp);
    fprintf(fp, "\nSee docs/analyze.md, docs/policy.md and docs/findings.md.\n");
}

/* ---- findings flow: engine -> rows -> checkpoint -> output/metrics/alerts ---- */

static int push_row(tt_finding_row ***v, size_t *n, size_t *cap, tt_finding_row *r)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        tt_finding_row **nv = realloc(*v, c * sizeof(*nv));
        if (nv == NULL) {
            return -1;
        }
        *v = nv;
        *cap = c;
    }
    (*v)[(*n)++] = r;
    return 0;
}

static void on_finding(void *ctx, const tt_finding *f)
{
    analyzer *a = ctx;
    tt_finding_row *r = tt_finding_row_new(f);
    if (r == NULL || push_row(&a->rows, &a->n_rows, &a->cap_rows, r) != 0) {
        tt_finding_row_free(r);
        a->oom = 1;
    }
}

static int cmp_row(const void *x, const void *y)
{
    const tt_finding_row *a = *(tt_finding_row *const *)x, *b = *(tt_finding_row *const *)y;
    if (a->time_ms != b->time_ms) {
        return a->time_ms < b->time_ms ? -1 : 1;
    }
    return strcmp(a->id, b->id);
}

static void publish(analyzer *a)
{
    tt_engine_stats st;
    tt_engine_get_stats(a->engine, &st);
    int64_t lag = tt_source_lag(a->source);
    pthread_mutex_lock(&a->snap.mu);
    a->snap.st = st;
    memcpy(a->snap.findings, a->findings, sizeof(a->findings));
    a->snap.invalid = a->invalid;
    a->snap.checkpoints = a->checkpoints;
    a->snap.checkpoint_failures = a->checkpoint_failures;
    a->snap.alerts_sent = a->alerts_sent;
    a->snap.alerts_failed = a->alerts_failed;
    tt_findings_out_counts(a->fout, &a->snap.produced, &a->snap.produce_failed);
    a->snap.commit_failures = a->commit_failures;
    a->snap.source_lag = lag;
    pthread_mutex_unlock(&a->snap.mu);
}

/* Commit the pending findings with the engine state and source position;
 * then hand the new ones out. Returns 0 or -1 (rows are kept for a retry). */
static int checkpoint(analyzer *a)
{
    char err[512];
    if (a->n_rows > 1) {
        qsort(a->rows, a->n_rows, sizeof(*a->rows), cmp_row);
    }
    if (tt_anstore_checkpoint(a->store, a->engine, a->source, a->rows, a->n_rows, err,
                              sizeof(err)) != 0) {
        a->checkpoint_failures++;
        tt_warn("%s (will retry)", err);
        return -1;
    }
    a->checkpoints++;
    a->since_checkpoint = 0;
    if (a->kafka) {
        tt_engine_stats st;
        tt_engine_get_stats(a->engine, &st);
        tt_source_kafka_set_clock(a->source, st.clock_ms);
    }
    size_t n_new = 0;
    for (size_t i = 0; i < a->n_rows; i++) {
        tt_finding_row *r = a->rows[i];
        if (!r->is_new) {
            continue; /* found again after a restart: already reported */
        }
        a->rows[n_new++] = r;
        a->findings[r->kind]++;
    }
    if (a->cfg.alertmanager && n_new > 0) {
        if (tt_alert_push(a->cfg.alertmanager, a->rows, n_new, (long)a->cfg.alert_timeout_ms, err,
                          sizeof(err)) == 0) {
            a->alerts_sent += n_new;
        } else {
            /* Logged and counted, not retried: the findings are committed in
             * the findings table and counted in /metrics either way. */
            a->alerts_failed += n_new;
            tt_warn("%s", err);
        }
    }
    if (a->fout && n_new > 0 &&
        tt_findings_out_send(a->fout, a->rows, n_new, FINDINGS_DELIVERY_TIMEOUT_MS, err,
                             sizeof(err)) != 0) {
        /* The findings are committed in the findings table; the offsets are
         * not committed, so --once exits 2 and a follower says so. */
        a->produce_failed = 1;
        tt_error("%s", err);
    } else if (a->kafka && tt_source_kafka_commit(a->source, err, sizeof(err)) != 0) {
        /* The state is ahead of the group's offsets: harmless, the local
         * checkpoint wins on the next assignment; retried next checkpoint. */
        a->commit_failures++;
        tt_warn("%s (will retry)", err);
    }
    for (size_t i = 0; i < a->n_rows; i++) {
        tt_finding_row *r = a->rows[i];
        if (i < n_new && a->once) {
            if (push_row(&a->out, &a->n_out, &a->cap_out, r) != 0) {
                a->oom = 1;
                tt_finding_row_free(r);
            }
            continue;
        }
        if (i < n_new) {
            tt_findings_print(r->json, strlen(r->json), a->as_json);
        }
        tt_finding_row_free(r);
    }
    if (!a->once) {
        fflush(stdout);
    }
    a->n_rows = 0;
    return 0;
}

/* A prepared record (the SQLite source's prepare hook): this header, then
 * by kind a self-contained tt_aev copy (seq set), the NUL-terminated reason
 * the body was skipped, or the body itself, to scan on the main thread. 8
 * bytes, so the copy stays 8-byte aligned. */
enum { PREP_INVALID, PREP_EVENT, PREP_BODY };
typedef struct prep_head {
    int64_t kind;
} prep_head;

_Static_assert(sizeof(prep_head) % _Alignof(tt_aev) == 0, "prep_head keeps tt_aev aligned");

/* The SQLite source's prepare hook: scan the body on the read-ahead thread
 * (ctx is that thread's scratch), so the main thread only offers events;
 * when the source says hurry, pass the body on for on_record to scan. */
static size_t prepare(void *ctx, const char *body, size_t len, int64_t ord, void *out, size_t cap,
                      int hurry)
{
    tt_aev_scratch *sc = ctx;
    tt_aev ev;
    char err[256];
    prep_head h = {PREP_EVENT};
    size_t need;
    if (hurry && len <= TT_AEV_MAX_BODY) { /* a larger one: the scan's short error record */
        h.kind = PREP_BODY;
        need = sizeof(h) + len;
        if (need <= cap) {
            memcpy((char *)out + sizeof(h), body, len);
        }
    } else if (tt_aev_scan(body, len, &ev, sc, err, sizeof(err)) != 0) {
        h.kind = PREP_INVALID;
        need = sizeof(h) + strlen(err) + 1;
        if (need <= cap) {
            memcpy((char *)out + sizeof(h), err, need - sizeof(h));
        }
    } else {
        ev.seq = ord;
        need = sizeof(h) + tt_aev_clone_size(&ev);
        if (need <= cap) {
            tt_aev_clone_into(&ev, (char *)out + sizeof(h), cap - sizeof(h), 0);
        }
    }
    if (need <= cap) {
        memcpy(out, &h, sizeof(h));
    }
    return need;
}

static int on_record(void *ctx, const char *body, size_t len, int64_t ord)
{
    analyzer *a = ctx;
    tt_aev ev;
    const tt_aev *offer = &ev;
    char err[256];
    const char *why = err;
    prep_head h = {PREP_BODY};
    if (a->prepared) {
        memcpy(&h, body, sizeof(h));
        body += sizeof(h);
        len -= sizeof(h);
    }
    if (h.kind == PREP_EVENT) {
        offer = (const tt_aev *)(const void *)body;
    } else if (h.kind == PREP_INVALID) {
        why = body;
        offer = NULL;
    } else if (tt_aev_scan(body, len, &ev, &a->scratch, err, sizeof(err)) != 0) {
        offer = NULL;
    } else {
        ev.seq = ord;
    }
    if (offer == NULL) {
        if (a->invalid++ < MAX_LOGGED_INVALID) {
            tt_warn("event #%lld skipped: %s", (long long)ord, why);
        }
        return 0;
    }
    if (tt_engine_offer(a->engine, offer) < 0) {
        a->oom = 1;
        return 1;
    }
    a->since_checkpoint++;
    return 0;
}

/* Following: the analyzer clock. Event time (the watermark) while there is a
 * backlog, so a replayed or delayed stream is applied in event-time order with
 * the timers in between; once caught up, also wall time - lateness, so
 * time-based findings come due on a quiet stream. */
static int64_t follow_clock(analyzer *a)
{
    int64_t wm = tt_engine_watermark(a->engine);
    int64_t lag = tt_source_lag(a->source);
    if (lag < 0) {
        /* not known yet (Kafka: before the assignment, or before the
         * incident reader is set up): hold, rather than let the token events
         * read so far run ahead of incidents not read yet */
        return INT64_MIN;
    }
    if (lag > 0) {
        if (a->kafka) {
            /* Kafka: no input may fall more than lateness behind the clock */
            int64_t t = tt_source_kafka_backlog_time(a->source);
            if (t == INT64_MIN) {
                return INT64_MIN;
            }
            if (t != INT64_MAX && t - a->cfg.lateness_ms < wm) {
                return t - a->cfg.lateness_ms;
            }
        }
        return wm;
    }
    int64_t clock = tt_time_now_ms() - a->cfg.lateness_ms;
    return wm > clock ? wm : clock;
}

/* Time-based state moves only while partitions are assigned: between a
 * revocation and the next assignment the tokens may be about to go to
 * another member, which continues from the clock committed at revocation. */
static int may_advance(const analyzer *a)
{
    return !a->kafka || tt_source_kafka_assigned(a->source);
}

/* Kafka: partitions are about to be revoked (rebalance or leaving the group).
 * Apply what is due, then commit state and findings; the source commits the
 * offsets (with the clock) after this returns 0. Runs inside
 * tt_source_poll/leave. */
static int on_revoke(void *ctx)
{
    analyzer *a = ctx;
    if (!a->once && tt_engine_advance(a->engine, follow_clock(a)) != 0) {
        a->oom = 1;
        return -1;
    }
    return checkpoint(a);
}

/* ---- Kafka hand-over: rebuilding the state of partitions taken over ---- */

typedef struct handover {
    tt_engine **rebuild; /* by partition: the engine replaying it, or NULL */
    int64_t *clock;      /* by partition: the committer's clock */
    int32_t *parts;      /* the partitions being rebuilt */
    size_t n_parts;
    tt_aev_scratch scratch;
    uint64_t records, invalid;
    int oom;
} handover;

/* Bounds the replay's reorder buffers: events behind the committer's clock
 * are applied as the replay goes. */
static void handover_advance(handover *h, int final)
{
    for (size_t i = 0; i < h->n_parts; i++) {
        tt_engine *r = h->rebuild[h->parts[i]];
        int64_t k = h->clock[h->parts[i]], wm = tt_engine_watermark(r);
        if (k == INT64_MIN) {
            k = wm; /* no clock committed (an older member): up to the watermark */
        } else if (!final && wm < k) {
            k = wm;
        }
        if (k != INT64_MIN && tt_engine_advance(r, k) != 0) {
            h->oom = 1;
        }
    }
}

static int on_handover_record(void *ctx, const char *body, size_t len, int64_t ord)
{
    handover *h = ctx;
    tt_aev ev;
    char err[256];
    if (tt_aev_scan(body, len, &ev, &h->scratch, err, sizeof(err)) != 0) {
        h->invalid++;
        return 0;
    }
    ev.seq = ord;
    int incident = ev.type == TT_EV_INCIDENT_OPENED || ev.type == TT_EV_INCIDENT_RESOLVED;
    if (incident) {
        for (size_t i = 0; i < h->n_parts; i++) {
            if (tt_engine_offer(h->rebuild[h->parts[i]], &ev) < 0) {
                h->oom = 1;
            }
        }
    } else {
        tt_engine *r = h->rebuild[ord % TT_SOURCE_KAFKA_MAX_PARTITIONS];
        if (r && tt_engine_offer(r, &ev) < 0) {
            h->oom = 1;
        }
    }
    if (++h->records % 65536 == 0) {
        handover_advance(h, 0);
    }
    return h->oom;
}

/* The source's on_assign: drop the state of partitions that left, and
 * rebuild the state of partitions another member moved on. A rebuild replays
 * the partition's token events below the committed offset (and every
 * incident) into a separate engine, up to the clock the committer
 * checkpointed with; its findings were reported by that member, so they are
 * discarded. The tokens and the still-buffered events then move into this
 * engine, whose own clock runs their timers from there. */
static int on_assign(void *ctx, tt_source *src, const tt_source_kafka_handover *hv, size_t n)
{
    analyzer *a = ctx;
    int rc = 0;
    size_t n_restore = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t gone = 0;
        if (hv[i].drop && tt_engine_drop_partition(a->engine, hv[i].partition, &gone) != 0) {
            tt_error("kafka: out of memory dropping the state of partition %d",
                     (int)hv[i].partition);
            rc = -1;
        } else if (hv[i].drop) {
            tt_info("kafka: partition %d: dropped %llu tokens and buffered events (%s)",
                    (int)hv[i].partition, (unsigned long long)gone,
                    hv[i].restore ? "stale: another member moved it on" : "now another member's");
        }
        n_restore += hv[i].restore != 0;
    }
    if (n_restore == 0) {
        return rc;
    }
    handover h;
    memset(&h, 0, sizeof(h));
    int64_t *until = malloc(TT_SOURCE_KAFKA_MAX_PARTITIONS * sizeof(*until));
    h.rebuild = calloc(TT_SOURCE_KAFKA_MAX_PARTITIONS, sizeof(*h.rebuild));
    h.clock = calloc(TT_SOURCE_KAFKA_MAX_PARTITIONS, sizeof(*h.clock));
    h.parts = calloc(n_restore, sizeof(*h.parts));
    if (until == NULL || h.rebuild == NULL || h.clock == NULL || h.parts == NULL) {
        h.oom = 1;
    }
    for (size_t i = 0; !h.oom && i < TT_SOURCE_KAFKA_MAX_PARTITIONS; i++) {
        until[i] = -1;
    }
    for (size_t i = 0; !h.oom && i < n; i++) {
        int32_t p = hv[i].partition;
        if (!hv[i].restore || p < 0 || p >= TT_SOURCE_KAFKA_MAX_PARTITIONS) {
            continue;
        }
        h.rebuild[p] = tt_engine_new(a->policy, a->cfg.lateness_ms, NULL, NULL);
        if (h.rebuild[p] == NULL) {
            h.oom = 1;
            break;
        }
        tt_engine_set_partitions(h.rebuild[p], TT_SOURCE_KAFKA_MAX_PARTITIONS);
        until[p] = hv[i].committed;
        h.clock[p] = hv[i].clock_ms;
        h.parts[h.n_parts++] = p;
    }
    char err[512] = "out of memory";
    int64_t t0 = tt_time_mono_ns();
    int64_t got = h.oom ? -1
                        : tt_source_kafka_replay(src, until, TT_SOURCE_KAFKA_MAX_PARTITIONS,
                                                 on_handover_record, &h, err, sizeof(err));
    if (got >= 0 && !h.oom) {
        handover_advance(&h, 1);
    }
    for (size_t i = 0; got >= 0 && !h.oom && i < h.n_parts; i++) {
        int32_t p = h.parts[i];
        uint64_t toks = 0, evs = 0;
        if (tt_engine_transfer(h.rebuild[p], a->engine, &toks, &evs) != 0) {
            h.oom = 1;
            break;
        }
        tt_info("kafka: partition %d taken over at offset %lld: %llu tokens and %llu buffered "
                "events rebuilt up to the committed clock %lld (%.1f s)",
                (int)p, (long long)until[p], (unsigned long long)toks, (unsigned long long)evs,
                (long long)h.clock[p], (double)(tt_time_mono_ns() - t0) / 1e9);
    }
    if (got < 0 || h.oom) {
        tt_error("kafka: rebuilding the state of %zu partitions: %s", h.n_parts,
                 h.oom ? "out of memory" : err);
        rc = -1;
    }
    for (size_t i = 0; h.rebuild && i < h.n_parts; i++) {
        tt_engine_free(h.rebuild[h.parts[i]]);
    }
    tt_aev_scratch_free(&h.scratch);
    free(until);
    free(h.rebuild);
    free(h.clock);
    free(h.parts);
    return rc;
}

/* ---- /metrics ---- */

static void render(void *ctx, tt_buf *b)
{
    analyzer *a = ctx;
    snapshot s;
    pthread_mutex_lock(&a->snap.mu);
    s.st = a->snap.st;
    memcpy(s.findings, a->snap.findings, sizeof(s.findings));
    s.invalid = a->snap.invalid;
    s.checkpoints = a->snap.checkpoints;
    s.checkpoint_failures = a->snap.checkpoint_failures;
    s.alerts_sent = a->snap.alerts_sent;
    s.alerts_failed = a->snap.alerts_failed;
    s.produced = a->snap.produced;
    s.produce_failed = a->snap.produce_failed;
    s.commit_failures = a->snap.commit_failures;
    s.source_lag = a->snap.source_lag;
    pthread_mutex_unlock(&a->snap.mu);

    tt_metrics_family(b, "tokentrail_build_info", "gauge", "Version of the running binary.");
    tt_buf_printf(b, "tokentrail_build_info{version=\"%s\",component=\"analyzer\"} 1\n",
                  TT_VERSION);
    tt_metrics_family(b, "tokentrail_findings_total", "counter",
                      "New findings committed by this process, by kind and severity.");
    for (int k = 0; k < TT_FK__COUNT; k++) {
        tt_buf_printf(b, "tokentrail_findings_total{kind=\"%s\",severity=\"%s\"} %llu\n",
                      tt_finding_kind_name(k), tt_severity_name(tt_finding_kind_severity(k)),
                      (unsigned long long)s.findings[k]);
    }
    tt_metrics_family(b, "tokentrail_tokens_lingering", "gauge",
                      "Tokens lingering right now: valid after their incident (outlived_incident), "
                      "valid but idle (idle_token), valid longer than policy (ttl_over_policy).");
    static const tt_finding_kind ling[] = {TT_FK_OUTLIVED_INCIDENT, TT_FK_IDLE_TOKEN,
                                           TT_FK_TTL_OVER_POLICY};
    for (size_t i = 0; i < sizeof(ling) / sizeof(ling[0]); i++) {
        tt_buf_printf(b, "tokentrail_tokens_lingering{kind=\"%s\"} %lld\n",
                      tt_finding_kind_name(ling[i]), (long long)s.st.lingering[ling[i]]);
    }
    tt_metrics_family(b, "tokentrail_analyzer_events_total", "counter",
                      "Events read by the analyzer, by outcome.");
    tt_buf_printf(b, "tokentrail_analyzer_events_total{outcome=\"processed\"} %llu\n",
                  (unsigned long long)s.st.events_processed);
    tt_buf_printf(b, "tokentrail_analyzer_events_total{outcome=\"duplicate\"} %llu\n",
                  (unsigned long long)s.st.duplicates);
    tt_buf_printf(b, "tokentrail_analyzer_events_total{outcome=\"late\"} %llu\n",
                  (unsigned long long)s.st.late);
    tt_buf_printf(b, "tokentrail_analyzer_events_total{outcome=\"invalid\"} %llu\n",
                  (unsigned long long)s.invalid);
    tt_buf_printf(b, "tokentrail_analyzer_events_total{outcome=\"unknown_token\"} %llu\n",
                  (unsigned long long)s.st.unknown_token);
    tt_metrics_family(b, "tokentrail_analyzer_watermark_seconds", "gauge",
                      "Event time up to which events are in order: max event time - lateness.");
    tt_buf_printf(b, "tokentrail_analyzer_watermark_seconds %.3f\n",
                  s.st.watermark_ms == INT64_MIN ? 0.0 : (double)s.st.watermark_ms / 1000.0);
    tt_metrics_family(b, "tokentrail_analyzer_clock_seconds", "gauge",
                      "The analyzer clock: time-based findings are evaluated up to here.");
    tt_buf_printf(b, "tokentrail_analyzer_clock_seconds %.3f\n",
                  s.st.clock_ms == INT64_MIN ? 0.0 : (double)s.st.clock_ms / 1000.0);
    tt_metrics_family(b, "tokentrail_analyzer_lag_seconds", "gauge",
                      "Wall clock minus the newest event time seen.");
    tt_buf_printf(b, "tokentrail_analyzer_lag_seconds %.3f\n",
                  s.st.max_event_ms == INT64_MIN
                      ? 0.0
                      : (double)(tt_time_now_ms() - s.st.max_event_ms) / 1000.0);
    tt_metrics_family(b, "tokentrail_analyzer_source_lag_events", "gauge",
                      "Events in the store not yet read by the analyzer.");
    tt_buf_printf(b, "tokentrail_analyzer_source_lag_events %lld\n", (long long)s.source_lag);
    tt_metrics_family(b, "tokentrail_analyzer_tokens", "gauge",
                      "Tokens held in memory (live and recently ended).");
    tt_buf_printf(b, "tokentrail_analyzer_tokens %llu\n", (unsigned long long)s.st.tokens);
    tt_metrics_family(b, "tokentrail_analyzer_buffered_events", "gauge",
                      "Events waiting in the reorder buffer.");
    tt_buf_printf(b, "tokentrail_analyzer_buffered_events %llu\n",
                  (unsigned long long)s.st.buffered);
    tt_metrics_family(b, "tokentrail_analyzer_state_bytes", "gauge",
                      "Approximate memory held by analyzer state.");
    tt_buf_printf(b, "tokentrail_analyzer_state_bytes %zu\n", s.st.memory_bytes);
    tt_metrics_family(b, "tokentrail_analyzer_checkpoints_total", "counter",
                      "Checkpoint transactions, by result.");
    tt_buf_printf(b, "tokentrail_analyzer_checkpoints_total{result=\"ok\"} %llu\n",
                  (unsigned long long)s.checkpoints);
    tt_buf_printf(b, "tokentrail_analyzer_checkpoints_total{result=\"failed\"} %llu\n",
                  (unsigned long long)s.checkpoint_failures);
    tt_metrics_family(b, "tokentrail_analyzer_alerts_total", "counter",
                      "Findings pushed to Alertmanager, by result.");
    tt_buf_printf(b, "tokentrail_analyzer_alerts_total{result=\"sent\"} %llu\n",
                  (unsigned long long)s.alerts_sent);
    tt_buf_printf(b, "tokentrail_analyzer_alerts_total{result=\"failed\"} %llu\n",
                  (unsigned long long)s.alerts_failed);
    if (a->kafka) {
        tt_metrics_family(b, "tokentrail_analyzer_findings_produced_total", "counter",
                          "Findings produced to the findings topic, by delivery result.");
        tt_buf_printf(b, "tokentrail_analyzer_findings_produced_total{result=\"delivered\"} %llu\n",
                      (unsigned long long)s.produced);
        tt_buf_printf(b, "tokentrail_analyzer_findings_produced_total{result=\"failed\"} %llu\n",
                      (unsigned long long)s.produce_failed);
        tt_metrics_family(b, "tokentrail_analyzer_offset_commit_failures_total", "counter",
                          "Kafka offset commits that failed (retried at the next checkpoint).");
        tt_buf_printf(b, "tokentrail_analyzer_offset_commit_failures_total %llu\n",
                      (unsigned long long)s.commit_failures);
    }
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the two modes ---- */

static int run_once(analyzer *a)
{
    char err[512];
    for (;;) {
        int64_t n = tt_source_poll(a->source, (size_t)a->cfg.batch, on_record, a, err, sizeof(err));
        if (n < 0 || a->oom) {
            tt_error("%s", a->oom ? "out of memory" : err);
            return 2;
        }
        if (may_advance(a) &&
            (tt_engine_advance(a->engine, tt_engine_watermark(a->engine)) != 0 || a->oom)) {
            tt_error("out of memory");
            return 2;
        }
        if (n == 0 || stop_signal) {
            break;
        }
        if (a->since_checkpoint >= ONCE_CHECKPOINT_EVENTS && checkpoint(a) != 0) {
            return 2;
        }
    }
    if (stop_signal) {
        tt_warn("signal %d: stopping before the end of the stream", (int)stop_signal);
    }
    if (tt_engine_flush(a->engine, a->as_of) != 0 || a->oom) {
        tt_error("out of memory");
        return 2;
    }
    if (checkpoint(a) != 0) {
        return 2;
    }
    publish(a);
    if (a->n_out > 1) {
        qsort(a->out, a->n_out, sizeof(*a->out), cmp_row);
    }
    if (!a->as_json) {
        tt_findings_print_header();
    }
    for (size_t i = 0; i < a->n_out; i++) {
        tt_findings_print(a->out[i]->json, strlen(a->out[i]->json), a->as_json);
    }
    if (!a->as_json) {
        printf("(%zu new findings)\n", a->n_out);
    }
    if (fflush(stdout) != 0) {
        return 2;
    }
    tt_engine_stats st;
    tt_engine_get_stats(a->engine, &st);
    tt_info("analysed %llu events (%llu duplicates, %llu late, %llu invalid); %zu new findings",
            (unsigned long long)st.events_processed, (unsigned long long)st.duplicates,
            (unsigned long long)st.late, (unsigned long long)a->invalid, a->n_out);
    /* Per token only where the fixed tables no longer dominate the total. */
    if (st.tokens >= 1000) {
        tt_info("state: %llu tokens in about %zu KiB (%zu bytes per token)",
                (unsigned long long)st.tokens, st.memory_bytes / 1024,
                st.memory_bytes / st.tokens);
    } else {
        tt_info("state: %llu tokens in about %zu KiB", (unsigned long long)st.tokens,
                st.memory_bytes / 1024);
    }
    if (a->produce_failed) {
        tt_error("some findings were not delivered to Kafka (they are in the findings table)");
        return 2;
    }
    return a->n_out > 0 ? 3 : 0;
}

static int run_follow(analyzer *a)
{
    char err[512];
    int64_t last_ck = tt_time_mono_ns();
    if (!a->as_json) {
        tt_findings_print_header();
        fflush(stdout);
    }
    while (!stop_signal) {
        int64_t n = tt_source_poll(a->source, (size_t)a->cfg.batch, on_record, a, err, sizeof(err));
        if (n < 0) {
            tt_warn("%s (will retry)", err);
        }
        if (may_advance(a) && (tt_engine_advance(a->engine, follow_clock(a)) != 0 || a->oom)) {
            tt_error("out of memory");
            return 2;
        }
        int64_t now = tt_time_mono_ns();
        if (a->n_rows > 0 || now - last_ck >= a->cfg.checkpoint_interval_ms * 1000000) {
            checkpoint(a);
            last_ck = now;
        }
        publish(a);
        if (n <= 0) {
            for (int64_t t = 0; t < a->cfg.poll_interval_ms && !stop_signal; t += 50) {
                sleep_ms(a->cfg.poll_interval_ms - t < 50 ? a->cfg.poll_interval_ms - t : 50);
            }
        }
    }
    tt_info("signal %d: checkpointing and stopping", (int)stop_signal);
    if (may_advance(a)) {
        tt_engine_advance(a->engine, follow_clock(a));
    }
    if (checkpoint(a) != 0) {
        return 2;
    }
    tt_info("checkpoint committed; bye");
    return 0;
}

int tt_cmd_analyze(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"db", required_argument, NULL, 'd'},
        {"policy", required_argument, NULL, 'p'},
        {"once", no_argument, NULL, 'O'},
        {"as-of", required_argument, NULL, 'A'},
        {"lateness", required_argument, NULL, 'L'},
        {"format", required_argument, NULL, 'f'},
        {"listen", required_argument, NULL, 'l'},
        {"port-file", required_argument, NULL, 'P'},
        {"alertmanager", required_argument, NULL, 'M'},
        {"log-level", required_argument, NULL, 'v'},
        {"kafka-brokers", required_argument, NULL, 'K'},
        {"topic", required_argument, NULL, 'T'},
        {"group", required_argument, NULL, 'G'},
        {"state", required_argument, NULL, 'S'},
        {"findings-topic", required_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    tt_cfg_flags flags = {.n = 0};
    const char *config_path = NULL, *as_of = NULL;
    int once = 0, listen_given = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:d:p:f:l:h", opts, NULL)) != -1) {
        const char *key = NULL;
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'd': key = "db"; break;
        case 'p': key = "policy"; break;
        case 'O': once = 1; break;
        case 'A': as_of = optarg; break;
        case 'L': key = "lateness"; break;
        case 'f': key = "format"; break;
        case 'l':
            key = "listen";
            listen_given = 1;
            break;
        case 'P': key = "port_file"; break;
        case 'M': key = "alertmanager"; break;
        case 'v': key = "log_level"; break;
        case 'K': key = "kafka.brokers"; break;
        case 'T': key = "kafka.topic"; break;
        case 'G': key = "kafka.group"; break;
        case 'S': key = "state"; break;
        case 'F': key = "kafka.findings_topic"; break;
        case 'h': usage(stdout); return 0;
        default: fprintf(stderr, "tokentrail analyze: try 'tokentrail analyze --help'\n"); return 2;
        }
        if (key) {
            const char *flag = NULL;
            for (const struct option *o = opts; o->name; o++) {
                if (o->val == c) {
                    flag = o->name;
                }
            }
            if (tt_cfg_flags_add(&flags, key, optarg, flag) != 0) {
                fprintf(stderr, "tokentrail analyze: too many options\n");
                return 2;
            }
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tokentrail analyze: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    analyzer a;
    memset(&a, 0, sizeof(a));
    pthread_mutex_init(&a.snap.mu, NULL);
    a.once = once;
    char err[1024];
    int rc = 2;
    if (tt_config_build(tt_analyze_config_table, &a.cfg, config_path, &flags, err, sizeof(err)) !=
        0) {
        fprintf(stderr, "tokentrail analyze: %s\n", err);
        goto out;
    }
    if (a.cfg.policy == NULL) {
        fprintf(stderr, "tokentrail analyze: --policy FILE is required\n");
        goto out;
    }
    tt_log_level lvl;
    if (tt_log_level_parse(a.cfg.log_level, &lvl) != 0) {
        fprintf(stderr, "tokentrail analyze: log_level: '%s' is not error, warn, info or debug\n",
                a.cfg.log_level);
        goto out;
    }
    tt_log_set_level(lvl);
    a.as_json = !isatty(STDOUT_FILENO);
    if (a.cfg.format) {
        if (strcmp(a.cfg.format, "json") == 0) {
            a.as_json = 1;
        } else if (strcmp(a.cfg.format, "table") == 0) {
            a.as_json = 0;
        } else {
            fprintf(stderr, "tokentrail analyze: --format (config format): '%s' is not table "
                            "or json\n", a.cfg.format);
            goto out;
        }
    }
    if (a.cfg.alertmanager && strncmp(a.cfg.alertmanager, "http://", 7) != 0 &&
        strncmp(a.cfg.alertmanager, "https://", 8) != 0) {
        fprintf(stderr, "tokentrail analyze: --alertmanager (config alertmanager): '%s' is not an "
                        "http:// or https:// URL (Alertmanager's base URL, e.g. "
                        "http://127.0.0.1:9093)\n", a.cfg.alertmanager);
        goto out;
    }
    a.as_of = tt_time_now_ms();
    if (as_of) {
        if (!once) {
            fprintf(stderr, "tokentrail analyze: --as-of only applies with --once\n");
            goto out;
        }
        if (tt_time_parse_when(as_of, tt_time_now_ms(), &a.as_of) != 0) {
            fprintf(stderr,
                    "tokentrail analyze: --as-of: '%s' is not a time (RFC 3339, epoch or "
                    "a duration like 15m)\n",
                    as_of);
            goto out;
        }
    }
    /* Before anything is announced (the port file, the log line): a SIGTERM
     * from a supervisor that saw the port file stops the run cleanly, with a
     * checkpoint, instead of killing it. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    a.policy = tt_policy_load(a.cfg.policy, err, sizeof(err));
    if (a.policy == NULL) {
        fprintf(stderr, "tokentrail analyze: %s\n", err);
        goto out;
    }
    const char *where = a.cfg.db;
    char kwhere[1024];
    if (a.cfg.kafka_brokers) {
        tt_source_kafka_opts ko = {.brokers = a.cfg.kafka_brokers,
                                   .topic = a.cfg.kafka_topic,
                                   .group = a.cfg.kafka_group,
                                   .props = &a.cfg.kafka_props,
                                   .once = once,
                                   .timeout_ms = a.cfg.kafka_timeout_ms,
                                   .all_incidents = 1,
                                   .on_revoke = on_revoke,
                                   .on_assign = on_assign,
                                   .ctx = &a};
        a.kafka = 1;
        a.source = tt_source_kafka_open(&ko, err, sizeof(err));
        a.fout = a.source ? tt_findings_out_new(a.cfg.kafka_brokers, a.cfg.findings_topic,
                                                &a.cfg.kafka_props, err, sizeof(err))
                          : NULL;
        if (a.source == NULL || a.fout == NULL) {
            fprintf(stderr, "tokentrail analyze: %s\n", err);
            goto out;
        }
        a.store = tt_anstore_create(a.cfg.state, err, sizeof(err));
        snprintf(kwhere, sizeof(kwhere), "kafka %s topic %s group %s, state in %s",
                 a.cfg.kafka_brokers, a.cfg.kafka_topic, a.cfg.kafka_group, a.cfg.state);
        where = kwhere;
    } else {
        a.source = tt_source_sqlite_open(a.cfg.db, err, sizeof(err));
        if (a.source == NULL) {
            fprintf(stderr, "tokentrail analyze: %s\n", err);
            goto out;
        }
        /* parse the bodies on the source's read-ahead thread */
        tt_source_sqlite_set_prepare(a.source, prepare, &a.prep_scratch);
        a.prepared = 1;
        a.store = tt_anstore_open(a.cfg.db, 0, err, sizeof(err));
    }
    a.engine = tt_engine_new(a.policy, a.cfg.lateness_ms, on_finding, &a);
    if (a.store == NULL || a.engine == NULL) {
        fprintf(stderr, "tokentrail analyze: %s\n", a.store ? "out of memory" : err);
        goto out;
    }
    if (a.kafka) {
        tt_engine_set_partitions(a.engine, TT_SOURCE_KAFKA_MAX_PARTITIONS);
    }
    int restored = tt_anstore_restore(a.store, a.engine, a.source, err, sizeof(err));
    if (restored < 0) {
        fprintf(stderr, "tokentrail analyze: %s\n", err);
        goto out;
    }
    char pos[TT_SOURCE_MAX_POSITION];
    tt_source_position(a.source, pos);
    if (!once || listen_given) {
        a.httpd = tt_httpd_start(a.cfg.listen, render, &a, err, sizeof(err));
        if (a.httpd == NULL) {
            fprintf(stderr, "tokentrail analyze: %s\n", err);
            goto out;
        }
        if (a.cfg.port_file &&
            tt_httpd_write_port_file(a.cfg.port_file, tt_httpd_port(a.httpd)) != 0) {
            fprintf(stderr, "tokentrail analyze: port_file: cannot write %s\n", a.cfg.port_file);
            goto out;
        }
    }
    publish(&a);
    char metrics_on[64] = "";
    if (a.httpd) {
        snprintf(metrics_on, sizeof(metrics_on), "; metrics on port %u",
                 (unsigned)tt_httpd_port(a.httpd));
    }
    tt_info("tokentrail %s analyzing %s (%s, continuing after %s)%s", TT_VERSION, where,
            once ? "once" : "following", restored ? pos : "the start", metrics_on);

    rc = once ? run_once(&a) : run_follow(&a);
    if (a.kafka && rc != 2) {
        /* Leave the group now, while on_revoke can still checkpoint; after an
         * error close without committing (the events are read again). */
        tt_source_kafka_leave(a.source);
    }

out:
    tt_httpd_stop(a.httpd);
    for (size_t i = 0; i < a.n_rows; i++) {
        tt_finding_row_free(a.rows[i]);
    }
    for (size_t i = 0; i < a.n_out; i++) {
        tt_finding_row_free(a.out[i]);
    }
    free(a.rows);
    free(a.out);
    tt_source_close(a.source); /* before the engine: no revoke callback after this */
    if (tt_findings_out_close(a.fout, FINDINGS_DELIVERY_TIMEOUT_MS) > 0 && rc != 2) {
        rc = 2;
    }
    tt_engine_free(a.engine);
    tt_anstore_close(a.store);
    tt_policy_free(a.policy);
    tt_aev_scratch_free(&a.scratch);
    tt_aev_scratch_free(&a.prep_scratch);
    tt_config_free(tt_analyze_config_table, &a.cfg);
    pthread_mutex_destroy(&a.snap.mu);
    return rc;
}
