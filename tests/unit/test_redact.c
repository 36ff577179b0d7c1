/* test_redact.c - error-message excerpts of response bodies never carry a
 * token or a secret, in JSON, truncated JSON, form and header-like text. */
#include <string.h>

#include <check.h>

#include "suites.h"
#include "tt_redact.h"

static const char *excerpt(const char *body, const char *const *secrets, size_t max_chars)
{
    static char out[512];
    tt_redact_excerpt(body, strlen(body), secrets, max_chars, out, sizeof(out));
    return out;
}

START_TEST(test_json_names)
{
    ck_assert_str_eq(excerpt("{\"access_token\":\"RAW-123\",\"token_type\":\"Bearer\","
                             "\"expires_in\":300}",
                             NULL, 200),
                     "{\"access_token\":\"<redacted>\",\"token_type\":\"Bearer\","
                     "\"expires_in\":300}");
    /* truncated, the case that leaked: the JSON does not parse */
    ck_assert_str_eq(excerpt("{\"access_token\":\"RAWDRILLTOKEN-123\",\"token_type\":\"Bearer\"",
                             NULL, 200),
                     "{\"access_token\":\"<redacted>\",\"token_type\":\"Bearer\"");
    ck_assert_str_eq(excerpt("{\"access_token\":\"RAW-cut-off", NULL, 200),
                     "{\"access_token\":\"<redacted>");
    ck_assert_str_eq(excerpt("{ \"refresh_token\" : \"r1\", \"id_token\":\"e.y.J\", "
                             "\"device_code\":\"dc\", \"Password\": \"pw\"}",
                             NULL, 200),
                     "{ \"refresh_token\" : \"<redacted>\", \"id_token\":\"<redacted>\", "
                     "\"device_code\":\"<redacted>\", \"Password\": \"<redacted>\"}");
    /* an escaped quote inside the value does not end it */
    ck_assert_str_eq(excerpt("{\"token\":\"a\\\"b\",\"x\":1}", NULL, 200),
                     "{\"token\":\"<redacted>\",\"x\":1}");
    /* names that only contain a secret name are left alone */
    ck_assert_str_eq(excerpt("{\"token_type\":\"Bearer\",\"issued_token_type\":\"urn:x\"}",
                             NULL, 200),
                     "{\"token_type\":\"Bearer\",\"issued_token_type\":\"urn:x\"}");
    ck_assert_str_eq(excerpt("{\"error\":\"invalid_client\",\"error_description\":\"no such "
                             "client\"}",
                             NULL, 200),
                     "{\"error\":\"invalid_client\",\"error_description\":\"no such client\"}");
}
END_TEST

START_TEST(test_form_and_text)
{
    ck_assert_str_eq(excerpt("access_token=RAW&token_type=bearer", NULL, 200),
                     "access_token=<redacted>&token_type=bearer");
    ck_assert_str_eq(excerpt("token: RAW more", NULL, 200), "token: <redacted> more");
    /* a name with no value after it stays */
    ck_assert_str_eq(excerpt("missing access_token in response", NULL, 200),
                     "missing access_token in response");
}
END_TEST

/* A server that echoes the Authorization header (client_secret_basic): the
 * credential after the scheme is the client secret, base64'd. */
START_TEST(test_auth_schemes)
{
    ck_assert_str_eq(excerpt("{\"error\":\"invalid_client\",\"raw\":\"Basic dHQtc3ZjOnMzY3IzdA==\"}",
                             NULL, 200),
                     "{\"error\":\"invalid_client\",\"raw\":\"Basic <redacted>\"}");
    ck_assert_str_eq(excerpt("Authorization: Bearer abc.DEF-ghi_~+/ rest", NULL, 200),
                     "Authorization: Bearer <redacted> rest");
    ck_assert_str_eq(excerpt("authorization: bearer   tok", NULL, 200),
                     "authorization: bearer   <redacted>");
    /* the word alone, or inside another word, is left */
    ck_assert_str_eq(excerpt("use a Bearer token; BasicAuth off", NULL, 200),
                     "use a Bearer <redacted>; BasicAuth off");
    ck_assert_str_eq(excerpt("scheme: Basic", NULL, 200), "scheme: Basic");
}
END_TEST

START_TEST(test_known_secrets)
{
    const char *secrets[] = {"s3cr3t-client", "tok-ABCDEFGH", "ab", NULL};
    ck_assert_str_eq(excerpt("<p>bad client s3cr3t-client for tok-ABCDEFGH</p>", secrets, 200),
                     "<p>bad client <redacted> for <redacted></p>");
    /* too short to redact safely without destroying the message */
    ck_assert_str_eq(excerpt("ab cd", secrets, 200), "ab cd");
    /* the body ends inside a known secret */
    ck_assert_str_eq(excerpt("echo: tok-ABCD", secrets, 200), "echo: <redacted>");
}
END_TEST

START_TEST(test_cut_and_controls)
{
    /* the cut after 20 characters falls inside the value: nothing of it shows */
    ck_assert_str_eq(excerpt("{\"access_token\":\"0123456789abcdef\"}", NULL, 20),
                     "{\"access_token\":\"<re...");
    ck_assert_str_eq(excerpt("line1\nline2\r\x1b[31m", NULL, 200), "line1 line2  [31m");
    ck_assert_str_eq(excerpt("abcdef", NULL, 3), "abc...");
    ck_assert_str_eq(excerpt("", NULL, 200), "");
    char small[8];
    tt_redact_excerpt("abcdefghijkl", 12, NULL, 200, small, sizeof(small));
    ck_assert_str_eq(small, "abcd...");
}
END_TEST

Suite *tt_redact_suite(void)
{
    Suite *s = suite_create("redact");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_json_names);
    tcase_add_test(tc, test_form_and_text);
    tcase_add_test(tc, test_auth_schemes);
    tcase_add_test(tc, test_known_secrets);
    tcase_add_test(tc, test_cut_and_controls);
    suite_add_tcase(s, tc);
    return s;
}
