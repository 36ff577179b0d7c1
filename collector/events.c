/* events.c - `tokentrail events`: read stored events back, for people
 * (a table) and scripts (NDJSON). */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "collector.h"
#include "tt_event.h"
#include "tt_store.h"
#include "tt_time.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: tokentrail events --db PATH [FILTERS] [--format table|json]\n"
            "\n"
            "Print stored events in event-time order.\n"
            "\n"
            "Options:\n"
            "  -d, --db PATH          SQLite database written by 'tokentrail collect'\n"
            "  -t, --type TYPE        only this type (token.issued, token.used, token.revoked,\n"
            "                         incident.opened, incident.resolved)\n"
            "      --token ID         only events of this token_id (e.g. sha256:...)\n"
            "      --incident ID      only events naming this incident_id\n"
            "      --since T          event time >= T (RFC 3339, epoch, or a duration ago: 15m)\n"
            "      --until T          event time < T (same forms)\n"
            "  -n, --limit N          at most N events\n"
            "  -f, --format FMT       table (default on a terminal) or json (NDJSON, default\n"
            "                         when piped)\n"
            "  -h, --help             show this help\n"
            "\n"
            "Exit status: 0 on success (also when nothing matched), 2 on error.\n");
}

/* RFC 3339, epoch (s or ms) or a duration meaning "that long ago". */
static int parse_when(const char *s, int64_t *out)
{
    int64_t d;
    if (tt_time_parse_duration(s, &d) == 0 && strspn(s, "0123456789") != strlen(s)) {
        *out = tt_time_now_ms() - d;
        return 0;
    }
    json_t *js = json_string(s);
    const char *why;
    int rc = js ? tt_time_from_json(js, out, &why) : -1;
    json_decref(js);
    return rc;
}

static const char *jstr(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

static void short_id(const char *id, char *out, size_t n)
{
    if (strlen(id) > 23) {
        snprintf(out, n, "%.20s...", id);
    } else {
        snprintf(out, n, "%s", id);
    }
}

static void join_list(json_t *arr, char *out, size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        int w = snprintf(out + len, n - len, "%s%s", i ? " " : "", json_string_value(v));
        if (w < 0 || (size_t)w >= n - len) {
            break;
        }
        len += (size_t)w;
    }
}

typedef struct print_ctx {
    int json;
    int64_t n;
} print_ctx;

static int print_row(void *arg, const char *body, size_t len)
{
    print_ctx *pc = arg;
    pc->n++;
    if (pc->json) {
        fwrite(body, 1, len, stdout);
        fputc('\n', stdout);
        return 0;
    }
    json_t *ev = json_loadb(body, len, 0, NULL);
    if (ev == NULL) {
        return 0;
    }
    json_t *data = json_object_get(ev, "data");
    char key[32], detail[512] = "";
    const char *type = jstr(ev, "type");
    if (strncmp(type, "token.", 6) == 0) {
        short_id(jstr(data, "token_id"), key, sizeof(key));
    } else {
        short_id(jstr(data, "incident_id"), key, sizeof(key));
    }
    const char *who = jstr(data, "subject")[0] ? jstr(data, "subject") : jstr(data, "client_id");
    if (strcmp(type, "token.issued") == 0) {
        char scopes[300];
        join_list(json_object_get(data, "scopes"), scopes, sizeof(scopes));
        snprintf(detail, sizeof(detail), "scopes=[%s] expires=%s", scopes,
                 jstr(data, "expires_at"));
    } else if (strcmp(type, "token.used") == 0) {
        json_t *st = json_object_get(data, "status");
        snprintf(detail, sizeof(detail), "%s %s %s -> %lld", jstr(data, "resource"),
                 jstr(data, "method"), jstr(data, "path"), (long long)json_integer_value(st));
    } else if (strcmp(type, "token.revoked") == 0) {
        snprintf(detail, sizeof(detail), "reason=%s actor=%s", jstr(data, "reason"),
                 jstr(data, "actor"));
    } else if (strcmp(type, "incident.resolved") == 0) {
        snprintf(detail, sizeof(detail), "resolved_at=%s", jstr(data, "resolved_at"));
    } else {
        char svcs[300];
        join_list(json_object_get(data, "services"), svcs, sizeof(svcs));
        snprintf(detail, sizeof(detail), "%s %s [%s]", jstr(data, "severity"),
                 jstr(data, "title"), svcs);
    }
    printf("%-24s  %-17s  %-23s  %-16.16s  %s\n", jstr(ev, "time"), type, key, who, detail);
    json_decref(ev);
    return 0;
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
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db = NULL, *format = NULL;
    tt_store_query q = {.since_ms = INT64_MIN, .until_ms = INT64_MAX};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:t:n:f:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': db = optarg; break;
        case 't':
            if (tt_event_type_from_name(optarg) == TT_EV_UNKNOWN) {
                fprintf(stderr, "tokentrail events: --type: unknown event type '%s'\n", optarg);
                return 2;
            }
            q.type = optarg;
            break;
        case 'T': q.token_id = optarg; break;
        case 'I': q.incident_id = optarg; break;
        case 's':
        case 'u':
            if (parse_when(optarg, c == 's' ? &q.since_ms : &q.until_ms) != 0) {
                fprintf(stderr, "tokentrail events: --%s: '%s' is not a time (RFC 3339, epoch "
                                "or a duration like 15m)\n", c == 's' ? "since" : "until", optarg);
                return 2;
            }
            break;
        case 'n': {
            char *end;
            q.limit = strtoll(optarg, &end, 10);
            if (*end != '\0' || q.limit <= 0) {
                fprintf(stderr, "tokentrail events: --limit: '%s' is not a positive number\n",
                        optarg);
                return 2;
            }
            break;
        }
        case 'f': format = optarg; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "tokentrail events: try 'tokentrail events --help'\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tokentrail events: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (db == NULL) {
        fprintf(stderr, "tokentrail events: --db PATH is required\n");
        return 2;
    }
    print_ctx pc = {.json = !isatty(STDOUT_FILENO)};
    if (format) {
        if (strcmp(format, "json") == 0) {
            pc.json = 1;
        } else if (strcmp(format, "table") == 0) {
            pc.json = 0;
        } else {
            fprintf(stderr, "tokentrail events: --format: use table or json\n");
            return 2;
        }
    }
    char err[512];
    tt_store_opts so = {.readonly = 1};
    tt_store *s = tt_store_open(db, &so, err, sizeof(err));
    if (s == NULL) {
        fprintf(stderr, "tokentrail events: %s\n", err);
        return 2;
    }
    if (!pc.json) {
        printf("%-24s  %-17s  %-23s  %-16s  %s\n", "TIME", "TYPE", "TOKEN/INCIDENT",
               "SUBJECT/CLIENT", "DETAIL");
    }
    int64_t n = tt_store_query_events(s, &q, print_row, &pc, err, sizeof(err));
    tt_store_close(s);
    if (n < 0) {
        fprintf(stderr, "tokentrail events: %s\n", err);
        return 2;
    }
    if (!pc.json) {
        printf("(%lld events)\n", (long long)n);
    }
    return fflush(stdout) == 0 ? 0 : 2;
}
