/* collect.c - `tokentrail collect`: flags and config file, start-up, and the
 * SIGTERM shutdown sequence (stop accepting, drain, commit, deliver to Kafka,
 * close). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "collector.h"
#include "server.h"
#include "tt_kafka.h"
#include "tt_httpd.h"
#include "tt_log.h"
#include "tt_store.h"
#include "tt_time.h"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: tokentrail collect [OPTIONS]\n"
            "\n"
            "Receive token and incident events over HTTP, validate and normalise them,\n"
            "and commit them durably to SQLite. A 2xx answer means every accepted event\n"
            "is on disk (fsynced). With --kafka-brokers every accepted event is also\n"
            "produced to Kafka from a local outbox (docs/kafka.md). POST events to\n"
            "/v1/events; GET /healthz, /readyz and /metrics for operations.\n"
            "\n"
            "Options (each overrides the same key of the config file):\n"
            "  -c, --config FILE          YAML config file (keys below)\n"
            "  -l, --listen HOST:PORT     address to serve on (default 127.0.0.1:8088)\n"
            "  -d, --db PATH              SQLite database (default tokentrail.db)\n"
            "      --max-body SIZE        body limit after decompression (default 8MiB)\n"
            "      --ingest-token-file F  require Authorization: Bearer <token> with a token\n"
            "                             from F (one per line; repeat for rotation)\n"
            "      --tls-cert FILE        serve HTTPS with this PEM certificate\n"
            "      --tls-key FILE         ... and this PEM private key\n"
            "      --log-level LEVEL      error, warn, info (default) or debug\n"
            "      --port-file FILE       write the bound port to FILE (useful with port 0)\n"
            "      --kafka-brokers LIST   produce every event to Kafka (HOST:PORT[,...])\n"
            "      --kafka-topic TOPIC    Kafka topic (default tokentrail.events)\n"
            "  -h, --help                 show this help\n"
            "\n"
            "Config file keys:\n");
    tt_config_print_help(tt_collect_config_table, fp);
    fprintf(fp, "\nSee docs/collect.md for the API, docs/kafka.md for Kafka and\n"
                "docs/event-schema.md for events.\n");
}

int tt_cmd_collect(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"db", required_argument, NULL, 'd'},
        {"max-body", required_argument, NULL, 'm'},
        {"ingest-token-file", required_argument, NULL, 't'},
        {"tls-cert", required_argument, NULL, 'C'},
        {"tls-key", required_argument, NULL, 'K'},
        {"log-level", required_argument, NULL, 'L'},
        {"port-file", required_argument, NULL, 'P'},
        {"kafka-brokers", required_argument, NULL, 'B'},
        {"kafka-topic", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    tt_cfg_flags flags = {.n = 0};
    const char *config_path = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:l:d:h", opts, NULL)) != -1) {
        const char *key = NULL;
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'l': key = "listen"; break;
        case 'd': key = "db"; break;
        case 'm': key = "max_body"; break;
        case 't': key = "auth.tokens_file"; break;
        case 'C': key = "tls.cert"; break;
        case 'K': key = "tls.key"; break;
        case 'L': key = "log_level"; break;
        case 'P': key = "port_file"; break;
        case 'B': key = "kafka.brokers"; break;
        case 'T': key = "kafka.topic"; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "tokentrail collect: try 'tokentrail collect --help'\n");
            return 2;
        }
        if (key) {
            const char *flag = NULL;
            for (const struct option *o = opts; o->name; o++) {
                if (o->val == c) {
                    flag = o->name;
                }
            }
            if (tt_cfg_flags_add(&flags, key, optarg, flag) != 0) {
                fprintf(stderr, "tokentrail collect: too many options\n");
                return 2;
            }
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tokentrail collect: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }

    tt_collect_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    char err[512];
    int rc = 2;
    tt_store *store = NULL;
    tt_server *srv = NULL;
    tt_kafka *kafka = NULL;
    if (tt_config_build(tt_collect_config_table, &cfg, config_path, &flags, err, sizeof(err)) !=
        0) {
        fprintf(stderr, "tokentrail collect: %s\n", err);
        goto out;
    }
    tt_log_level lvl;
    if (tt_log_level_parse(cfg.log_level, &lvl) != 0) {
        fprintf(stderr, "tokentrail collect: log_level: '%s' is not error, warn, info or debug\n",
                cfg.log_level);
        goto out;
    }
    tt_log_set_level(lvl);

    /* Handlers go in before anything is announced (the port file, the log
     * line): a SIGTERM that arrives the moment we are visible must still take
     * the orderly path. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Before the store opens: a Kafka setting that cannot work (an empty
     * broker list, a bad topic, an alias that would override ours) is a
     * start-up error, not a collector that quietly runs without Kafka or
     * fails every delivery. */
    tt_kafka_opts ko = {.brokers = cfg.kafka_brokers, .topic = cfg.kafka_topic,
                        .compression = cfg.kafka_compression, .props = &cfg.kafka_props};
    if (tt_kafka_check_opts(&ko, err, sizeof(err)) != 0) {
        fprintf(stderr, "tokentrail collect: %s\n", err);
        goto out;
    }
    int use_kafka = cfg.kafka_brokers != NULL;
    tt_store_opts so = {.outbox = use_kafka, .outbox_max = cfg.kafka_outbox_max};
    store = tt_store_open(cfg.db, &so, err, sizeof(err));
    if (store == NULL) {
        tt_error("%s", err);
        goto out;
    }
    if (use_kafka) {
        kafka = tt_kafka_start(&ko, store, err, sizeof(err));
        if (kafka == NULL) {
            tt_error("%s", err);
            goto out;
        }
        int64_t backlog = tt_store_outbox_depth(store);
        tt_info("kafka: producing to topic %s at %s%s", cfg.kafka_topic, cfg.kafka_brokers,
                backlog > 0 ? " (delivering the outbox left by the last run first)" : "");
    }
    srv = tt_server_start(&cfg, store, kafka, err, sizeof(err));
    if (srv == NULL) {
        tt_error("%s", err);
        goto out;
    }
    unsigned port = tt_server_port(srv);
    if (cfg.port_file && tt_httpd_write_port_file(cfg.port_file, port) != 0) {
        tt_error("port_file: cannot write %s", cfg.port_file);
        goto out;
    }
    tt_info("tokentrail %s collecting on %s://%s (port %u), store %s%s", TT_VERSION,
            cfg.tls_cert ? "https" : "http", cfg.listen, port, cfg.db,
            cfg.auth_tokens_files.n + cfg.auth_fingerprints.n ? ", ingest auth on" : "");

    char why[512] = "";
    int kafka_failed = 0;
    while (!stop_signal && !kafka_failed) {
        struct timespec ts = {0, 100 * 1000000};
        nanosleep(&ts, NULL);
        kafka_failed = kafka && tt_kafka_failed(kafka, why, sizeof(why));
    }
    if (kafka_failed) {
        tt_error("kafka: fatal producer error (%s): no longer accepting; events not delivered "
                 "stay in the outbox for the next start", why);
    } else {
        tt_info("signal %d: no longer accepting; finishing requests in flight", (int)stop_signal);
    }
    tt_server_quiesce(srv);
    int left = tt_server_drain(srv, cfg.shutdown_timeout_ms);
    if (left > 0) {
        tt_warn("%d requests still in flight after %lld ms; closing them", left,
                (long long)cfg.shutdown_timeout_ms);
    }
    tt_server_stop(srv);
    srv = NULL;
    /* After the server (nothing new is committed) and before the store (the
     * last deliveries are deleted from the outbox). */
    tt_kafka_stop(kafka, cfg.kafka_flush_timeout_ms);
    kafka = NULL;
    tt_store_close(store);
    store = NULL;
    tt_info("store closed; bye");
    rc = left > 0 || kafka_failed ? 1 : 0;

out:
    tt_server_stop(srv);
    tt_kafka_stop(kafka, 0);
    tt_store_close(store);
    tt_config_free(tt_collect_config_table, &cfg);
    return rc;
}
