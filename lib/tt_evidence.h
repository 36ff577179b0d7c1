/* tt_evidence.h - signed, reproducible evidence bundles: export the events,
 * findings, drill reports and policy of a time range into a tar.gz with a
 * signed manifest and a hash chain over the events; verify such a bundle.
 * The format is described in docs/evidence.md. */
#ifndef TT_EVIDENCE_H
#define TT_EVIDENCE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#define TT_EVIDENCE_FORMAT "tokentrail-evidence-v1"
#define TT_EVIDENCE_MAX_EVENT (16 << 20)        /* one stored event or finding, bytes */
#define TT_EVIDENCE_MAX_MANIFEST (16 << 20)     /* manifest.json, bytes */
#define TT_EVIDENCE_MAX_POLICY (4 << 20)        /* policy.yaml, bytes */
#define TT_EVIDENCE_MAX_DRILL_REPORT (16 << 20) /* one drill report.json, bytes */
#define TT_EVIDENCE_MAX_DRILLS 10000            /* report.json files considered */
#define TT_EVIDENCE_MAX_DRILL_DEPTH 16          /* directory levels under --drill-reports */
#define TT_EVIDENCE_MAX_ENTRIES (TT_EVIDENCE_MAX_DRILLS + 8)
#define TT_EVIDENCE_MAX_PROBLEMS 100 /* problems a verification reports */

/* What to export. Times are epoch ms, from inclusive, to exclusive. The
 * filters are NULL for "any"; their meaning is in docs/evidence.md#filters. */
typedef struct tt_evidence_query {
    int64_t from_ms;
    int64_t to_ms;
    const char *incident_id;
    const char *subject;
    const char *client_id;
} tt_evidence_query;

/* Receives one stored item (event or finding): its exact bytes, no newline.
 * Returns 0 to go on, non-zero to stop with an error. */
typedef int (*tt_evidence_item_cb)(void *ctx, const char *body, size_t len);

/* Where events and findings come from: the SQLite store or the Kafka
 * topics (tt_evidence_kafka.c). */
typedef struct tt_evidence_source {
    const char *kind;     /* "sqlite", "kafka" */
    const char *location; /* the database path, the topic */
    /* Call cb for every matching event in order (event time, then arrival;
     * Kafka: then partition and offset).
     * Returns the number of events, or -1 with err filled. Export calls it
     * twice (hash, then archive); both calls must yield the same bytes, so a
     * source reads from one snapshot (SQLite: one read transaction) or
     * spools. */
    int64_t (*each_event)(struct tt_evidence_source *s, const tt_evidence_query *q,
                          tt_evidence_item_cb cb, void *ctx, char *err, size_t errlen);
    /* Call cb for every finding whose time is in range, in time order.
     * Returns the count, or -1 with err filled. When the source has no
     * findings at all, returns 0 and puts the reason into note. */
    int64_t (*each_finding)(struct tt_evidence_source *s, const tt_evidence_query *q,
                            tt_evidence_item_cb cb, void *ctx, char *note, size_t notelen,
                            char *err, size_t errlen);
    void (*close)(struct tt_evidence_source *s); /* frees s */
    void *impl;
    /* Optional (NULL for SQLite): the i-th note for the manifest's `notes`
     * (how the source ordered or skipped events), NULL after the last.
     * Asked after both reads. */
    const char *(*note)(struct tt_evidence_source *s, size_t i);
} tt_evidence_source;

/* The SQLite store written by `tokentrail collect`, opened read-only.
 * Returns NULL with err filled. */
tt_evidence_source *tt_evidence_source_sqlite(const char *path, char *err, size_t errlen);

/* The Kafka topics written by `tokentrail collect --kafka-brokers`. The
 * events of the range are read once (every partition up to the high
 * watermark seen at the start, no consumer group) into an unlinked spool
 * file in spool_dir, sorted there by (event time, partition, offset) with an
 * external merge sort, and both reads of export replay that file. */
struct tt_strlist; /* tt_config.h */
typedef struct tt_evidence_kafka_opts {
    const char *brokers;
    const char *topic;              /* NULL: "tokentrail.events" */
    const char *findings_topic;     /* NULL: "tokentrail.findings" (none there: empty, noted) */
    const struct tt_strlist *props; /* librdkafka "key=value" (-X); may be NULL */
    const char *spool_dir;          /* where the temporary sort files go; NULL: "." */
    size_t sort_mem;                /* bytes sorted in memory per run; 0: 16 MiB */
    int64_t timeout_ms;             /* metadata and progress timeout; 0: 30 s */
} tt_evidence_kafka_opts;

/* Returns NULL with err filled (out of memory). Nothing is read until the
 * first call of each_event. */
tt_evidence_source *tt_evidence_source_kafka(const tt_evidence_kafka_opts *o, char *err,
                                             size_t errlen);

typedef struct tt_evidence_export_opts {
    tt_evidence_source *src; /* borrowed */
    tt_evidence_query q;
    EVP_PKEY *key;           /* Ed25519 private key, borrowed */
    const char *out_path;    /* the bundle; written as OUT.partial, then renamed */
    const char *policy_path; /* NULL: no policy.yaml */
    const char *drills_dir;  /* NULL: no drill reports */
    const char *spool_dir;   /* NULL: the directory of out_path */
    int level;               /* gzip level 1..9 (6 when 0) */
    int threads;             /* compression threads; 0 = one per CPU (at most 8) */
    int progress;            /* 1: progress lines on stderr */
    int overwrite;           /* 1: replace an existing out_path */
} tt_evidence_export_opts;

typedef struct tt_evidence_export_stats {
    uint64_t events, findings, drill_reports;
    uint64_t event_bytes;  /* size of events.ndjson */
    uint64_t bundle_bytes; /* size of the .tar.gz */
} tt_evidence_export_stats;

/* Write a bundle. Memory stays fixed whatever the size: the events are read
 * twice from the source (hashed and chained, then streamed into the
 * archive after the signed manifest); findings, drill reports and the policy
 * are spooled to an unlinked temporary file in spool_dir while hashed. Returns 0, or -1 with err
 * filled and no bundle (nor partial file) left behind. */
int tt_evidence_export(const tt_evidence_export_opts *o, tt_evidence_export_stats *st, char *err,
                       size_t errlen);

/* One problem found by a verification, in the order found. */
typedef void (*tt_evidence_problem_cb)(void *ctx, const char *msg);

typedef struct tt_evidence_verify_result {
    int ok;          /* 1 only when everything checked out */
    int problems;    /* count (also past TT_EVIDENCE_MAX_PROBLEMS) */
    uint64_t events; /* events.ndjson lines read */
    uint64_t files;  /* entries checked */
    uint64_t bytes;  /* uncompressed bytes read */
    char signer[80]; /* key fingerprint from the manifest */
} tt_evidence_verify_result;

/* Verify a bundle against a public key: the signature over manifest.json,
 * entry names, order and content hashes, and the event chain. Every problem
 * goes to cb (at most TT_EVIDENCE_MAX_PROBLEMS of them). Returns 0 when the
 * verification ran (res->ok says the verdict), -1 with err filled when it
 * could not run at all (out of memory). */
int tt_evidence_verify(const char *bundle, EVP_PKEY *pub, int progress, tt_evidence_problem_cb cb,
                       void *ctx, tt_evidence_verify_result *res, char *err, size_t errlen);

/* The README.txt put into every bundle. */
extern const char tt_evidence_readme[];

/* Entry point of `tokentrail evidence`; returns the exit code. */
int tt_cmd_evidence(int argc, char **argv);

#endif
