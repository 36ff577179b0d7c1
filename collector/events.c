/* events.c - `tokentrail events`: read events back from the SQLite store or
 * from the Kafka topic, for people (a table) and scripts (NDJSON). */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "collector.h"
#include "tt_buf.h"
#include "tt_event.h"
#include "tt_kafka.h"
#include "tt_kafka_read.h"
#include "tt_store.h"
#include "tt_text.h"
#include "tt_time.h"

/* Most matching events `events --kafka-brokers` holds to sort by time. */
#define TT_EVENTS_KAFKA_MAX 2000000

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: tokentrail events --db PATH [FILTERS] [--format table|json]\n"
            "       tokentrail events --kafka-brokers LIST [--topic T] [FILTERS] [...]\n"
            "\n"
            "Print stored events in event-time order.\n"
            "\n"
            "Options:\n"
            "  -d, --db PATH          SQLite database written by 'tokentrail collect'\n"
            "      --kafka-brokers L  read the Kafka topic instead (HOST:PORT[,...]); reads up\n"
            "                         to the end as of now, commits no offsets\n"
            "      --topic T          Kafka topic (default tokentrail.events)\n"
            "  -X, --kafka-property K=V  a librdkafka property (TLS, SASL); repeatable\n"
            "  -t, --type TYPE        only this type (token.issued, token.used, token.revoked,\n"
            "                         incident.opened, incident.resolved)\n"
            "      --token ID         only events of this token_id, in full as the table\n"
            "                         shows it (e.g. sha256:<64 hex>)\n"
            "      --incident ID      only events naming this incident_id\n"
            "      --since T          event time >= T (RFC 3339, epoch, or a duration ago: 15m)\n"
            "      --until T          event time < T (same forms)\n"
            "  -n, --limit N          at most N events\n"
            "  -f, --format FMT       table (default on a terminal) or json (NDJSON, default\n"
            "                         when piped)\n"
            "  -h, --help             show this help\n"
            "\n"
            "With Kafka, --since seeks each partition with offsets-for-times (the\n"
            "collector stamps messages with the event time); at most %d matching\n"
            "events are sorted and printed.\n"
            "\n"
            "Exit status: 0 on success (also when nothing matched), 2 on error.\n",
            TT_EVENTS_KAFKA_MAX);
}

/* Longest table row: every field of the largest event, each byte possibly
 * escaped to four (tt_text); more is an error, never a cut row. */
#define TT_EVENTS_ROW_MAX (1024 * 1024)

/* Table columns, in bytes. Token ids are shown whole (a sha256 fingerprint
 * is "sha256:" + 64 hex) so that any id in the table works with --token. */
#define COL_TIME 24
#define COL_TYPE 17
#define COL_KEY (TT_FINGERPRINT_BUFSZ - 1)
#define COL_WHO 16

/* The string at o[k], or NULL when absent or not a string. */
static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

typedef struct print_ctx {
    int json;
    int header_done;
    int failed; /* a table row could not be formatted (out of memory) */
    int64_t n;
    tt_buf line;
} print_ctx;

static void print_header(print_ctx *pc)
{
    if (!pc->header_done) {
        printf("%-*s  %-*s  %-*s  %-*s  %s\n", COL_TIME, "TIME", COL_TYPE, "TYPE", COL_KEY,
               "TOKEN/INCIDENT", COL_WHO, "SUBJECT/CLIENT", "DETAIL");
        pc->header_done = 1;
    }
}

/* Append " name=value" (or "name=value" at the start of the detail, which
 * begins at offset from) with value escaped; nothing when value is absent. */
static int add_detail(tt_buf *b, size_t from, const char *name, const char *value)
{
    if (value == NULL) {
        return 0;
    }
    if ((b->len > from && tt_buf_add(b, " ", 1) != 0) || tt_buf_adds(b, name) != 0) {
        return -1;
    }
    return tt_text_add_escaped(b, value, 0);
}

/* Like add_detail for a list of strings: name[a b c]. */
static int add_detail_list(tt_buf *b, size_t from, const char *name, json_t *arr)
{
    if (!json_is_array(arr)) {
        return 0;
    }
    if ((b->len > from && tt_buf_add(b, " ", 1) != 0) || tt_buf_adds(b, name) != 0 ||
        tt_buf_add(b, "[", 1) != 0) {
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(v);
        if ((i > 0 && tt_buf_add(b, " ", 1) != 0) || tt_text_add_escaped(b, s ? s : "", 0) != 0) {
            return -1;
        }
    }
    return tt_buf_add(b, "]", 1);
}

