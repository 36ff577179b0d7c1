/* drill.c - `tokentrail drill run`: load the scenario, run it, evaluate the
 * thresholds, write report.json, JUnit XML and report.html, and print a
 * summary. Exit status: 0 pass, 1 a threshold failed, 2 error. */
#include "drill.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "drill_run.h"
#include "tt_drill_prom.h"
#include "tt_time.h"
#include "tt_drill_report.h"
#include "tt_log.h"
#include "tt_scenario.h"

/* Longest output path built. */
#define DRILL_MAX_PATH 4096

static volatile int drill_stop;

static void on_signal(int sig)
{
    (void)sig;
    drill_stop = 1;
}

static void usage_top(FILE *fp)
{
    fprintf(fp, "Usage: tokentrail drill run SCENARIO.yaml [--out DIR] [--junit FILE]\n"
                "\n"
                "Fire drills for just-in-time OAuth access: simulated on-call engineers get a\n"
                "token, use it on every resource server, end access (revoke, resolve the\n"
                "incident, or let it expire) and probe until every server refuses. Thresholds\n"
                "(k6 style) decide pass or fail.\n"
                "\n"
                "Commands:\n"
                "  run SCENARIO.yaml   run a drill (tokentrail drill run --help)\n"
                "\n"
                "Exit status: 0 every threshold passed, 1 a threshold failed, 2 error.\n"
                "See docs/drills.md for the scenario format.\n");
}

static void usage_run(FILE *fp)
{
    fprintf(fp,
            "Usage: tokentrail drill run SCENARIO.yaml [OPTIONS]\n"
            "\n"
            "Run the scenario and write report.json, junit.xml and report.html.\n"
            "\n"
            "Options:\n"
            "  -o, --out DIR        report directory (default drill-reports/RUN_ID)\n"
            "  -j, --junit FILE     also write the JUnit XML to FILE\n"
            "      --textfile FILE  also write the results as Prometheus metrics in the\n"
            "                       node_exporter textfile format (docs/dashboards.md)\n"
            "  -q, --quiet          no progress line\n"
            "      --log-level L    error, warn (default), info or debug\n"
            "  -h, --help           show this help\n"
            "\n"
            "Exit status: 0 every threshold passed, 1 a threshold failed, 2 error (the\n"
            "message names the step, the endpoint and what came back). Iterations that\n"
            "failed with an error make the exit status 2 unless the scenario has a\n"
            "threshold on `errors`.\n");
}

static int mkdir_p(const char *path)
{
    char tmp[DRILL_MAX_PATH];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
        return -1;
    }
    return 0;
}

typedef int (*writer_fn)(const tt_drill_result *r, FILE *fp);

