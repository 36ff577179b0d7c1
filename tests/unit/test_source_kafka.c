/* test_source_kafka.c - the Kafka source without a broker: checkpoint
 * positions round-trip through seek/position, foreign or malformed positions
 * are refused, lag is unknown before an assignment, bad properties name
 * their key. */
#include <string.h>

#include <check.h>

#include "suites.h"
#include "tt_source_kafka.h"

#define NCASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Nothing listens there; creating a consumer does not connect synchronously. */
static tt_source *open_unreachable(void)
{
    tt_source_kafka_opts o = {.brokers = "127.0.0.1:1", .topic = "t", .group = "g"};
    char err[256];
    tt_source *s = tt_source_kafka_open(&o, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    return s;
}

static const char *const roundtrip[] = {"kafka:", "kafka:0=0", "kafka:0=5,2=7",
                                        "kafka:1=9223372036854775807,0=3"};

START_TEST(test_position_roundtrip)
{
    tt_source *s = open_unreachable();
    char err[256], pos[TT_SOURCE_MAX_POSITION];
    ck_assert_int_eq(tt_source_seek(s, roundtrip[_i], err, sizeof(err)), 0);
    tt_source_position(s, pos);
    ck_assert_str_eq(pos, roundtrip[_i]);
    ck_assert_int_eq(tt_source_lag(s), -1); /* no assignment yet */
    char asg[64];
    tt_source_kafka_assignment(s, asg, sizeof(asg));
    ck_assert_str_eq(asg, "");
    ck_assert_str_eq(s->ops->kind, "kafka");
    tt_source_close(s);
}
END_TEST

static const struct {
    const char *pos, *msg;
} bad[] = {
    {"seq:12", "not from a Kafka source"}, {"kafka:x=1", "malformed"},  {"kafka:0=", "malformed"},
    {"kafka:0=1;1=2", "malformed"},        {"kafka:-1=4", "malformed"}, {"kafka:0=-4", "malformed"},
    {"kafka:0=1,", "malformed"},
};

START_TEST(test_seek_refuses)
{
    tt_source *s = open_unreachable();
    char err[256] = "";
    ck_assert_int_eq(tt_source_seek(s, bad[_i].pos, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, bad[_i].msg) != NULL, "%s: %s", bad[_i].pos, err);
    tt_source_close(s);
}
END_TEST

START_TEST(test_position_with_incidents)
{
    tt_source_kafka_opts o = {.brokers = "127.0.0.1:1", .all_incidents = 1};
    char err[256], pos[TT_SOURCE_MAX_POSITION];
    tt_source *s = tt_source_kafka_open(&o, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    tt_source_position(s, pos);
    ck_assert_str_eq(pos, "kafka:;incidents:");
    ck_assert_int_eq(tt_source_seek(s, "kafka:0=5,1=2;incidents:0=9,1=3,2=4", err, sizeof(err)), 0);
    tt_source_position(s, pos);
    ck_assert_str_eq(pos, "kafka:0=5,1=2;incidents:0=9,1=3,2=4");
    ck_assert_int_eq(tt_source_seek(s, "kafka:;incidents:7=1", err, sizeof(err)), 0);
    ck_assert_int_eq(tt_source_seek(s, "kafka:0=1;other:1=2", err, sizeof(err)), -1);
    tt_source_close(s);
}
END_TEST

START_TEST(test_bad_property)
{
    tt_strlist props = {0};
    ck_assert_int_eq(tt_strlist_add(&props, "no.such.property=1"), 0);
    tt_source_kafka_opts o = {.brokers = "127.0.0.1:1", .props = &props};
    char err[256] = "";
    ck_assert_ptr_null(tt_source_kafka_open(&o, err, sizeof(err)));
    ck_assert_msg(strstr(err, "no.such.property") != NULL, "%s", err);
    tt_strlist_free(&props);
}
END_TEST

Suite *tt_source_kafka_suite(void)
{
    Suite *s = suite_create("source_kafka");
    TCase *tc = tcase_create("position");
    tcase_add_loop_test(tc, test_position_roundtrip, 0, NCASES(roundtrip));
    tcase_add_loop_test(tc, test_seek_refuses, 0, NCASES(bad));
    tcase_add_test(tc, test_position_with_incidents);
    tcase_add_test(tc, test_bad_property);
    suite_add_tcase(s, tc);
    return s;
}
