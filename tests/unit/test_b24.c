/*
 * The Bitrix24 sink's pure parts: batch command composition (the "method?query" strings
 * the portal reads back with PHP's parse_str), the classification of the portal's answers
 * and errors into what the sink does next, and the deal stage an order's state maps to
 * ([bitrix24.map] under the configured pipeline, with @paid moving a deal only to a stage
 * that sorts later in it). Contact keys (phone and e-mail) are test_phone.c's.
 *
 * Query strings are checked the way the portal reads them: split on '&', then on the
 * first '=', then percent-decoded with '+' as a space (PHP's urldecode). So a test
 * passes for any correct encoding and fails for any string the portal would read
 * differently from what was meant.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "config/config.h"
#include "sinks/b24_client.h"
#include "sinks/b24_values.h"
#include "sinks/b24_stages.h"
#include "sinks/bitrix24_conf.h"

/* --- b24_query_string -------------------------------------------------------------------- */

static int hexval(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* PHP's urldecode(): '+' is a space, %XX a byte, a malformed % stays as written. */
static char *urldecode(const char *s, size_t n)
{
        char *out = malloc(n + 1);
        size_t o = 0;

        for (size_t i = 0; i < n; i++) {
                if (s[i] == '+') {
                        out[o++] = ' ';
                } else if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 &&
                           hexval(s[i + 2]) >= 0) {
                        out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
                        i += 2;
                } else {
                        out[o++] = s[i];
                }
        }
        out[o] = '\0';
        return out;
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads "method?k=v&k=v" as the portal does and checks the method and the decoded
 * (key, value) pairs: `want` is key, value, key, value, …, NULL, in any pair order. */
static void expect_query_reads_as(const char *q, const char *method, const char *const *want)
{
        const char *qs = strchr(q, '?');
        char *got[64], *exp[64], bad[1024] = "";
        size_t n_got = 0, n_want = 0;

        if (!qs || strlen(method) != (size_t)(qs - q) || strncmp(q, method, qs - q) != 0)
                fail_msg("\"%s\": want the method \"%s\" before '?'", q, method);
        for (const char *p = qs + 1; *p;) {
                const char *end = strchr(p, '&'), *eq;
                size_t len;
                if (!end)
                        end = p + strlen(p);
                len = (size_t)(end - p);
                eq = memchr(p, '=', len);
                if (len > 0) {
                        char *k = urldecode(p, eq ? (size_t)(eq - p) : len);
                        char *v = eq ? urldecode(eq + 1, (size_t)(end - eq - 1)) : strdup("");
                        assert_true(n_got < 64);
                        got[n_got] = malloc(strlen(k) + strlen(v) + 8);
                        sprintf(got[n_got++], "%s ␟ %s", k, v);
                        free(k);
                        free(v);
                }
                p = *end ? end + 1 : end;
        }
        for (; want[2 * n_want]; n_want++) {
                assert_true(n_want < 64);
                const char *k = want[2 * n_want], *v = want[2 * n_want + 1];
                exp[n_want] = malloc(strlen(k) + strlen(v) + 8);
                sprintf(exp[n_want], "%s ␟ %s", k, v);
        }
        qsort(got, n_got, sizeof(got[0]), cmp_str);
        qsort(exp, n_want, sizeof(exp[0]), cmp_str);
        for (size_t i = 0; !bad[0] && (i < n_got || i < n_want); i++)
                if (i >= n_got || i >= n_want || strcmp(got[i], exp[i]) != 0)
                        snprintf(bad, sizeof(bad),
                                 "\"%s\" reads as pair %zu [%s], want [%s] (␟ separates key and "
                                 "value)",
                                 q, i, i < n_got ? got[i] : "none", i < n_want ? exp[i] : "none");
        for (size_t i = 0; i < n_got; i++)
                free(got[i]);
        for (size_t i = 0; i < n_want; i++)
                free(exp[i]);
        if (bad[0])
                fail_msg("%s", bad);
}

static char *last_query;

static int free_last_query(void **state)
{
        free(last_query);
        last_query = NULL;
        return 0;
}

static char *query(const char *method, const char *params_json)
{
        json_error_t e;
        json_t *p = json_loads(params_json, JSON_PRESERVE_ORDER, &e);
        char *q;

        if (!p)
                fail_msg("bad test JSON %s: %s", params_json, e.text);
        q = b24_query_string(method, p);
        json_decref(p);
        free(last_query); /* kept until the next call, so a failing test does not leak it */
        last_query = q;
        return q;
}

static void a_query_past_its_cap_is_refused_whole_not_cut(void **state)
{
        /* 3 million bytes that percent-encode to 9 MB: past the 8 MiB a command may take,
         * and a later small field must not land after the dropped one */
        size_t n = 3000000;
        char *text = malloc(n + 1);
        json_t *p;
        char *q;

        assert_non_null(text);
        memset(text, '&', n);
        text[n] = '\0';
        p = json_pack("{s:{s:s, s:s}}", "fields", "COMMENTS", text, "TITLE", "x");
        free(text);
        assert_non_null(p);
        q = b24_query_string("crm.deal.add", p);
        json_decref(p);
        if (q) {
                size_t len = strlen(q);
                free(q);
                fail_msg("want NULL for a query past the cap, got %zu bytes", len);
        }
}

static void nested_fields_become_bracketed_keys(void **state)
{
        char *q = query("crm.deal.add", "{\"fields\": {\"TITLE\": \"Order A-1\", "
                                        "\"STAGE_ID\": \"NEW\", \"OPPORTUNITY\": \"4990.00\"}}");

        expect_query_reads_as(q, "crm.deal.add",
                              (const char *const[]){"fields[TITLE]", "Order A-1",
                                                    "fields[STAGE_ID]", "NEW",
                                                    "fields[OPPORTUNITY]", "4990.00", NULL});
}

static void arrays_become_numbered_keys_at_every_depth(void **state)
{
        char *q = query("crm.deal.productrows.set",
                        "{\"id\": 5, \"rows\": [{\"PRODUCT_NAME\": \"Kettle\", \"PRICE\": "
                        "\"2495.00\", \"QUANTITY\": \"2\"}, {\"PRODUCT_NAME\": \"Cup\", "
                        "\"PRICE\": \"100.50\", \"QUANTITY\": \"1.5\"}]}");

        expect_query_reads_as(
            q, "crm.deal.productrows.set",
            (const char *const[]){"id", "5", "rows[0][PRODUCT_NAME]", "Kettle", "rows[0][PRICE]",
                                  "2495.00", "rows[0][QUANTITY]", "2", "rows[1][PRODUCT_NAME]",
                                  "Cup", "rows[1][PRICE]", "100.50", "rows[1][QUANTITY]", "1.5",
                                  NULL});
        q = query("crm.contact.list", "{\"filter\": {\"ID\": [3, 7]}, \"select\": [\"ID\", "
                                      "\"PHONE\", \"EMAIL\"]}");
        expect_query_reads_as(q, "crm.contact.list",
                              (const char *const[]){"filter[ID][0]", "3", "filter[ID][1]", "7",
                                                    "select[0]", "ID", "select[1]", "PHONE",
                                                    "select[2]", "EMAIL", NULL});
        q = query("crm.contact.add",
                  "{\"fields\": {\"PHONE\": [{\"VALUE\": \"+79001234567\", \"VALUE_TYPE\": "
                  "\"WORK\"}]}}");
        expect_query_reads_as(q, "crm.contact.add",
                              (const char *const[]){"fields[PHONE][0][VALUE]", "+79001234567",
                                                    "fields[PHONE][0][VALUE_TYPE]", "WORK", NULL});
}

static void spaces_ampersands_equals_plus_and_cyrillic_in_values_survive(void **state)
{
        char *q = query("crm.company.add", "{\"fields\": {\"TITLE\": \"ООО «Ромашка» & Co = 1\", "
                                           "\"COMMENTS\": \"a+b c%20d #x ?y\"}}");

        expect_query_reads_as(q, "crm.company.add",
                              (const char *const[]){"fields[TITLE]", "ООО «Ромашка» & Co = 1",
                                                    "fields[COMMENTS]", "a+b c%20d #x ?y", NULL});
        /* nothing the portal's parse_url() or parse_str() treats specially is left raw */
        assert_null(strchr(q, ' '));
        assert_null(strchr(q, '#'));
        assert_null(strchr(strchr(q, '?') + 1, '?'));
}

/* crm.*.list filters put an operator in front of the field name ("=TITLE", ">=DATE_MODIFY",
 * "!STAGE_ID"): the '=' is part of the KEY and must not end it. */
static void filter_operators_in_keys_survive(void **state)
{
        char *q = query("crm.company.list", "{\"filter\": {\"=TITLE\": \"ООО Ромашка\"}, "
                                            "\"select\": [\"ID\"]}");

        expect_query_reads_as(
            q, "crm.company.list",
            (const char *const[]){"filter[=TITLE]", "ООО Ромашка", "select[0]", "ID", NULL});
        q = query("crm.deal.list",
                  "{\"filter\": {\">=DATE_MODIFY\": \"2026-03-13T10:00:00+03:00\", "
                  "\"!STAGE_ID\": \"WON\"}}");
        expect_query_reads_as(q, "crm.deal.list",
                              (const char *const[]){"filter[>=DATE_MODIFY]",
                                                    "2026-03-13T10:00:00+03:00",
                                                    "filter[!STAGE_ID]", "WON", NULL});
}

static void reference_like_values_are_escaped_like_any_text(void **state)
{
        /* orderbridge sends no batch references: a "$result[...]" in a value is data, and
         * is percent-encoded like any other text (the sink also sends such a command
         * alone, as JSON: b24_needs_direct) */
        char *q = query("crm.deal.add", "{\"fields\": {\"CONTACT_ID\": \"$result[c1]\", "
                                        "\"COMMENTS\": \"$result[c1] & more\"}}");

        assert_null(strstr(q, "$result"));
        expect_query_reads_as(q, "crm.deal.add",
                              (const char *const[]){"fields[CONTACT_ID]", "$result[c1]",
                                                    "fields[COMMENTS]", "$result[c1] & more",
                                                    NULL});
}

/* The e-mails the emulator's port of main's check_email takes and refuses
 * (tests/emulators/test_bitrix24_emu.py), after orderbridge's own normalising. */
static void email_check_follows_the_portal(void **state)
{
        static const char *const good[] = {
                "ivan@mail.ru", "ivan.petrov@mail.ru", "a+b@sub.example.co", "o'neil@x.io",
                "иван@почта.рф", "x@y-z.museum", NULL};
        static const char *const bad[] = {
                "ivan@@mail.ru", "a@b", "ivan..petrov@mail.ru", ".ivan@mail.ru",
                "ivan.@mail.ru", "ivan@mail", "ivan@.mail.ru", "ivan@mail..ru",
                "ivan@mail.r", "ivan@mail.abcdefghijklmnopqrstu", "iv an@mail.ru",
                "ivan@ma_il.ru", "@mail.ru", "ivan[1]@mail.ru", NULL};
        char long_mail[300];

        (void)state;
        for (size_t i = 0; good[i]; i++)
                assert_true(b24_email_ok(good[i]));
        for (size_t i = 0; bad[i]; i++)
                assert_false(b24_email_ok(bad[i]));
        /* 251 characters: CheckComplexFields refuses any multi-field value over 250 */
        memset(long_mail, 'a', 242);
        strcpy(long_mail + 242, "@mail.ru");
        assert_int_equal(strlen(long_mail), 250);
        assert_true(b24_email_ok(long_mail));
        memmove(long_mail + 1, long_mail, 251);
        assert_false(b24_email_ok(long_mail));
}

static void references_in_values_send_the_command_alone(void **state)
{
        static const char *const refs[] = {"$result[c0]", "x $result[d0] y", "$RESULT[d0]",
                                           "%24result[d0]", "$result_error[c]", "$next[l]",
                                           "a$time[k]", "$Total[q]", "$error[0]", NULL};
        static const char *const plain[] = {"$50 gift card", "Result[c0]", "100%", "$", "",
                                            "%2", "price: 10$", NULL};
        json_t *p;

        (void)state;
        for (size_t i = 0; refs[i]; i++) {
                assert_true(b24_text_has_reference(refs[i]));
                p = json_pack("{s:{s:[{s:s}]}}", "fields", "rows", "PRODUCT_NAME", refs[i]);
                assert_true(b24_needs_direct(p));
                json_decref(p);
        }
        for (size_t i = 0; plain[i]; i++) {
                assert_false(b24_text_has_reference(plain[i]));
                p = json_pack("{s:{s:s}}", "fields", "NAME", plain[i]);
                assert_false(b24_needs_direct(p));
                json_decref(p);
        }
}

static void a_command_past_max_input_vars_is_sent_alone(void **state)
{
        json_t *rows = json_array(), *p;

        (void)state;
        /* productrows.set: 1 + 3 variables a row; 299 rows = 898 <= 900 < 301 rows */
        for (int i = 0; i < 299; i++)
                json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "PRODUCT_NAME", "x",
                                                      "PRICE", "1.00", "QUANTITY", "1"));
        p = json_pack("{s:s, s:O}", "id", "7", "rows", rows);
        assert_false(b24_needs_direct(p));
        json_decref(p);
        for (int i = 0; i < 2; i++)
                json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "PRODUCT_NAME", "x",
                                                      "PRICE", "1.00", "QUANTITY", "1"));
        p = json_pack("{s:s, s:O}", "id", "7", "rows", rows);
        assert_true(b24_needs_direct(p));
        json_decref(p);
        json_decref(rows);
}

