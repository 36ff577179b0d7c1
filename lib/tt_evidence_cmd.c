/* tt_evidence_cmd.c - `tokentrail evidence export|verify|keygen`: options,
 * messages and exit codes around tt_evidence and tt_sign. */
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "tt_config.h"
#include "tt_evidence.h"
#include "tt_sign.h"
#include "tt_time.h"

static void usage(FILE *fp)
{
    fprintf(fp, "Usage: tokentrail evidence export (--db PATH | --kafka-brokers B [--topic T])\n"
                "                                  --from T --to T --key KEY -o BUNDLE\n"
                "                                  [--incident ID] [--subject S] [--client C]\n"
                "                                  [--policy FILE] [--drill-reports DIR]\n"
                "       tokentrail evidence verify BUNDLE --pubkey KEY\n"
                "       tokentrail evidence keygen -o PREFIX\n"
                "\n"
                "Signed, reproducible evidence bundles (tar.gz) of the events of a time range.\n"
                "\n"
                "export options:\n"
                "  -d, --db PATH            SQLite database written by 'tokentrail collect'\n"
                "      --kafka-brokers B    read the events from Kafka instead (host:port,...)\n"
                "      --topic T            events topic (default tokentrail.events)\n"
                "      --kafka-findings-topic T  findings topic (default tokentrail.findings;\n"
                "                           findings.ndjson is empty when it does not exist)\n"
                "  -X, --kafka-property K=V librdkafka property (TLS, SASL); repeatable\n"
                "      --from T             event time >= T (RFC 3339 or epoch)\n"
                "      --to T               event time < T\n"
                "      --incident ID        only events of this incident and of tokens tied to it\n"
                "      --subject S          only token events of tokens issued to subject S\n"
                "      --client C           only token events of tokens of client C\n"
                "                           (incident events are kept by --subject and --client)\n"
                "  -k, --key KEY            Ed25519 private key (PEM), from 'evidence keygen'\n"
                "  -o, --output BUNDLE      the .tar.gz to write (refuses to replace one)\n"
                "      --force              replace an existing BUNDLE\n"
                "      --policy FILE        add FILE as policy.yaml\n"
                "      --drill-reports DIR  add the report.json files under DIR run in the range\n"
                "      --level N            gzip level 1-9 (default 6)\n"
                "      --threads N          compression threads, 1..16 (default: one per CPU, at most 8)\n"
                "      --no-progress        no progress on stderr (default: shown on a terminal)\n"
                "\n"
                "verify options:\n"
                "  -p, --pubkey KEY         the signer's Ed25519 public key (PEM)\n"
                "  -q, --quiet              print only problems\n"
                "      --no-progress        no progress on stderr (default: shown on a terminal)\n"
                "\n"
                "keygen writes PREFIX.key (private, mode 0600) and PREFIX.pub; it never\n"
                "overwrites.\n"
                "\n"
                "Exit status: 0 success (verify: the bundle checks out), 1 failure (verify:\n"
                "the bundle does not check out; each problem is printed), 2 usage error.\n"
                "See docs/evidence.md.\n");
}

/* A --from/--to value, as an event's `time` is read; on error *why says
 * what is wrong with it. */
static int parse_time(const char *s, int64_t *out, const char **why)
{
    json_t *js = json_string(s);
    *why = "not a time";
    int rc = js ? tt_time_from_json(js, out, why) : -1;
    json_decref(js);
    return rc;
}

static int cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *prefix = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': prefix = optarg; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "tokentrail evidence keygen: try 'tokentrail evidence --help'\n");
            return 2;
        }
    }
    if (prefix == NULL || optind < argc) {
        fprintf(stderr, "tokentrail evidence keygen: -o PREFIX is required (and nothing else)\n");
        return 2;
    }
    char err[512];
    if (tt_sign_keygen(prefix, err, sizeof(err)) != 0) {
        fprintf(stderr, "tokentrail evidence keygen: %s\n", err);
        return 1;
    }
    char pub[4200];
    snprintf(pub, sizeof(pub), "%s.pub", prefix);
    EVP_PKEY *k = tt_sign_load_public(pub, err, sizeof(err));
    char fp[TT_FINGERPRINT_BUFSZ] = "?";
    if (k) {
        tt_sign_fingerprint(k, fp);
    }
    EVP_PKEY_free(k);
    printf("wrote %s.key and %s.pub (key %s)\n", prefix, prefix, fp);
    return 0;
}

