/* findings.c - `tokentrail findings`: list stored findings, for people (a
 * table) and scripts (NDJSON). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "analyzer.h"
#include "tt_anstore.h"
#include "tt_buf.h"
#include "tt_finding.h"
#include "tt_text.h"
#include "tt_time.h"

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

/* Longest table row: every field of a finding, each byte possibly escaped to
 * four (tt_text); more is an error, never a cut row. */
#define TT_FINDINGS_ROW_MAX (1024 * 1024)

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

/* One table row. Every value can come from an event (the message quotes the
 * client_id), so every value goes through tt_text. TOKEN and CLIENT are cut
 * to their column, as before; the JSON has them whole. */
static int format_row(tt_buf *b, json_t *f)
{
    const char *tok = jstr(f, "token_id");
    return tt_text_add_cell(b, jstr(f, "time"), 24, 0) || tt_buf_add(b, "  ", 2) ||
           tt_text_add_cell(b, jstr(f, "kind"), 22, 0) || tt_buf_add(b, "  ", 2) ||
           tt_text_add_cell(b, jstr(f, "severity"), 8, 0) || tt_buf_add(b, "  ", 2) ||
           tt_text_add_cell(b, strcmp(tok, "-") ? tok : jstr(f, "incident_id"), 19, 1) ||
           tt_buf_add(b, "  ", 2) || tt_text_add_cell(b, jstr(f, "client_id"), 14, 1) ||
           tt_buf_add(b, "  ", 2) || tt_text_add_escaped(b, jstr(f, "message"), 0) ||
           tt_buf_add(b, "\n", 1);
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
    tt_buf line;
    tt_buf_init(&line, TT_FINDINGS_ROW_MAX);
    if (format_row(&line, f) == 0) {
        fwrite(line.data, 1, line.len, stdout);
    } else {
        fprintf(stderr, "tokentrail: a finding could not be shown (out of memory); "
                        "--format json lists it\n");
    }
    tt_buf_free(&line);
    json_decref(f);
}

typedef struct print_ctx {
    int as_json;
    int header_done;
} print_ctx;

static int print_one(void *ctx, const char *json, size_t len)
{
    print_ctx *pc = ctx;
    if (!pc->as_json && !pc->header_done) {
        tt_findings_print_header();
        pc->header_done = 1;
    }
    tt_findings_print(json, len, pc->as_json);
    return 0;
}

/* What --db holds, decided before anything is printed. */
typedef enum { DB_FINDINGS, DB_NO_FINDINGS, DB_BAD } db_kind;

/* Classify path: DB_FINDINGS when it has a findings table, DB_NO_FINDINGS
 * for a tokentrail store that was never analysed (an events table but no
 * findings table: nothing to list, not an error), else DB_BAD with err
 * filled (missing or unreadable file, not SQLite, a foreign database).
 * tt_anstore_findings reports a missing table as an error, which suits the
 * analyzer; this read-only listing needs to tell the cases apart. */
static db_kind probe_db(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return DB_BAD;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a SQLite database (not a regular file)", path);
        return DB_BAD;
    }
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot open database: %s", path,
                 db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return DB_BAD;
    }
    sqlite3_busy_timeout(db, 10000);
    sqlite3_stmt *q = NULL;
    int events = 0, findings = 0, rc;
    rc = sqlite3_prepare_v2(db,
                            "SELECT name FROM sqlite_master WHERE type = 'table'"
                            " AND name IN ('events', 'findings')",
                            -1, &q, NULL);
    while (rc == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(q, 0);
        events |= name && strcmp(name, "events") == 0;
        findings |= name && strcmp(name, "findings") == 0;
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_reset(q);
    }
    db_kind kind = findings ? DB_FINDINGS : events ? DB_NO_FINDINGS : DB_BAD;
    if (rc == SQLITE_NOTADB) {
        snprintf(err, errlen, "%s: not a SQLite database", path);
        kind = DB_BAD;
    } else if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: sqlite: %s", path, sqlite3_errmsg(db));
        kind = DB_BAD;
    } else if (kind == DB_BAD) {
        snprintf(err, errlen, "%s: not a tokentrail database (no events or findings table)", path);
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    return kind;
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
    int64_t n = 0;
    db_kind kind = probe_db(db, err, sizeof(err));
    if (kind == DB_BAD) {
        fprintf(stderr, "tokentrail findings: %s\n", err);
        return 2;
    }
    if (kind == DB_FINDINGS) {
        tt_anstore *s = tt_anstore_open(db, 1, err, sizeof(err));
        if (s == NULL) {
            fprintf(stderr, "tokentrail findings: %s\n", err);
            return 2;
        }
        n = tt_anstore_findings(s, &q, print_one, &pc, err, sizeof(err));
        tt_anstore_close(s);
    }
    if (n < 0) {
        fprintf(stderr, "tokentrail findings: %s\n", err);
        return 2;
    }
    if (!pc.as_json) {
        /* The header comes with the first row, or here when there is none,
         * so that a failing command prints nothing on stdout. */
        if (!pc.header_done) {
            tt_findings_print_header();
        }
        printf("(%lld findings)\n", (long long)n);
    }
    return fflush(stdout) == 0 ? 0 : 2;
}