static void integers_booleans_and_nulls(void **state)
{
        char *q = query("crm.deal.update", "{\"id\": 42, \"fields\": {\"CATEGORY_ID\": 0, "
                                           "\"OPENED\": true, \"CLOSED\": false, "
                                           "\"COMMENTS\": null}, \"params\": {"
                                           "\"REGISTER_SONET_EVENT\": \"N\"}}");

        expect_query_reads_as(q, "crm.deal.update",
                              (const char *const[]){"id", "42", "fields[CATEGORY_ID]", "0",
                                                    "fields[OPENED]", "Y", "fields[CLOSED]", "N",
                                                    "params[REGISTER_SONET_EVENT]", "N", NULL});
        q = query("crm.deal.get", "{\"id\": -9007199254740991}");
        expect_query_reads_as(q, "crm.deal.get",
                              (const char *const[]){"id", "-9007199254740991", NULL});
}

static void no_parameters_is_the_bare_method(void **state)
{
        char *q = query("crm.category.list", "{}");

        expect_query_reads_as(q, "crm.category.list", (const char *const[]){NULL});
}

/* --- b24_classify_error and b24_answer_parse --------------------------------------------- */

static void auth_errors_stop_the_sink(void **state)
{
        assert_int_equal(b24_classify_error("expired_token", 401), -EACCES);
        assert_int_equal(b24_classify_error("INVALID_CREDENTIALS", 401), -EACCES);
        assert_int_equal(b24_classify_error("NO_AUTH_FOUND", 401), -EACCES);
        assert_int_equal(b24_classify_error("invalid_token", 401), -EACCES);
        assert_int_equal(b24_classify_error("insufficient_scope", 403), -EACCES);
        /* the code decides even when the status is not 401 */
        assert_int_equal(b24_classify_error("expired_token", 400), -EACCES);
        /* a 401 without a code */
        assert_int_equal(b24_classify_error(NULL, 401), -EACCES);
}