static int cmd_export(int argc, char **argv)
{
    enum {
        O_FROM = 256,
        O_TO,
        O_INC,
        O_SUBJ,
        O_CLIENT,
        O_POLICY,
        O_DRILLS,
        O_LEVEL,
        O_THREADS,
        O_NOPROG,
        O_FORCE,
        O_BROKERS,
        O_TOPIC,
        O_FTOPIC
    };
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"from", required_argument, NULL, O_FROM},
        {"to", required_argument, NULL, O_TO},
        {"incident", required_argument, NULL, O_INC},
        {"subject", required_argument, NULL, O_SUBJ},
        {"client", required_argument, NULL, O_CLIENT},
        {"key", required_argument, NULL, 'k'},
        {"output", required_argument, NULL, 'o'},
        {"policy", required_argument, NULL, O_POLICY},
        {"drill-reports", required_argument, NULL, O_DRILLS},
        {"level", required_argument, NULL, O_LEVEL},
        {"threads", required_argument, NULL, O_THREADS},
        {"no-progress", no_argument, NULL, O_NOPROG},
        {"force", no_argument, NULL, O_FORCE},
        {"kafka-brokers", required_argument, NULL, O_BROKERS},
        {"topic", required_argument, NULL, O_TOPIC},
        {"kafka-findings-topic", required_argument, NULL, O_FTOPIC},
        {"kafka-property", required_argument, NULL, 'X'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    tt_evidence_kafka_opts ko = {0};
    tt_strlist props = {NULL, 0};
    int rc = 2;
    tt_evidence_export_opts o = {.progress = isatty(STDERR_FILENO)};
    const char *db = NULL, *keyfile = NULL, *from = NULL, *to = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:k:o:X:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': db = optarg; break;
        case O_BROKERS: ko.brokers = optarg; break;
        case O_TOPIC: ko.topic = optarg; break;
        case O_FTOPIC: ko.findings_topic = optarg; break;
        case 'X':
            if (strchr(optarg, '=') == NULL || tt_strlist_add(&props, optarg) != 0) {
                fprintf(stderr, "tokentrail evidence export: -X: '%s' is not KEY=VALUE\n", optarg);
                goto out;
            }
            break;
        case O_FROM: from = optarg; break;
        case O_TO: to = optarg; break;
        case O_INC: o.q.incident_id = optarg; break;
        case O_SUBJ: o.q.subject = optarg; break;
        case O_CLIENT: o.q.client_id = optarg; break;
        case 'k': keyfile = optarg; break;
        case 'o': o.out_path = optarg; break;
        case O_POLICY: o.policy_path = optarg; break;
        case O_DRILLS: o.drills_dir = optarg; break;
        case O_NOPROG: o.progress = 0; break;
        case O_FORCE: o.overwrite = 1; break;
        case O_LEVEL:
        case O_THREADS: {
            char *end;
            long v = strtol(optarg, &end, 10);
            int lo = 1, hi = c == O_LEVEL ? 9 : 16;
            if (*end != '\0' || v < lo || v > hi) {
                fprintf(stderr, "tokentrail evidence export: --%s: '%s' is not %d..%d\n",
                        c == O_LEVEL ? "level" : "threads", optarg, lo, hi);
                goto out;
            }
            if (c == O_LEVEL) {
                o.level = (int)v;
            } else {
                o.threads = (int)v;
            }
            break;
        }
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        default:
            fprintf(stderr, "tokentrail evidence export: try 'tokentrail evidence --help'\n");
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tokentrail evidence export: unexpected argument '%s'\n", argv[optind]);
        goto out;
    }
    if ((db != NULL) == (ko.brokers != NULL)) {
        fprintf(stderr,
                "tokentrail evidence export: give one of --db PATH and --kafka-brokers B\n");
        goto out;
    }
    if (db != NULL && (ko.topic || ko.findings_topic || props.n > 0)) {
        fprintf(stderr, "tokentrail evidence export: --topic, --kafka-findings-topic and -X "
                        "need --kafka-brokers\n");
        goto out;
    }
    const char *missing = from == NULL         ? "--from T"
                          : to == NULL         ? "--to T"
                          : keyfile == NULL    ? "--key KEY"
                          : o.out_path == NULL ? "-o BUNDLE"
                                               : NULL;
    if (missing) {
        fprintf(stderr, "tokentrail evidence export: %s is required\n", missing);
        goto out;
    }
    const char *why;
    if (parse_time(from, &o.q.from_ms, &why) != 0) {
        fprintf(stderr, "tokentrail evidence export: --from: '%s': %s (RFC 3339, or epoch "
                        "seconds or milliseconds)\n", from, why);
        goto out;
    }
    if (parse_time(to, &o.q.to_ms, &why) != 0) {
        fprintf(stderr, "tokentrail evidence export: --to: '%s': %s (RFC 3339, or epoch "
                        "seconds or milliseconds)\n", to, why);
        goto out;
    }
    if (o.q.from_ms >= o.q.to_ms) {
        fprintf(stderr, "tokentrail evidence export: --from must be before --to\n");
        goto out;
    }
    char err[600];
    o.key = tt_sign_load_private(keyfile, err, sizeof(err));
    if (o.key == NULL) {
        fprintf(stderr, "tokentrail evidence export: --key: %s\n", err);
        goto out;
    }
    rc = 1;
    char spool_dir[4200];
    if (ko.brokers) {
        /* The sort files go where the bundle goes, like the export's spool. */
        char tmp[4200];
        snprintf(tmp, sizeof(tmp), "%s", o.out_path);
        snprintf(spool_dir, sizeof(spool_dir), "%s", dirname(tmp));
        ko.spool_dir = spool_dir;
        ko.props = &props;
        const char *mem = getenv("TT_EVIDENCE_KAFKA_SORT_MEM"); /* tests: force many runs */
        if (mem != NULL) {
            int64_t bytes;
            if (tt_parse_size(mem, &bytes) != 0 || bytes <= 0) {
                fprintf(stderr, "tokentrail evidence export: TT_EVIDENCE_KAFKA_SORT_MEM: '%s' is "
                                "not a size\n", mem);
                goto out;
            }
            ko.sort_mem = (size_t)bytes;
        }
        o.src = tt_evidence_source_kafka(&ko, err, sizeof(err));
    } else {
        o.src = tt_evidence_source_sqlite(db, err, sizeof(err));
    }
    if (o.src == NULL) {
        fprintf(stderr, "tokentrail evidence export: %s\n", err);
        EVP_PKEY_free(o.key);
        goto out;
    }
    tt_evidence_export_stats st;
    int xrc = tt_evidence_export(&o, &st, err, sizeof(err));
    o.src->close(o.src);
    EVP_PKEY_free(o.key);
    if (xrc != 0) {
        fprintf(stderr, "tokentrail evidence export: %s\n", err);
        goto out;
    }
    printf("exported %llu events (%llu bytes), %llu findings, %llu drill reports to %s "
           "(%llu bytes)\n",
           (unsigned long long)st.events, (unsigned long long)st.event_bytes,
           (unsigned long long)st.findings, (unsigned long long)st.drill_reports, o.out_path,
           (unsigned long long)st.bundle_bytes);
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    tt_strlist_free(&props);
    return rc;
}

