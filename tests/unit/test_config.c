/* test_config.c - the config table: defaults, YAML files, errors with file:line. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "suites.h"
#include "tt_config.h"

typedef struct demo {
    char *listen;
    int64_t max_body;
    int64_t timeout;
    int64_t workers;
    int verbose;
    tt_strlist files;
    tt_strlist kafka;
    char *db;
    char *level;
    tt_strlist fingerprints;
    tt_strlist token_files;
} demo;

static const tt_cfg_entry demo_table[] = {
    {"listen", TT_CFG_STRING, "127.0.0.1:8088", 0, 0, offsetof(demo, listen), "address"},
    {"max_body", TT_CFG_SIZE, "8MiB", 1024, INT64_C(1) << 30, offsetof(demo, max_body), "limit"},
    {"net.timeout", TT_CFG_DURATION, "5s", 0, 86400000, offsetof(demo, timeout), "timeout"},
    {"workers", TT_CFG_INT, "4", 1, 64, offsetof(demo, workers), "threads"},
    {"verbose", TT_CFG_BOOL, "false", 0, 0, offsetof(demo, verbose), "chatty"},
    {"auth.tokens_file", TT_CFG_STRLIST, NULL, 0, 0, offsetof(demo, files), "files"},
    {"kafka", TT_CFG_PASSMAP, NULL, 0, 0, offsetof(demo, kafka), "librdkafka"},
    {"db", TT_CFG_STRING, "demo.db", 1, 0, offsetof(demo, db), "database, not empty"},
    {"log_level", TT_CFG_LOGLEVEL, "info", 0, 0, offsetof(demo, level), "verbosity"},
    {"auth.token_sha256", TT_CFG_SHA256LIST, NULL, 0, 0, offsetof(demo, fingerprints), "tokens"},
    {"token_files", TT_CFG_FILELIST, NULL, 0, 0, offsetof(demo, token_files), "readable files"},
    {NULL, 0, NULL, 0, 0, 0, NULL},
};

static char path[64];

static void write_file(const char *text)
{
    snprintf(path, sizeof(path), "/tmp/tt_cfg_%d.yaml", (int)getpid());
    FILE *fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fputs(text, fp);
    fclose(fp);
}

START_TEST(config_defaults)
{
    demo d;
    memset(&d, 0, sizeof(d));
    char err[256];
    ck_assert_int_eq(tt_config_defaults(demo_table, &d, err, sizeof(err)), 0);
    ck_assert_str_eq(d.listen, "127.0.0.1:8088");
    ck_assert_int_eq(d.max_body, 8 << 20);
    ck_assert_int_eq(d.timeout, 5000);
    ck_assert_int_eq(d.workers, 4);
    ck_assert_int_eq(d.verbose, 0);
    ck_assert_str_eq(d.db, "demo.db");
    ck_assert_str_eq(d.level, "info");
    tt_config_free(demo_table, &d);
}
END_TEST

START_TEST(config_load_nested_lists_and_passthrough)
{
    write_file("listen: 0.0.0.0:9000\n"
               "max_body: 512KiB\n"
               "net:\n"
               "  timeout: 1h30m\n"
               "verbose: yes\n"
               "auth:\n"
               "  tokens_file: [/a, /b]\n"
               "kafka:\n"
               "  brokers: 127.0.0.1:9092\n"
               "  security.protocol: SASL_SSL\n"
               "  sasl:\n"
               "    mechanism: PLAIN\n");
    demo d;
    memset(&d, 0, sizeof(d));
    char err[256] = "";
    tt_config_defaults(demo_table, &d, err, sizeof(err));
    ck_assert_msg(tt_config_load(demo_table, &d, path, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(d.listen, "0.0.0.0:9000");
    ck_assert_int_eq(d.max_body, 512 * 1024);
    ck_assert_int_eq(d.timeout, 5400000);
    ck_assert_int_eq(d.verbose, 1);
    ck_assert_uint_eq(d.files.n, 2);
    ck_assert_str_eq(d.files.v[1], "/b");
    ck_assert_uint_eq(d.kafka.n, 3);
    ck_assert_str_eq(d.kafka.v[0], "brokers=127.0.0.1:9092");
    ck_assert_str_eq(d.kafka.v[1], "security.protocol=SASL_SSL");
    ck_assert_str_eq(d.kafka.v[2], "sasl.mechanism=PLAIN");
    tt_config_free(demo_table, &d);
    unlink(path);
}
END_TEST

/* Each bad file and the exact error it must produce (with its line). */
static const struct {
    const char *yaml;
    const char *err_suffix;
} bad_files[] = {
    {"listen: a:1\nlisten2: x\n", ":2: unknown key 'listen2'"},
    {"net:\n  timeout: 5s\n  retries: 3\n", ":3: unknown key 'net.retries'"},
    {"max_body: lots\n", ":1: max_body: not a size (e.g. 8MiB, 512KiB, 1048576)"},
    {"max_body: 10\n", ":1: max_body: out of range (1024..1073741824 bytes)"},
    {"workers: 0\n", ":1: workers: out of range (1..64)"},
    {"workers: 3.5\n", ":1: workers: not an integer"},
    {"verbose: maybe\n", ":1: verbose: not a boolean (true/false)"},
    {"net:\n  timeout: soon\n", ":2: net.timeout: not a duration (e.g. 250ms, 5s, 15m, 1h)"},
    {"listen: [a, b]\n", ":1: listen: expected a single value, not a list"},
    {"bogus:\n  x: 1\n", ":1: unknown key 'bogus'"},
    {"- a\n- b\n", ":1: the top level must be a mapping of keys"},
    {"listen: \"unterminated\n", "YAML error: found unexpected end of stream"},
};