/* The DETAIL column: the fields that matter for the type, absent ones left
 * out (docs/events.md). */
static int add_row_detail(tt_buf *b, const char *type, json_t *data)
{
    size_t from = b->len;
    if (strcmp(type, "token.issued") == 0) {
        return add_detail_list(b, from, "scopes=", json_object_get(data, "scopes")) ||
               add_detail(b, from, "expires=", jstr(data, "expires_at"));
    }
    if (strcmp(type, "token.used") == 0) {
        json_t *st = json_object_get(data, "status");
        if (add_detail(b, from, "", jstr(data, "resource")) ||
            add_detail(b, from, "", jstr(data, "method")) ||
            add_detail(b, from, "", jstr(data, "path"))) {
            return -1;
        }
        if (json_is_integer(st)) {
            return tt_buf_printf(b, "%s-> %lld", b->len > from ? " " : "",
                                 (long long)json_integer_value(st));
        }
        return 0;
    }
    if (strcmp(type, "token.revoked") == 0) {
        return add_detail(b, from, "reason=", jstr(data, "reason")) ||
               add_detail(b, from, "actor=", jstr(data, "actor"));
    }
    if (strcmp(type, "incident.resolved") == 0) {
        return add_detail(b, from, "resolved_at=", jstr(data, "resolved_at"));
    }
    return add_detail(b, from, "", jstr(data, "severity")) ||
           add_detail(b, from, "", jstr(data, "title")) ||
           add_detail_list(b, from, "", json_object_get(data, "services"));
}

/* One table row. Every value comes from the event, so every value goes
 * through tt_text: a field must not be able to drive the terminal. */
static int format_row(tt_buf *b, json_t *ev)
{
    json_t *data = json_object_get(ev, "data");
    const char *type = jstr(ev, "type");
    type = type ? type : "";
    const char *key = jstr(data, strncmp(type, "token.", 6) == 0 ? "token_id" : "incident_id");
    const char *who = jstr(data, "subject") ? jstr(data, "subject") : jstr(data, "client_id");
    tt_buf_reset(b);
    if (tt_text_add_cell(b, jstr(ev, "time") ? jstr(ev, "time") : "", COL_TIME, 0) != 0 ||
        tt_buf_add(b, "  ", 2) != 0 || tt_text_add_cell(b, type, COL_TYPE, 0) != 0 ||
        tt_buf_add(b, "  ", 2) != 0 || tt_text_add_cell(b, key ? key : "", COL_KEY, 0) != 0 ||
        tt_buf_add(b, "  ", 2) != 0 || tt_text_add_cell(b, who ? who : "", COL_WHO, 1) != 0 ||
        tt_buf_add(b, "  ", 2) != 0 || add_row_detail(b, type, data) != 0 ||
        tt_buf_add(b, "\n", 1) != 0) {
        return -1;
    }
    return 0;
}

static int print_row(void *arg, const char *body, size_t len)
{
    print_ctx *pc = arg;
    pc->n++;
    if (pc->json) {
        fwrite(body, 1, len, stdout);
        fputc('\n', stdout);
        return 0;
    }
    print_header(pc);
    json_t *ev = json_loadb(body, len, 0, NULL);
    if (ev == NULL) {
        return 0;
    }
    int rc = format_row(&pc->line, ev);
    json_decref(ev);
    if (rc != 0) {
        pc->failed = 1;
        return 1;
    }
    fwrite(pc->line.data, 1, pc->line.len, stdout);
    return 0;
}

/* One matching event read from Kafka, waiting to be sorted. */
typedef struct kafka_event {
    int64_t time_ms;
    int32_t partition;
    int64_t offset;
    char *body;
    size_t len;
} kafka_event;

typedef struct kafka_ctx {
    const tt_store_query *q;
    kafka_event *v;
    size_t n, cap;
    int too_many;
    int oom;
    int64_t unreadable;
} kafka_ctx;

/* 1 when the field a (NULL = absent) is b. */
static int same(const char *a, const char *b)
{
    return a != NULL && strcmp(a, b) == 0;
}