static void print_problem(void *ctx, const char *msg)
{
    fprintf(stdout, "%s: FAIL: %s\n", (const char *)ctx, msg);
}

static int cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {
        {"pubkey", required_argument, NULL, 'p'},
        {"quiet", no_argument, NULL, 'q'},
        {"no-progress", no_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *keyfile = NULL;
    int quiet = 0, prog = isatty(STDERR_FILENO);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'p': keyfile = optarg; break;
        case 'q': quiet = 1; break;
        case 'P': prog = 0; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "tokentrail evidence verify: try 'tokentrail evidence --help'\n");
            return 2;
        }
    }
    if (argc - optind != 1 || keyfile == NULL) {
        fprintf(stderr, "tokentrail evidence verify: usage: tokentrail evidence verify BUNDLE "
                        "--pubkey KEY\n");
        return 2;
    }
    const char *bundle = argv[optind];
    char err[600];
    EVP_PKEY *pub = tt_sign_load_public(keyfile, err, sizeof(err));
    if (pub == NULL) {
        fprintf(stderr, "tokentrail evidence verify: --pubkey: %s\n", err);
        return 2;
    }
    if (tt_sign_file_is_private(keyfile)) {
        /* it works (the public half is used), but the file should not be here */
        fprintf(stderr, "tokentrail evidence verify: warning: --pubkey %s holds a private key; "
                        "verify with the public key (the .pub file keygen wrote) and keep the "
                        "private key with the signer only\n", keyfile);
    }
    tt_evidence_verify_result res;
    int64_t t0 = tt_time_mono_ns();
    int rc = tt_evidence_verify(bundle, pub, prog, print_problem, (void *)bundle, &res, err,
                                sizeof(err));
    double secs = (double)(tt_time_mono_ns() - t0) / 1e9;
    EVP_PKEY_free(pub);
    if (rc != 0) {
        fprintf(stderr, "tokentrail evidence verify: %s\n", err);
        return 1;
    }
    if (!res.ok) {
        if (res.problems > TT_EVIDENCE_MAX_PROBLEMS) {
            printf("%s: ... %d more problems not shown\n", bundle,
                   res.problems - TT_EVIDENCE_MAX_PROBLEMS);
        }
        printf("%s: verification FAILED (%d problem%s)\n", bundle, res.problems,
               res.problems == 1 ? "" : "s");
        fflush(stdout);
        return 1;
    }
    if (!quiet) {
        printf("%s: OK: signed by %s; %llu files, %llu events, chain intact (%.1f MB in %.2fs)\n",
               bundle, res.signer, (unsigned long long)res.files, (unsigned long long)res.events,
               (double)res.bytes / 1e6, secs);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

int tt_cmd_evidence(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(sub, "export") == 0) {
        return cmd_export(argc - 1, argv + 1);
    }
    if (strcmp(sub, "verify") == 0) {
        return cmd_verify(argc - 1, argv + 1);
    }
    if (strcmp(sub, "keygen") == 0) {
        return cmd_keygen(argc - 1, argv + 1);
    }
    fprintf(stderr, "tokentrail evidence: unknown subcommand '%s' (export, verify, keygen)\n", sub);
    return 2;
}