static void limits_and_server_errors_mean_try_later(void **state)
{
        assert_int_equal(b24_classify_error("QUERY_LIMIT_EXCEEDED", 503), -EAGAIN);
        assert_int_equal(b24_classify_error("OPERATION_TIME_LIMIT", 429), -EAGAIN);
        assert_int_equal(b24_classify_error("INTERNAL_SERVER_ERROR", 500), -EAGAIN);
        assert_int_equal(b24_classify_error("", 500), -EAGAIN);
        assert_int_equal(b24_classify_error("HTTP_503", 503), -EAGAIN);
        assert_int_equal(b24_classify_error(NULL, 502), -EAGAIN);
        assert_int_equal(b24_classify_error(NULL, 429), -EAGAIN);
        /* inside a batch the sink classifies with 400: the code alone must decide */
        assert_int_equal(b24_classify_error("QUERY_LIMIT_EXCEEDED", 400), -EAGAIN);
        assert_int_equal(b24_classify_error("OPERATION_TIME_LIMIT", 400), -EAGAIN);
}

static void crm_refusals_are_permanent(void **state)
{
        /* CRM's own errors: HTTP 400 with an EMPTY code and the message in the description */
        assert_int_equal(b24_classify_error("", 400), -EINVAL);
        assert_int_equal(b24_classify_error(NULL, 400), -EINVAL);
        assert_int_equal(b24_classify_error("ERROR_METHOD_NOT_FOUND", 404), -EINVAL);
        assert_int_equal(b24_classify_error("ERROR_BATCH_LENGTH_EXCEEDED", 400), -EINVAL);
}