/* The same filters the SQLite query applies, on the stored JSON. */
static int kafka_match(const tt_store_query *q, json_t *ev, int64_t *time_ms)
{
    json_t *data = json_object_get(ev, "data");
    const char *why;
    if (tt_time_from_json(json_object_get(ev, "time"), time_ms, &why) != 0) {
        return -1;
    }
    if (*time_ms < q->since_ms || *time_ms >= q->until_ms) {
        return 0;
    }
    if (q->type && !same(jstr(ev, "type"), q->type)) {
        return 0;
    }
    if (q->token_id && !same(jstr(data, "token_id"), q->token_id)) {
        return 0;
    }
    if (q->incident_id && !same(jstr(data, "incident_id"), q->incident_id)) {
        return 0;
    }
    return 1;
}

static int kafka_collect(void *arg, const tt_kafka_msg *m)
{
    kafka_ctx *c = arg;
    json_t *ev = json_loadb(m->value, m->len, 0, NULL);
    int64_t t = 0;
    int match = ev ? kafka_match(c->q, ev, &t) : -1;
    json_decref(ev);
    if (match < 0) {
        c->unreadable++;
        return 0;
    }
    if (match == 0) {
        return 0;
    }
    if (c->n == TT_EVENTS_KAFKA_MAX) {
        c->too_many = 1;
        return 1;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 1024;
        kafka_event *v = realloc(c->v, cap * sizeof(*v));
        if (v == NULL) {
            c->oom = 1;
            return 1;
        }
        c->v = v;
        c->cap = cap;
    }
    char *body = malloc(m->len);
    if (body == NULL) {
        c->oom = 1;
        return 1;
    }
    memcpy(body, m->value, m->len);
    c->v[c->n++] = (kafka_event){t, m->partition, m->offset, body, m->len};
    return 0;
}