static int json_writer(const tt_drill_result *r, FILE *fp)
{
    json_t *j = tt_drill_report_json(r);
    if (j == NULL) {
        return -1;
    }
    int rc = json_dumpf(j, fp, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    fputc('\n', fp);
    json_decref(j);
    return rc;
}

/* Write via a temporary file and rename, so a reader never sees half a report. */
static int write_file(const char *path, const tt_drill_result *r, writer_fn fn)
{
    char tmp[DRILL_MAX_PATH + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    if (fp == NULL) {
        fprintf(stderr, "tokentrail drill: cannot write %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    int rc = fn(r, fp);
    if (fclose(fp) != 0) {
        rc = -1;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = -1;
    }
    if (rc != 0) {
        fprintf(stderr, "tokentrail drill: cannot write %s\n", path);
        unlink(tmp);
    }
    return rc;
}

static void print_summary(const tt_drill_result *r, int failed, const char *out, int color)
{
    size_t errors = tt_drill_errors(r);
    int errors_fail = tt_drill_get_outcome(r) == TT_DRILL_ERROR;
    const tt_scenario *sc = r->sc;
    const char *g = color ? "\033[32m" : "", *red = color ? "\033[31m" : "",
               *z = color ? "\033[0m" : "";
    printf("drill %s (run %s): %s%s%s", sc->name, r->run_id, failed || errors_fail ? red : g,
           errors_fail ? "ERROR" : failed ? "FAIL" : "PASS", z);
    printf(" - %zu of %zu thresholds passed, %zu iterations, %zu with errors\n",
           sc->n_thr - (size_t)failed, sc->n_thr, r->n_it, errors);
    if (sc->n_thr == 0) {
        printf("  %swarning%s: the scenario has no thresholds, so nothing was judged: add some "
               "(e.g. revocation_propagation_ms: [\"max < 1000\"]) for a drill that can fail\n",
               red, z);
    }
    for (size_t t = 0; t < sc->n_thr; t++) {
        const tt_sc_threshold *th = &sc->thr[t];
        const tt_drill_verdict *v = &r->verdict[t];
        char label[256], agg[32];
        tt_drill_threshold_label(th, label, sizeof(label));
        tt_threshold_agg_name(&th->expr, agg, sizeof(agg));
        printf("  %s%s%s %-60s ", v->pass ? g : red, v->pass ? "pass" : "FAIL", z, label);
        if (v->no_data) {
            printf("no samples\n");
        } else {
            printf("%s = %.*f (%ld samples)\n", agg, v->value == (double)(long)v->value ? 0 : 1,
                   v->value, v->samples);
        }
    }
    tt_drill_precision pr;
    if (tt_drill_get_precision(r, &pr) == 0 && pr.probes > 0) {
        char located[96] = "no refusal to locate";
        if (pr.windows > 0) {
            snprintf(located, sizeof(located), "refusals located within %.1f ms (p99)",
                     pr.window_p99_ms);
        }
        printf("precision: refusing probes %.2f ms (p99) after their tick, max %.2f; %s at a "
               "%lld ms interval\n",
               pr.late_p99_ms, pr.late_max_ms, located, (long long)sc->probe_interval_ms);
        if (pr.behind) {
            printf("  %swarning%s: the drill fell behind its probe grid (p99 %.2f ms at a %lld ms "
                   "interval): propagation times carry that much extra error; run fewer "
                   "engineers or give the drill a quieter core\n",
                   red, z, pr.late_p99_ms, (long long)sc->probe_interval_ms);
        }
    }
    size_t shown = 0;
    for (size_t i = 0; i < r->n_it && shown < 5; i++) {
        if (r->it[i].error[0]) {
            printf("  error (engineer %d, iteration %d): %s\n", r->it[i].engineer,
                   r->it[i].iteration, r->it[i].error);
            shown++;
        }
    }
    if (errors > shown) {
        printf("  ... %zu more errors in report.json\n", errors - shown);
    }
    if (sc->collector_url) {
        printf("events: %zu sent to %s, %zu failed\n", r->events_sent, sc->collector_url,
               r->events_failed);
    }
    printf("report: %s/report.html (report.json, junit.xml)\n", out);
}

static int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},
        {"junit", required_argument, NULL, 'j'},
        {"textfile", required_argument, NULL, 'T'},
        {"quiet", no_argument, NULL, 'q'},
        {"log-level", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL, *junit = NULL, *textfile = NULL;
    int quiet = 0, c;
    tt_log_set_level(TT_LOG_WARN);
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:j:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'j': junit = optarg; break;
        case 'T': textfile = optarg; break;
        case 'q': quiet = 1; break;
        case 'L': {
            tt_log_level lvl;
            if (tt_log_level_parse(optarg, &lvl) != 0) {
                fprintf(stderr, "tokentrail drill: --log-level: '%s' is not error, warn, info or "
                                "debug\n", optarg);
                return 2;
            }
            tt_log_set_level(lvl);
            break;
        }
        case 'h': usage_run(stdout); return 0;
        default: fprintf(stderr, "tokentrail drill run: try --help\n"); return 2;
        }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "tokentrail drill run: give exactly one SCENARIO.yaml (try --help)\n");
        return 2;
    }
    char err[1024];
    tt_scenario *sc = tt_scenario_load(argv[optind], err, sizeof(err));
    if (sc == NULL) {
        fprintf(stderr, "tokentrail drill: %s\n", err);
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "tokentrail drill: libcurl initialisation failed\n");
        tt_scenario_free(sc);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    tt_drill_opts ro = {isatty(STDERR_FILENO), quiet, &drill_stop};
    tt_drill_result *r = NULL;
    int rc = 2;
    if (tt_drill_run(sc, &ro, &r, err, sizeof(err)) != 0) {
        fprintf(stderr, "tokentrail drill: %s\n", err);
        if (textfile) {
            /* the drill did not run: the textfile must not keep saying it passed */
            json_t *j = tt_drill_report_json_not_started(sc, err, tt_time_now_ms());
            char perr[256];
            if (j == NULL || tt_drill_prom_write_json(j, textfile, perr, sizeof(perr)) != 0) {
                fprintf(stderr, "tokentrail drill: --textfile %s: %s\n", textfile,
                        j ? perr : "out of memory");
            }
            json_decref(j);
        }
        goto done;
    }
    int failed = tt_drill_evaluate(r);
    if (failed < 0) {
        fprintf(stderr, "tokentrail drill: out of memory evaluating thresholds\n");
        goto done;
    }
    char outdir[DRILL_MAX_PATH];
    if (out) {
        snprintf(outdir, sizeof(outdir), "%s", out);
    } else {
        snprintf(outdir, sizeof(outdir), "drill-reports/%s", r->run_id);
    }
    if (mkdir_p(outdir) != 0) {
        fprintf(stderr, "tokentrail drill: cannot create %s: %s\n", outdir, strerror(errno));
        goto done;
    }
    char path[DRILL_MAX_PATH + 32];
    int wrc = 0;
    snprintf(path, sizeof(path), "%s/report.json", outdir);
    wrc |= write_file(path, r, json_writer);
    snprintf(path, sizeof(path), "%s/junit.xml", outdir);
    wrc |= write_file(path, r, tt_drill_report_junit);
    if (junit) {
        wrc |= write_file(junit, r, tt_drill_report_junit);
    }
    snprintf(path, sizeof(path), "%s/report.html", outdir);
    wrc |= write_file(path, r, tt_drill_report_html);
    if (textfile) {
        json_t *j = tt_drill_report_json(r);
        char perr[256];
        if (j == NULL || tt_drill_prom_write_json(j, textfile, perr, sizeof(perr)) != 0) {
            fprintf(stderr, "tokentrail drill: --textfile %s: %s\n", textfile,
                    j ? perr : "out of memory");
            wrc |= 1;
        }
        json_decref(j);
    }
    print_summary(r, failed, outdir, isatty(STDOUT_FILENO));
    fflush(stdout);
    char why[TT_DRILL_MAX_ERROR + 128];
    tt_drill_error_text(r, why, sizeof(why));
    if (why[0]) {
        fprintf(stderr, "tokentrail drill: %s\n", why);
    }
    rc = wrc != 0 ? 2 : (int)tt_drill_get_outcome(r);
done:
    tt_drill_result_free(r);
    tt_scenario_free(sc);
    curl_global_cleanup();
    return rc;
}

int tt_cmd_drill(int argc, char **argv)
{
    if (argc < 2) {
        usage_top(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage_top(stdout);
        return 0;
    }
    if (strcmp(argv[1], "run") == 0) {
        return cmd_run(argc - 1, argv + 1);
    }
    fprintf(stderr, "tokentrail drill: unknown command '%s'\n\n", argv[1]);
    usage_top(stderr);
    return 2;
}