static int parse(const char *body, long status, json_t **doc, struct b24_error *err)
{
        memset(err, 0, sizeof(*err));
        return b24_answer_parse(body, strlen(body), status, doc, err);
}

static void an_answer_with_a_result_is_ok(void **state)
{
        struct b24_error err;
        json_t *doc = NULL;

        assert_int_equal(parse("{\"result\":17,\"time\":{\"operating\":0.1}}", 200, &doc, &err),
                         0);
        assert_non_null(doc);
        assert_int_equal(json_integer_value(json_object_get(doc, "result")), 17);
        json_decref(doc);
        /* result false is still a result */
        assert_int_equal(parse("{\"result\":false}", 200, &doc, &err), 0);
        json_decref(doc);
}

static void crms_empty_code_400_keeps_the_portals_message(void **state)
{
        struct b24_error err;
        json_t *doc = NULL;

        assert_int_equal(parse("{\"error\":\"\",\"error_description\":\"Invalid value for the "
                               "\\\"Stage\\\" field\"}",
                               400, &doc, &err),
                         -EINVAL);
        assert_string_equal(err.description, "Invalid value for the \"Stage\" field");
        assert_int_equal(err.http_status, 400);
        json_decref(doc);
}

static void an_envelope_error_is_classified_by_its_code(void **state)
{
        struct b24_error err;
        json_t *doc = NULL;

        assert_int_equal(parse("{\"error\":\"expired_token\",\"error_description\":\"The access "
                               "token provided has expired.\"}",
                               401, &doc, &err),
                         -EACCES);
        assert_string_equal(err.code, "expired_token");
        json_decref(doc);
        assert_int_equal(parse("{\"error\":\"QUERY_LIMIT_EXCEEDED\",\"error_description\":"
                               "\"Too many requests\"}",
                               503, &doc, &err),
                         -EAGAIN);
        assert_string_equal(err.code, "QUERY_LIMIT_EXCEEDED");
        json_decref(doc);
        assert_int_equal(parse("{\"error\":\"OPERATION_TIME_LIMIT\",\"error_description\":\"x\","
                               "\"time\":{\"operating_reset_at\":1773385800}}",
                               429, &doc, &err),
                         -EAGAIN);
        assert_non_null(doc); /* kept for its time block */
        json_decref(doc);
}

