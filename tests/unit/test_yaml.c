/* test_yaml.c - tt_yaml_load_one: exactly one document, errors with file:line. */
#include <string.h>

#include "suites.h"
#include "tt_yaml.h"

/* Load text; returns tt_yaml_load_one's result, *has_root whether a root came
 * back. */
static int load(const char *text, char *err, size_t errlen, int *has_root)
{
    yaml_parser_t parser;
    ck_assert(yaml_parser_initialize(&parser));
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
    yaml_document_t doc;
    int rc = tt_yaml_load_one(&parser, &doc, "f.yaml", err, errlen);
    if (rc == 0) {
        *has_root = yaml_document_get_root_node(&doc) != NULL;
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    return rc;
}

START_TEST(test_one_document)
{
    char err[256] = "";
    int root = 0;
    ck_assert_int_eq(load("a: 1\nb: [2]\n", err, sizeof(err), &root), 0);
    ck_assert_int_eq(root, 1);
    ck_assert_int_eq(load("---\na: 1\n...\n", err, sizeof(err), &root), 0);
    ck_assert_int_eq(root, 1);
    ck_assert_int_eq(load("", err, sizeof(err), &root), 0);
    ck_assert_int_eq(root, 0);
    ck_assert_int_eq(load("# only a comment\n", err, sizeof(err), &root), 0);
    ck_assert_int_eq(root, 0);
}
END_TEST

START_TEST(test_second_document)
{
    char err[256] = "";
    int root = 0;
    ck_assert_int_eq(load("a: 1\n---\nb: 2\n", err, sizeof(err), &root), -1);
    ck_assert_str_eq(err, "f.yaml:2: more than one YAML document");
    ck_assert_int_eq(load("---\na: 1\n...\n---\nb\n", err, sizeof(err), &root), -1);
    ck_assert_str_eq(err, "f.yaml:4: more than one YAML document");
}
END_TEST

START_TEST(test_syntax_error)
{
    char err[256] = "";
    int root = 0;
    ck_assert_int_eq(load("a: [1\n", err, sizeof(err), &root), -1);
    ck_assert_msg(strncmp(err, "f.yaml:2:1: YAML error: ", 24) == 0, "%s", err);
    /* in a second document: still an error, not ignored */
    ck_assert_int_eq(load("a: 1\n---\nb: [\n", err, sizeof(err), &root), -1);
    ck_assert_msg(strncmp(err, "f.yaml:4:1: YAML error: ", 24) == 0, "%s", err);
}
END_TEST

Suite *tt_yaml_suite(void)
{
    Suite *s = suite_create("yaml");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_one_document);
    tcase_add_test(tc, test_second_document);
    tcase_add_test(tc, test_syntax_error);
    suite_add_tcase(s, tc);
    return s;
}