START_TEST(config_bad_files)
{
    write_file(bad_files[_i].yaml);
    demo d;
    memset(&d, 0, sizeof(d));
    char err[256] = "";
    tt_config_defaults(demo_table, &d, err, sizeof(err));
    ck_assert_int_eq(tt_config_load(demo_table, &d, path, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, bad_files[_i].err_suffix) != NULL, "case %d: got '%s'", _i, err);
    ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "error must start with the file: %s", err);
    tt_config_free(demo_table, &d);
    unlink(path);
}
END_TEST

/* Regression: duplicate keys and extra YAML documents were accepted, the last
 * value silently winning; a scalar or list where a section belongs was
 * reported as an unknown key. Each must be an error naming file:line. */
static const struct {
    const char *yaml;
    const char *err_suffix;
} ambiguous_files[] = {
    /* duplicate top-level key */
    {"max_body: 1KiB\nmax_body: 16MiB\n", ":2: duplicate key 'max_body'"},
    /* duplicate nested key, in a table section and in a pass-through section */
    {"net:\n  timeout: 1s\n  timeout: 2s\n", ":3: duplicate key 'net.timeout'"},
    {"kafka:\n  acks: all\n  linger.ms: 5\n  acks: 1\n", ":4: duplicate key 'kafka.acks'"},
    /* a section given twice, even with different keys below it */
    {"auth:\n  tokens_file: /a\nlisten: x:1\nauth:\n  tokens_file: /b\n",
     ":4: duplicate key 'auth'"},
    /* the same key spelled dotted and nested */
    {"net.timeout: 1s\nnet:\n  timeout: 2s\n", ":3: duplicate key 'net.timeout'"},
    /* more than one document */
    {"listen: a:1\n---\nlisten: b:2\n", ":2: more than one YAML document"},
    {"---\nlisten: a:1\n---\n", ":3: more than one YAML document"},
    /* a scalar or a list where a section (mapping) belongs */
    {"auth: x\n", ":1: 'auth' must be a mapping (keys like auth.tokens_file)"},
    {"listen: a:1\nnet: 5\n", ":2: 'net' must be a mapping (keys like net.timeout)"},
    {"kafka: [a]\n", ":1: 'kafka' must be a mapping (keys like kafka.*)"},
    /* ...and a mapping where a single value belongs */
    {"workers:\n  n: 4\n", ":1: workers: expected a single value, not a mapping"},
};

START_TEST(config_ambiguous_files)
{
    write_file(ambiguous_files[_i].yaml);
    demo d;
    memset(&d, 0, sizeof(d));
    char err[256] = "";
    tt_config_defaults(demo_table, &d, err, sizeof(err));
    ck_assert_int_eq(tt_config_load(demo_table, &d, path, err, sizeof(err)), -1);
    ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "case %d: no file: '%s'", _i, err);
    ck_assert_msg(strcmp(err + strlen(path), ambiguous_files[_i].err_suffix) == 0,
                  "case %d: got '%s'", _i, err);
    tt_config_free(demo_table, &d);
    unlink(path);
}
END_TEST

/* Dotted and nested spellings of different keys, and a repeated list item,
 * are not duplicates. */