static void an_html_error_page_is_a_remote_failure_with_its_status(void **state)
{
        struct b24_error err;
        json_t *doc = NULL;

        assert_int_equal(parse("<html><center><h1>503 Service Temporarily Unavailable</h1>"
                               "</center></html>",
                               503, &doc, &err),
                         -EAGAIN);
        assert_null(doc);
        assert_string_equal(err.code, "HTTP_503");
        assert_int_equal(parse("", 502, &doc, &err), -EAGAIN);
        assert_null(doc);
        /* a 200 that is not the envelope is not a success */
        assert_int_not_equal(parse("<html>ok</html>", 200, &doc, &err), 0);
        json_decref(doc);
        assert_int_not_equal(parse("{\"foo\":1}", 200, &doc, &err), 0);
        json_decref(doc);
}

static void batch_sections_accept_the_portals_empty_array(void **state)
{
        json_t *doc =
            json_loads("{\"result\":{\"result\":{\"d0\":5},\"result_error\":[]}}", 0, NULL);
        json_t *r = NULL, *e = NULL;

        b24_batch_sections(doc, &r, &e);
        assert_non_null(r);
        assert_int_equal(json_integer_value(json_object_get(r, "d0")), 5);
        assert_null(e);
        json_decref(doc);
        doc = json_loads("{\"result\":{\"result\":[],\"result_error\":{\"d0\":{\"error\":\"\","
                         "\"error_description\":\"Not found\"}}}}",
                         0, NULL);
        b24_batch_sections(doc, &r, &e);
        assert_null(r);
        assert_non_null(json_object_get(e, "d0"));
        json_decref(doc);
}