/* Event time, then partition and offset (arrival order within a partition). */
static int cmp_kafka_event(const void *a, const void *b)
{
    const kafka_event *x = a, *y = b;
    if (x->time_ms != y->time_ms) {
        return x->time_ms < y->time_ms ? -1 : 1;
    }
    if (x->partition != y->partition) {
        return x->partition < y->partition ? -1 : 1;
    }
    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Read, filter, sort and print from Kafka. Returns the number printed or -1. */
static int64_t events_from_kafka(const tt_kafka_read_opts *ko, const tt_store_query *q,
                                 print_ctx *pc, char *err, size_t errlen)
{
    kafka_ctx c = {.q = q};
    int64_t n = tt_kafka_read(ko, kafka_collect, &c, err, errlen);
    if (n >= 0 && c.too_many) {
        snprintf(err, errlen,
                 "more than %d matching events in %s: narrow with --since, "
                 "--until or a filter",
                 TT_EVENTS_KAFKA_MAX, ko->topic);
        n = -1;
    } else if (n >= 0 && c.oom) {
        snprintf(err, errlen, "out of memory");
        n = -1;
    }
    if (c.unreadable > 0) {
        fprintf(stderr,
                "tokentrail events: skipped %lld messages that are not tokentrail "
                "events\n",
                (long long)c.unreadable);
    }
    int64_t printed = 0;
    if (n >= 0) {
        qsort(c.v, c.n, sizeof(*c.v), cmp_kafka_event);
        for (size_t i = 0; i < c.n && (q->limit <= 0 || printed < q->limit); i++) {
            if (print_row(pc, c.v[i].body, c.v[i].len) != 0) {
                break;
            }
            printed++;
        }
    }
    for (size_t i = 0; i < c.n; i++) {
        free(c.v[i].body);
    }
    free(c.v);
    return n < 0 ? -1 : printed;
}

int tt_cmd_events(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"type", required_argument, NULL, 't'},
        {"token", required_argument, NULL, 'T'},
        {"incident", required_argument, NULL, 'I'},
        {"since", required_argument, NULL, 's'},
        {"until", required_argument, NULL, 'u'},
        {"limit", required_argument, NULL, 'n'},
        {"format", required_argument, NULL, 'f'},
        {"kafka-brokers", required_argument, NULL, 'B'},
        {"topic", required_argument, NULL, 'P'},
        {"kafka-property", required_argument, NULL, 'X'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db = NULL, *format = NULL, *brokers = NULL, *topic = TT_KAFKA_DEFAULT_TOPIC;
    tt_strlist props = {NULL, 0};
    int rc = 2;
    tt_store_query q = {.since_ms = INT64_MIN, .until_ms = INT64_MAX};
    print_ctx pc = {.json = !isatty(STDOUT_FILENO)};
    tt_buf_init(&pc.line, TT_EVENTS_ROW_MAX);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:t:n:f:X:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': db = optarg; break;
        case 'B': brokers = optarg; break;
        case 'P': topic = optarg; break;
        case 'X':
            if (strchr(optarg, '=') == NULL || tt_strlist_add(&props, optarg) != 0) {
                fprintf(stderr, "tokentrail events: -X: '%s' is not KEY=VALUE\n", optarg);
                goto out;
            }
            break;
        case 't':
            if (tt_event_type_from_name(optarg) == TT_EV_UNKNOWN) {
                fprintf(stderr, "tokentrail events: --type: unknown event type '%s'\n", optarg);
                goto out;
            }
            q.type = optarg;
            break;
        case 'T': q.token_id = optarg; break;
        case 'I': q.incident_id = optarg; break;
        case 's':
        case 'u':
            if (tt_time_parse_when(optarg, tt_time_now_ms(),
                                   c == 's' ? &q.since_ms : &q.until_ms) != 0) {
                fprintf(stderr,
                        "tokentrail events: --%s: '%s' is not a time (RFC 3339, epoch "
                        "or a duration like 15m)\n",
                        c == 's' ? "since" : "until", optarg);
                goto out;
            }
            break;
        case 'n': {
            char *end;
            errno = 0;
            q.limit = strtoll(optarg, &end, 10);
            /* strtoll also takes leading blanks and a sign; a count does not. */
            if (optarg[0] < '0' || optarg[0] > '9' || *end != '\0' || q.limit <= 0) {
                fprintf(stderr, "tokentrail events: --limit: '%s' is not a positive number\n",
                        optarg);
                goto out;
            }
            if (errno == ERANGE) {
                fprintf(stderr, "tokentrail events: --limit: '%s' is too large (at most %lld)\n",
                        optarg, (long long)INT64_MAX);
                goto out;
            }
            break;
        }
        case 'f': format = optarg; break;
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        default: fprintf(stderr, "tokentrail events: try 'tokentrail events --help'\n"); goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tokentrail events: unexpected argument '%s'\n", argv[optind]);
        goto out;
    }
    if (db == NULL && brokers == NULL) {
        fprintf(stderr, "tokentrail events: --db PATH is required (or --kafka-brokers LIST)\n");
        goto out;
    }
    if (db && brokers) {
        fprintf(stderr, "tokentrail events: give --db PATH or --kafka-brokers LIST, not both\n");
        goto out;
    }
    if (format) {
        if (strcmp(format, "json") == 0) {
            pc.json = 1;
        } else if (strcmp(format, "table") == 0) {
            pc.json = 0;
        } else {
            fprintf(stderr, "tokentrail events: --format: use table or json\n");
            goto out;
        }
    }
    char err[512];
    tt_store *s = NULL;
    if (db) {
        tt_store_opts so = {.readonly = 1};
        s = tt_store_open(db, &so, err, sizeof(err));
        if (s == NULL) {
            fprintf(stderr, "tokentrail events: %s\n", err);
            goto out;
        }
    }
    int64_t n;
    if (s) {
        n = tt_store_query_events(s, &q, print_row, &pc, err, sizeof(err));
        tt_store_close(s);
    } else {
        tt_kafka_read_opts ko = {.brokers = brokers,
                                 .topic = topic,
                                 .props = &props,
                                 .since_ms = q.since_ms,
                                 .timeout_ms = 30000};
        n = events_from_kafka(&ko, &q, &pc, err, sizeof(err));
    }
    if (n >= 0 && pc.failed) {
        snprintf(err, sizeof(err), "out of memory formatting a table row");
        n = -1;
    }
    if (n < 0) {
        fprintf(stderr, "tokentrail events: %s\n", err);
        goto out;
    }
    if (!pc.json) {
        /* The header comes with the first row, or here when none matched,
         * so that a failing command prints nothing on stdout. */
        print_header(&pc);
        printf("(%lld events)\n", (long long)n);
    }
    rc = fflush(stdout) == 0 ? 0 : 2;
out:
    tt_buf_free(&pc.line);
    tt_strlist_free(&props);
    return rc;
}
