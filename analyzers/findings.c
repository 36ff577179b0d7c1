/* findings.c - `tokentrail findings`: list stored findings, for people (a
 * table) and scripts (NDJSON). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "tt_time.h"
#include "analyzer.h"
#include "tt_anstore.h"
#include "tt_finding.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: tokentrail findings --db PATH [--kind K] [--since T] [--format table|json]\n"
            "\n"
            "Print the findings 'tokentrail analyze' stored, in finding-time order.\n"
            "\n"
            "Options:\n"
            "  -d, --db PATH       the SQLite database\n"
            "  -k, --kind K        only this kind (used_after_revoke, idle_token, ...; see\n"
            "                      docs/findings.md)\n"
            "  -s, --since T       finding time >= T (RFC 3339, epoch, or a duration ago: 1h)\n"
            "  -f, --format FMT    table (default on a terminal) or json (NDJSON, default when\n"
            "                      piped)\n"
            "  -h, --help          show this help\n"
            "\n"
            "Exit status: 0 on success (also when nothing matched), 2 on error.\n");
}

static const char *jstr(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "-";
}

void tt_findings_print_header(void)
{
    printf("%-24s  %-22s  %-8s  %-19s  %-14s  %s\n", "TIME", "KIND", "SEVERITY", "TOKEN", "CLIENT",
           "MESSAGE");
}

void tt_findings_print(const char *json, size_t len, int as_json)
{
    if (as_json) {
        fwrite(json, 1, len, stdout);
        fputc('\n', stdout);
        return;
    }
    json_t *f = json_loadb(json, len, 0, NULL);
    if (f == NULL) {
        return;
    }
    const char *tok = jstr(f, "token_id");
    printf("%-24s  %-22s  %-8s  %-19.19s  %-14.14s  %s\n", jstr(f, "time"), jstr(f, "kind"),
           jstr(f, "severity"), strcmp(tok, "-") ? tok : jstr(f, "incident_id"),
           jstr(f, "client_id"), jstr(f, "message"));
    json_decref(f);
}

typedef struct print_ctx {
    int as_json;
} print_ctx;

static int print_one(void *ctx, const char *json, size_t len)
{
    print_ctx *pc = ctx;
    tt_findings_print(json, len, pc->as_json);
    return 0;
}

int tt_cmd_findings(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},    {"kind", required_argument, NULL, 'k'},
        {"since", required_argument, NULL, 's'}, {"format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    const char *db = NULL, *format = NULL;
    tt_findings_query q = {.since_ms = INT64_MIN};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:k:s:f:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': db = optarg; break;
        case 'k':
            if (tt_finding_kind_from_name(optarg) < 0) {
                fprintf(stderr, "tokentrail findings: --kind: unknown finding kind '%s'\n", optarg);
                return 2;
            }
            q.kind = optarg;
            break;
        case 's':
            if (tt_time_parse_when(optarg, tt_time_now_ms(), &q.since_ms) != 0) {
                fprintf(stderr,
                        "tokentrail findings: --since: '%s' is not a time (RFC 3339, "
                        "epoch or a duration like 1h)\n",
                        optarg);
                return 2;
            }
            break;
        case 'f': format = optarg; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "tokentrail findings: try 'tokentrail findings --help'\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tokentrail findings: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (db == NULL) {
        fprintf(stderr, "tokentrail findings: --db PATH is required\n");
        return 2;
    }
    print_ctx pc = {.as_json = !isatty(STDOUT_FILENO)};
    if (format) {
        if (strcmp(format, "json") == 0) {
            pc.as_json = 1;
        } else if (strcmp(format, "table") == 0) {
            pc.as_json = 0;
        } else {
            fprintf(stderr, "tokentrail findings: --format: use table or json\n");
            return 2;
        }
    }
    char err[512];
    tt_anstore *s = tt_anstore_open(db, 1, err, sizeof(err));
    if (s == NULL) {
        fprintf(stderr, "tokentrail findings: %s\n", err);
        return 2;
    }
    if (!pc.as_json) {
        tt_findings_print_header();
    }
    int64_t n = tt_anstore_findings(s, &q, print_one, &pc, err, sizeof(err));
    tt_anstore_close(s);
    if (n < 0) {
        fprintf(stderr, "tokentrail findings: %s\n", err);
        return 2;
    }
    if (!pc.as_json) {
        printf("(%lld findings)\n", (long long)n);
    }
    return fflush(stdout) == 0 ? 0 : 2;
}