/* --- b24_conf_stage: [bitrix24.map] and the pipeline ------------------------------------ */

static struct config *stage_config;

static int free_stage_config(void **state)
{
        stage_config = config_free(stage_config);
        unsetenv("ORDERBRIDGE_BITRIX24_WEBHOOK_URL");
        return 0;
}

/* The [bitrix24] settings of "[site] … [bitrix24]" + `more`; the sink is enabled. */
static const struct b24_conf *b24_settings(const char *more)
{
        char text[512], *errors = NULL;

        snprintf(text, sizeof(text), "[site]\nid = shop.example.ru\n[bitrix24]\n%s", more);
        setenv("ORDERBRIDGE_BITRIX24_WEBHOOK_URL", "https://portal.example.ru/rest/1/c0de/", 1);
        stage_config = config_free(stage_config);
        if (config_load_string(text, "test.conf", &stage_config, &errors) != 0)
                fail_msg("configuration refused:\n%s--- from:\n%s", errors, text);
        assert_non_null(config_section(stage_config, "bitrix24"));
        return config_section(stage_config, "bitrix24");
}

/* The portal's stages with their SORT, as crm.status.list gives them on a fresh portal
 * (and in the emulator): the default pipeline, and pipeline 1 ("C1:…"). */
static struct b24_stage general_stages[] = {
        {"NEW", 10},        {"PREPARATION", 20}, {"PREPAYMENT_INVOICE", 30}, {"EXECUTING", 40},
        {"FINAL_INVOICE", 50}, {"WON", 60},     {"LOSE", 70},               {"APOLOGY", 80},
};
static const struct b24_pipeline general = {0, general_stages, 8};
static struct b24_stage wholesale_stages[] = {
        {"C1:NEW", 10},         {"C1:PREPARATION", 20}, {"C1:EXECUTING", 30},
        {"C1:FINAL_INVOICE", 40}, {"C1:WON", 50},       {"C1:LOSE", 60},
};
static const struct b24_pipeline wholesale = {1, wholesale_stages, 6};

static void expect_stage_in(const struct b24_conf *bc, const struct b24_pipeline *p,
                            const char *status, bool canceled, bool paid, const char *want)
{
        char stage[96];

        memset(stage, 'x', sizeof(stage));
        if (b24_conf_stage(bc, p, status, canceled, paid, stage, sizeof(stage)) != 0 ||
            strcmp(stage, want) != 0)
                fail_msg("status %s canceled=%d paid=%d (pipeline %s): want stage %s, got "
                         "\"%.20s\"", status, canceled, paid, p ? "given" : "NULL", want, stage);
}

/* Without @paid the pipeline is not needed, and not given (as the sink does). */
static void expect_stage(const struct b24_conf *bc, const char *status, bool canceled, bool paid,
                         const char *want)
{
        expect_stage_in(bc, NULL, status, canceled, paid, want);
}

static void the_default_pipeline_uses_design_mds_stages(void **state)
{
        const struct b24_conf *bc = b24_settings("");

        expect_stage(bc, "N", false, false, "NEW");
        expect_stage(bc, "P", false, false, "PREPARATION");
        expect_stage(bc, "A", false, false, "EXECUTING");
        expect_stage(bc, "D", false, false, "FINAL_INVOICE");
        expect_stage(bc, "F", false, false, "WON");
        expect_stage(bc, "C", false, false, "LOSE");
}

static void the_default_map_has_no_paid_and_needs_no_pipeline(void **state)
{
        const struct b24_conf *bc = b24_settings("");

        assert_false(b24_conf_needs_pipeline(bc));
        for (size_t i = 0; i < bc->map.n; i++)
                assert_string_not_equal(bc->map.entries[i].key, "@paid");
}

/* issue #9, item 8: paid no longer overrides fulfilment */
static void with_the_default_map_a_paid_order_follows_its_status_code(void **state)
{
        const struct b24_conf *bc = b24_settings("");

        expect_stage(bc, "N", false, true, "NEW");
        expect_stage(bc, "A", false, true, "EXECUTING");
        expect_stage(bc, "D", false, true, "FINAL_INVOICE");
        expect_stage(bc, "F", false, true, "WON");
        expect_stage_in(bc, &general, "D", false, true, "FINAL_INVOICE");
}