START_TEST(config_distinct_keys_not_duplicates)
{
    write_file("net.timeout: 1s\n"
               "auth:\n"
               "  tokens_file: [/a, /a]\n"
               "kafka.acks: all\n"
               "kafka:\n"
               "  linger.ms: 5\n"
               "  sasl:\n"
               "    mechanism: PLAIN\n"
               "  sasl.username: u\n");
    demo d;
    memset(&d, 0, sizeof(d));
    char err[256] = "";
    tt_config_defaults(demo_table, &d, err, sizeof(err));
    ck_assert_msg(tt_config_load(demo_table, &d, path, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(d.timeout, 1000);
    ck_assert_uint_eq(d.files.n, 2);
    ck_assert_uint_eq(d.kafka.n, 4);
    tt_config_free(demo_table, &d);
    unlink(path);
}
END_TEST

#define FP_A "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* Regression: log_level, auth.token_sha256, auth.tokens_file and an empty db
 * were checked only after loading, so their errors named no file and line
 * (and db: "" got as far as "cannot switch the database to WAL mode"). */
static const struct {
    const char *yaml;
    const char *err_suffix;
} located_errors[] = {
    {"listen: a:1\nlog_level: 3\n", ":2: log_level: '3' is not error, warn, info or debug"},
    {"db: \"\"\n", ":1: db: must not be empty"},
    {"auth:\n  token_sha256:\n    - " FP_A "\n    - sha256:abc\n",
     ":4: auth.token_sha256: not a fingerprint sha256:<64 lowercase hex digits>"},
    {"token_files: /nonexistent/tokens\n",
     ":1: token_files: cannot read /nonexistent/tokens: No such file or directory"},
};

START_TEST(config_value_errors_name_the_line)
{
    write_file(located_errors[_i].yaml);
    demo d;
    memset(&d, 0, sizeof(d));
    char err[256] = "";
    tt_config_defaults(demo_table, &d, err, sizeof(err));
    ck_assert_int_eq(tt_config_load(demo_table, &d, path, err, sizeof(err)), -1);
    ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "case %d: no file: '%s'", _i, err);
    ck_assert_msg(strcmp(err + strlen(path), located_errors[_i].err_suffix) == 0,
                  "case %d: got '%s'", _i, err);
    tt_config_free(demo_table, &d);
    unlink(path);
}
END_TEST

/* The same checks on flags name the command line; good values pass. */
START_TEST(config_value_checks_flags_and_good_values)
{
    demo d;
    memset(&d, 0, sizeof(d));
    char err[256] = "";
    tt_cfg_flags flags = {.n = 0};
    tt_cfg_flags_add(&flags, "log_level", "chatty", NULL);
    ck_assert_int_eq(tt_config_build(demo_table, &d, NULL, &flags, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "command line: log_level: 'chatty' is not error, warn, info or debug");
    tt_config_free(demo_table, &d);

    memset(&d, 0, sizeof(d));
    flags.n = 0;
    tt_cfg_flags_add(&flags, "db", "", "db");
    ck_assert_int_eq(tt_config_build(demo_table, &d, NULL, &flags, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "--db (db): must not be empty");
    tt_config_free(demo_table, &d);

    /* The config file itself is a readable file. */
    write_file("log_level: debug\n"
               "db: other.db\n"
               "auth:\n"
               "  token_sha256: " FP_A "\n");
    char yaml[sizeof(path) + 32];
    snprintf(yaml, sizeof(yaml), "token_files: [%s]\n", path);
    FILE *fp = fopen(path, "a");
    ck_assert_ptr_nonnull(fp);
    fputs(yaml, fp);
    fclose(fp);
    memset(&d, 0, sizeof(d));
    ck_assert_msg(tt_config_build(demo_table, &d, path, NULL, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(d.level, "debug");
    ck_assert_str_eq(d.db, "other.db");
    ck_assert_uint_eq(d.fingerprints.n, 1);
    ck_assert_uint_eq(d.token_files.n, 1);
    ck_assert_str_eq(d.token_files.v[0], path);
    tt_config_free(demo_table, &d);
    unlink(path);
}
END_TEST

START_TEST(config_missing_file)
{
    demo d;
    memset(&d, 0, sizeof(d));
    char err[256];
    ck_assert_int_eq(tt_config_load(demo_table, &d, "/nonexistent/x.yaml", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "/nonexistent/x.yaml: cannot open: No such file or directory");
}
END_TEST

START_TEST(config_set_from_flag)
{
    demo d;
    memset(&d, 0, sizeof(d));
    char err[256];
    tt_config_defaults(demo_table, &d, err, sizeof(err));
    ck_assert_int_eq(tt_config_set(demo_table, &d, "listen", "[::1]:1", "--listen", err,
                                   sizeof(err)), 0);
    ck_assert_str_eq(d.listen, "[::1]:1");
    ck_assert_int_eq(tt_config_set(demo_table, &d, "nope", "1", "--nope", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "--nope: unknown key 'nope'");
    tt_config_free(demo_table, &d);
}
END_TEST

START_TEST(config_build_flags_override_file)
{
    write_file("listen: 0.0.0.0:9000\n"
               "workers: 8\n"
               "auth:\n"
               "  tokens_file: [/file-a, /file-b]\n");
    demo d;
    memset(&d, 0, sizeof(d));
    tt_cfg_flags flags = {.n = 0};
    ck_assert_int_eq(tt_cfg_flags_add(&flags, "workers", "3", NULL), 0);
    ck_assert_int_eq(tt_cfg_flags_add(&flags, "auth.tokens_file", "/flag-1", NULL), 0);
    ck_assert_int_eq(tt_cfg_flags_add(&flags, "auth.tokens_file", "/flag-2", NULL), 0);
    char err[256] = "";
    ck_assert_msg(tt_config_build(demo_table, &d, path, &flags, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(d.listen, "0.0.0.0:9000");  /* from the file */
    ck_assert_int_eq(d.workers, 3);              /* the flag wins */
    ck_assert_int_eq(d.timeout, 5000);           /* the default */
    /* A list flag replaces the file's list; repeated flags accumulate. */
    ck_assert_uint_eq(d.files.n, 2);
    ck_assert_str_eq(d.files.v[0], "/flag-1");
    ck_assert_str_eq(d.files.v[1], "/flag-2");
    tt_config_free(demo_table, &d);

    /* A bad flag is reported as coming from the command line. */
    memset(&d, 0, sizeof(d));
    tt_cfg_flags bad = {.n = 0};
    tt_cfg_flags_add(&bad, "workers", "999", "workers");
    ck_assert_int_eq(tt_config_build(demo_table, &d, NULL, &bad, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "--workers (workers): out of range (1..64)");
    tt_config_free(demo_table, &d);

    /* The flag list has a hard maximum. */
    tt_cfg_flags full = {.n = 0};
    for (int i = 0; i < TT_CFG_MAX_FLAGS; i++) {
        ck_assert_int_eq(tt_cfg_flags_add(&full, "workers", "1", NULL), 0);
    }
    ck_assert_int_eq(tt_cfg_flags_add(&full, "workers", "1", NULL), -1);
    unlink(path);
}
END_TEST

static const struct {
    const char *in;
    int64_t out;
    int rc;
} sizes[] = {
    {"1048576", 1048576, 0}, {"8MiB", 8 << 20, 0}, {"8M", 8 << 20, 0}, {"8MB", 8000000, 0},
    {"64k", 65536, 0},       {"2GiB", INT64_C(2) << 30, 0}, {"", 0, -1}, {"MiB", 0, -1},
    {"-1", 0, -1},           {"5 parsecs", 0, -1}, {"99999999999999999999", 0, -1},
};

START_TEST(config_sizes)
{
    int64_t v = -7;
    ck_assert_int_eq(tt_parse_size(sizes[_i].in, &v), sizes[_i].rc);
    if (sizes[_i].rc == 0) {
        ck_assert_int_eq(v, sizes[_i].out);
    }
}
END_TEST

Suite *tt_config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, config_defaults);
    tcase_add_test(tc, config_load_nested_lists_and_passthrough);
    tcase_add_loop_test(tc, config_bad_files, 0, sizeof(bad_files) / sizeof(bad_files[0]));
    tcase_add_loop_test(tc, config_ambiguous_files, 0,
                        sizeof(ambiguous_files) / sizeof(ambiguous_files[0]));
    tcase_add_test(tc, config_distinct_keys_not_duplicates);
    tcase_add_loop_test(tc, config_value_errors_name_the_line, 0,
                        sizeof(located_errors) / sizeof(located_errors[0]));
    tcase_add_test(tc, config_value_checks_flags_and_good_values);
    tcase_add_test(tc, config_missing_file);
    tcase_add_test(tc, config_set_from_flag);
    tcase_add_test(tc, config_build_flags_override_file);
    tcase_add_loop_test(tc, config_sizes, 0, sizeof(sizes) / sizeof(sizes[0]));
    suite_add_tcase(s, tc);
    return s;
}