static void canceled_wins_over_paid_and_the_status_code(void **state)
{
        const struct b24_conf *bc = b24_settings("");
        const struct b24_conf *set = NULL;

        expect_stage(bc, "F", true, true, "LOSE");
        expect_stage(bc, "N", true, false, "LOSE");
        set = b24_settings("[bitrix24.map]\n@paid = EXECUTING\n");
        expect_stage_in(set, &general, "N", true, true, "LOSE");
        expect_stage_in(set, &general, "F", true, true, "LOSE");
}

static void a_set_paid_moves_a_paid_order_whose_stage_sorts_before_it(void **state)
{
        const struct b24_conf *bc = b24_settings("[bitrix24.map]\n@paid = EXECUTING\n");

        assert_true(b24_conf_needs_pipeline(bc));
        expect_stage_in(bc, &general, "N", false, true, "EXECUTING");  /* NEW 10 < 40 */
        expect_stage_in(bc, &general, "P", false, true, "EXECUTING");  /* PREPARATION 20 */
        expect_stage_in(bc, &general, "N", false, false, "NEW");       /* not paid */
}

static void a_set_paid_leaves_a_paid_order_at_or_past_it_where_its_status_puts_it(void **state)
{
        const struct b24_conf *bc = b24_settings("[bitrix24.map]\n@paid = EXECUTING\n");

        expect_stage_in(bc, &general, "A", false, true, "EXECUTING");     /* the same stage */
        expect_stage_in(bc, &general, "D", false, true, "FINAL_INVOICE"); /* 50 > 40 */
        expect_stage_in(bc, &general, "F", false, true, "WON");
}

static void a_set_paid_applies_to_a_status_code_without_an_entry(void **state)
{
        const struct b24_conf *bc = b24_settings("[bitrix24.map]\n@paid = EXECUTING\n");
        char stage[16] = "untouched";

        expect_stage_in(bc, &general, "ZZ", false, true, "EXECUTING");
        expect_stage_in(bc, NULL, "ZZ", false, true, "EXECUTING");
        assert_int_equal(b24_conf_stage(bc, &general, "ZZ", false, false, stage, sizeof(stage)),
                         -ENOENT);
        assert_string_equal(stage, "untouched");
}

static void without_the_pipeline_or_a_known_sort_the_status_stage_stands(void **state)
{
        const struct b24_conf *bc =
                b24_settings("[bitrix24.map]\n@paid = EXECUTING\nP = PACKING\n");
        struct b24_stage no_sort_stages[] = {{"NEW", -1}, {"EXECUTING", 40}};
        const struct b24_pipeline no_sort = {0, no_sort_stages, 2};

        expect_stage_in(bc, NULL, "N", false, true, "NEW");
        expect_stage_in(bc, &general, "P", false, true, "PACKING"); /* no such stage */
        expect_stage_in(bc, &no_sort, "N", false, true, "NEW");
        expect_stage_in(bc, &wholesale, "N", false, true, "NEW"); /* another pipeline's */
}

static void a_pipeline_reports_a_stages_sort_or_minus_one(void **state)
{
        assert_int_equal(b24_pipeline_sort(&general, "FINAL_INVOICE"), 50);
        assert_int_equal(b24_pipeline_sort(&wholesale, "C1:NEW"), 10);
        assert_int_equal(b24_pipeline_sort(&wholesale, "NEW"), -1);
        assert_int_equal(b24_pipeline_sort(&general, "executing"), -1); /* case matters */
        assert_int_equal(b24_pipeline_sort(NULL, "NEW"), -1);
}

static void another_pipeline_prefixes_a_stage_that_has_no_prefix(void **state)
{
        const struct b24_conf *bc =
                b24_settings("category_id = 7\n[bitrix24.map]\nD = C7:SHIPPED\n");

        expect_stage(bc, "N", false, false, "C7:NEW");
        expect_stage(bc, "D", false, false, "C7:SHIPPED"); /* not C7:C7:SHIPPED */
        expect_stage(bc, "N", true, false, "C7:LOSE");
}

static void another_pipelines_sorts_are_read_under_its_prefix(void **state)
{
        const struct b24_conf *bc =
                b24_settings("category_id = 1\n[bitrix24.map]\n@paid = EXECUTING\n");

        expect_stage_in(bc, &wholesale, "N", false, true, "C1:EXECUTING");
        expect_stage_in(bc, &wholesale, "D", false, true, "C1:FINAL_INVOICE");
        expect_stage_in(bc, &wholesale, "F", false, true, "C1:WON");
        expect_stage_in(bc, &wholesale, "C", false, true, "C1:LOSE");
        expect_stage_in(bc, &general, "N", false, true, "C1:NEW"); /* the default's: unknown */
}

static void an_unmapped_status_has_no_stage(void **state)
{
        const struct b24_conf *bc = b24_settings("[bitrix24.map]\nZX = WON\n");
        char stage[16] = "untouched";

        expect_stage(bc, "ZX", false, false, "WON");
        assert_int_equal(b24_conf_stage(bc, NULL, "ZZ", false, false, stage, sizeof(stage)),
                         -ENOENT);
        assert_int_equal(b24_conf_stage(bc, NULL, "ZZ", false, true, stage, sizeof(stage)),
                         -ENOENT);
        assert_string_equal(stage, "untouched");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(nested_fields_become_bracketed_keys),
            cmocka_unit_test(a_query_past_its_cap_is_refused_whole_not_cut),
            cmocka_unit_test(arrays_become_numbered_keys_at_every_depth),
            cmocka_unit_test(spaces_ampersands_equals_plus_and_cyrillic_in_values_survive),
            cmocka_unit_test(filter_operators_in_keys_survive),
            cmocka_unit_test(reference_like_values_are_escaped_like_any_text),
                cmocka_unit_test(email_check_follows_the_portal),
                cmocka_unit_test(references_in_values_send_the_command_alone),
                cmocka_unit_test(a_command_past_max_input_vars_is_sent_alone),
            cmocka_unit_test(integers_booleans_and_nulls),
            cmocka_unit_test(no_parameters_is_the_bare_method),
            cmocka_unit_test(auth_errors_stop_the_sink),
            cmocka_unit_test(limits_and_server_errors_mean_try_later),
            cmocka_unit_test(crm_refusals_are_permanent),
            cmocka_unit_test(an_answer_with_a_result_is_ok),
            cmocka_unit_test(crms_empty_code_400_keeps_the_portals_message),
            cmocka_unit_test(an_envelope_error_is_classified_by_its_code),
            cmocka_unit_test(an_html_error_page_is_a_remote_failure_with_its_status),
            cmocka_unit_test(batch_sections_accept_the_portals_empty_array),
            cmocka_unit_test_teardown(the_default_pipeline_uses_design_mds_stages,
                                      free_stage_config),
            cmocka_unit_test_teardown(the_default_map_has_no_paid_and_needs_no_pipeline,
                                      free_stage_config),
            cmocka_unit_test_teardown(with_the_default_map_a_paid_order_follows_its_status_code,
                                      free_stage_config),
            cmocka_unit_test_teardown(canceled_wins_over_paid_and_the_status_code,
                                      free_stage_config),
            cmocka_unit_test_teardown(a_set_paid_moves_a_paid_order_whose_stage_sorts_before_it,
                                      free_stage_config),
            cmocka_unit_test_teardown(
                    a_set_paid_leaves_a_paid_order_at_or_past_it_where_its_status_puts_it,
                    free_stage_config),
            cmocka_unit_test_teardown(a_set_paid_applies_to_a_status_code_without_an_entry,
                                      free_stage_config),
            cmocka_unit_test_teardown(without_the_pipeline_or_a_known_sort_the_status_stage_stands,
                                      free_stage_config),
            cmocka_unit_test(a_pipeline_reports_a_stages_sort_or_minus_one),
            cmocka_unit_test_teardown(another_pipeline_prefixes_a_stage_that_has_no_prefix,
                                      free_stage_config),
            cmocka_unit_test_teardown(another_pipelines_sorts_are_read_under_its_prefix,
                                      free_stage_config),
            cmocka_unit_test_teardown(an_unmapped_status_has_no_stage, free_stage_config),
        };

        return cmocka_run_group_tests(tests, NULL, free_last_query);
}
