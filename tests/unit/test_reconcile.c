/*
 * Reconcile's comparison, on its own: what an order must look like in Roistat and in
 * Bitrix24 is built by the sinks' own builders from a real snapshot under a configuration
 * loaded from text, and compared with remote answers in the shapes the remotes give them
 * (Roistat's revenue a JSON number, the portal's OPPORTUNITY a text, a row's PRICE and
 * QUANTITY numbers). Each test states the drift lines it expects, and that nothing else
 * is reported.
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
#include "model/snapshot.h"
#include "queue/reconcile_compare.h"
#include "sinks/bitrix24_conf.h"
#include "sinks/roistat_orders.h"
#include "sinks/sink_bitrix24.h"

#define SNAPSHOT_FMT                                                                               \
        "{\"site\":\"shop.example.ru\",\"order\":{\"id\":\"123\",\"version\":4,"                   \
        "\"status\":\"N\",\"canceled\":%s,\"paid\":false,"                                         \
        "\"created_at\":\"2026-03-13T10:00:00+03:00\",\"price\":\"4990.00\",\"currency\":\"RUB\""  \
        "%s,\"buyer\":{\"type\":\"individual\",\"name\":\"Ivan\",\"phone\":\"+7 900 123-45-67\","  \
        "\"email\":null,\"company\":null,\"inn\":null},"                                           \
        "\"items\":[{\"product_id\":\"55\",\"name\":\"Kettle\",\"price\":\"2495.00\","             \
        "\"quantity\":\"2\"}]}}"
#define VISIT ",\"roistat_visit\":\"4521890\""

/* Everything a test builds is released in teardown, so that a failed assertion does not
 * show up as a leak too. */
static struct config *cfg;
static struct snapshot *snap;
static struct reconcile_report rep;
static struct reconcile_roistat_want rs_want;
static struct reconcile_deal_want deal_want;
static json_t *held[16];
static size_t n_held;

static json_t *keep(json_t *j)
{
        assert_non_null(j);
        assert_true(n_held < 16);
        return held[n_held++] = j;
}

static json_t *parse(const char *text)
{
        json_error_t e;
        json_t *j = json_loads(text, JSON_DECODE_ANY, &e);

        if (!j)
                fail_msg("test JSON refused: %s: %s", e.text, text);
        return keep(j);
}

static int setup(void **state)
{
        char *errors = NULL;

        setenv("ORDERBRIDGE_ROISTAT_API_KEY", "test-api-key", 1);
        setenv("ORDERBRIDGE_BITRIX24_WEBHOOK_URL", "https://portal.example.ru/rest/1/code/", 1);
        if (config_load_string("[site]\nid = shop.example.ru\n[roistat]\nproject = 12345\n"
                               "[bitrix24]\n",
                               "test.conf", &cfg, &errors) != 0)
                fail_msg("configuration refused: %s", errors);
        unsetenv("ORDERBRIDGE_ROISTAT_API_KEY");
        unsetenv("ORDERBRIDGE_BITRIX24_WEBHOOK_URL");
        memset(&rep, 0, sizeof(rep));
        return 0;
}

static int teardown(void **state)
{
        reconcile_report_clear(&rep);
        reconcile_roistat_want_clear(&rs_want);
        json_decref(deal_want.fields);
        json_decref(deal_want.rows);
        memset(&deal_want, 0, sizeof(deal_want));
        while (n_held > 0)
                json_decref(held[--n_held]);
        snap = snapshot_free(snap);
        cfg = config_free(cfg);
        return 0;
}

static void load(bool canceled, const char *visit)
{
        char text[2048];
        struct snapshot_error err;

        snprintf(text, sizeof(text), SNAPSHOT_FMT, canceled ? "true" : "false", visit);
        snap = snapshot_free(snap);
        if (snapshot_parse(text, strlen(text), &snap, &err) != 0)
                fail_msg("snapshot refused: %s %s", err.field, err.message);
}

/* What Roistat must hold for the snapshot, as roistat_order_json sends it. */
static void want_roistat(bool canceled, const char *visit)
{
        char why[256];

        load(canceled, visit);
        reconcile_roistat_want_clear(&rs_want);
        assert_int_equal(reconcile_roistat_want(config_section(cfg, "roistat"), snap, &rs_want, why,
                                                sizeof(why)),
                         0);
}

/* What the deal must hold: the Bitrix24 sink's builders at stage NEW, deal 7, contact 3. */
static void want_deal(const char *visit, bool light)
{
        const struct b24_conf *bc = config_section(cfg, "bitrix24");

        load(false, visit);
        deal_want = (struct reconcile_deal_want){
            .fields = b24_deal_owned_fields(bc, snap, "NEW"),
            .rows = light ? NULL : b24_deal_rows(bc, snap),
            .roistat_field = bc->roistat_field,
            .deal = "7",
            .contact = "3",
        };
        assert_non_null(deal_want.fields);
}

/* The report's drifts, "order sink field store remote" each, ";"-separated. */
static const char *drifts(void)
{
        static char buf[4096];
        size_t len = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < rep.n_drifts; i++) {
                const struct reconcile_drift *d = &rep.drifts[i];
                len +=
                    (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s %s %s %s %s", i ? ";" : "",
                                     d->order_id, d->sink, d->field, d->store, d->remote);
                assert_true(len < sizeof(buf));
        }
        return buf;
}

#define ROISTAT_ROW(revenue, status, visit)                                                        \
        "{\"id\":\"123\",\"revenue\":" revenue ",\"status\":{\"id\":\"" status                     \
        "\",\"type\":\"progress\"},\"visit_id\":" visit "}"

/* ---- Roistat ---- */

static void roistat_an_order_as_sent_has_no_drift(void **state)
{
        want_roistat(false, VISIT);
        reconcile_compare_roistat(&rep, "123", &rs_want,
                                  parse(ROISTAT_ROW("4990", "new", "\"4521890\"")), false);
        reconcile_compare_roistat(&rep, "123", &rs_want,
                                  parse(ROISTAT_ROW("\"4990.00\"", "new", "4521890")), false);
        assert_string_equal(drifts(), "");
}

static void roistat_revenue_is_compared_to_the_kopeck_both_ways(void **state)
{
        want_roistat(false, VISIT);
        reconcile_compare_roistat(&rep, "123", &rs_want,
                                  parse(ROISTAT_ROW("4989.99", "new", "\"4521890\"")), false);
        reconcile_compare_roistat(&rep, "124", &rs_want,
                                  parse(ROISTAT_ROW("4990.01", "new", "\"4521890\"")), false);
        reconcile_compare_roistat(&rep, "125", &rs_want,
                                  parse(ROISTAT_ROW("\"many\"", "new", "\"4521890\"")), false);
        assert_string_equal(drifts(), "123 roistat revenue 4990.00 4989.99;"
                                      "124 roistat revenue 4990.00 4990.01;"
                                      "125 roistat revenue 4990.00 many");
        assert_int_equal(rep.drifts[0].repair, 1);
        assert_false(rep.drifts[0].by_hand);
}

static void roistat_a_cancelled_order_must_have_no_revenue(void **state)
{
        want_roistat(true, VISIT); /* canceled_price_zero is on by default */
        assert_int_equal(rs_want.revenue_minor, 0);
        reconcile_compare_roistat(&rep, "123", &rs_want,
                                  parse(ROISTAT_ROW("0", "canceled", "\"4521890\"")), false);
        assert_string_equal(drifts(), "");
        reconcile_compare_roistat(&rep, "123", &rs_want,
                                  parse(ROISTAT_ROW("4990", "canceled", "\"4521890\"")), false);
        assert_string_equal(drifts(), "123 roistat revenue 0.00 4990.00");
}

static void roistat_status_and_visit_and_a_light_run_skips_the_visit(void **state)
{
        json_t *row = parse(ROISTAT_ROW("4990", "confirmed", "null"));

        want_roistat(false, VISIT);
        reconcile_compare_roistat(&rep, "123", &rs_want, row, false);
        assert_string_equal(drifts(), "123 roistat status new confirmed;"
                                      "123 roistat visit 4521890 -");
        reconcile_report_clear(&rep);
        reconcile_compare_roistat(&rep, "123", &rs_want, row, true);
        assert_string_equal(drifts(), "123 roistat status new confirmed");
        reconcile_report_clear(&rep);
        want_roistat(false, "");
        reconcile_compare_roistat(&rep, "123", &rs_want,
                                  parse(ROISTAT_ROW("4990", "new", "\"777\"")), false);
        assert_string_equal(drifts(), "123 roistat visit - 777");
}

static void roistat_an_order_it_lacks_is_missing(void **state)
{
        want_roistat(false, VISIT);
        reconcile_compare_roistat(&rep, "123", &rs_want, NULL, true);
        assert_string_equal(drifts(), "123 roistat order delivered missing");
        assert_int_equal(rep.drifts[0].repair, 1);
}

/* ---- Bitrix24 ---- */

#define DEAL(id, stage, amount, currency, contact)                                                 \
        "{\"ID\":\"" id "\",\"ORIGIN_ID\":\"123\",\"STAGE_ID\":\"" stage                           \
        "\",\"OPPORTUNITY\":" amount ",\"CURRENCY_ID\":\"" currency "\",\"CONTACT_ID\":" contact   \
        ",\"UF_CRM_ROISTAT\":\"4521890\"}"
#define AS_SENT DEAL("7", "NEW", "\"4990.00\"", "RUB", "\"3\"")
#define ROWS_AS_SENT "[{\"PRODUCT_NAME\":\"Kettle\",\"PRICE\":2495,\"QUANTITY\":2}]"

static void deal_as_sent_has_no_drift(void **state)
{
        want_deal(VISIT, false);
        reconcile_compare_deal(&rep, "123", &deal_want, parse("[" AS_SENT "]"), parse(ROWS_AS_SENT),
                               false);
        reconcile_compare_deal(&rep, "123", &deal_want,
                               parse("[" DEAL("7", "NEW", "\"4990.0000\"", "RUB", "3") "]"),
                               parse("[{\"PRODUCT_NAME\":\"Kettle\",\"PRICE\":\"2495.00\","
                                     "\"QUANTITY\":2.0}]"),
                               false);
        assert_string_equal(drifts(), "");
}

static void deal_none_is_missing_and_repaired_by_a_new_look_up(void **state)
{
        want_deal(VISIT, true);
        reconcile_compare_deal(&rep, "123", &deal_want, parse("[]"), NULL, true);
        reconcile_compare_deal(&rep, "124", &deal_want, NULL, NULL, true);
        assert_string_equal(drifts(), "123 bitrix24 deal 7 missing;124 bitrix24 deal 7 missing");
        assert_int_equal(rep.drifts[0].repair, B24_REPAIR_DEAL);
}

static void deal_a_second_one_is_a_duplicate_for_a_person_the_linked_one_is_compared(void **state)
{
        json_t *deals = parse("[" DEAL("5", "LOSE", "\"1.00\"", "USD", "\"9\"") "," AS_SENT "]");

        want_deal(VISIT, false);
        assert_string_equal(
            json_string_value(json_object_get(reconcile_deal_chosen(deals, "7"), "ID")), "7");
        reconcile_compare_deal(&rep, "123", &deal_want, deals, parse(ROWS_AS_SENT), false);
        assert_string_equal(drifts(), "123 bitrix24 duplicate 7 5,7");
        assert_true(rep.drifts[0].by_hand);
        assert_int_equal(rep.drifts[0].repair, 0);
}

static void deal_the_only_one_not_the_linked_one(void **state)
{
        want_deal(VISIT, true);
        reconcile_compare_deal(&rep, "123", &deal_want,
                               parse("[" DEAL("9", "WON", "\"1.00\"", "RUB", "null") "]"), NULL,
                               true);
        assert_string_equal(drifts(), "123 bitrix24 deal 7 9");
        assert_int_equal(rep.drifts[0].repair, B24_REPAIR_DEAL);
}

static void deal_stage_amount_and_currency(void **state)
{
        want_deal(VISIT, true);
        reconcile_compare_deal(&rep, "123", &deal_want,
                               parse("[" DEAL("7", "PREPARATION", "4990", "RUB", "\"3\"") "]"),
                               NULL, true);
        reconcile_compare_deal(&rep, "124", &deal_want,
                               parse("[" DEAL("7", "NEW", "\"4989.99\"", "USD", "\"3\"") "]"), NULL,
                               true);
        reconcile_compare_deal(&rep, "125", &deal_want,
                               parse("[" DEAL("7", "NEW", "\"4990.01\"", "RUB", "\"3\"") "]"), NULL,
                               true);
        assert_string_equal(drifts(), "123 bitrix24 stage NEW PREPARATION;"
                                      "124 bitrix24 amount 4990.00 4989.99;"
                                      "124 bitrix24 currency RUB USD;"
                                      "125 bitrix24 amount 4990.00 4990.01");
        for (size_t i = 0; i < rep.n_drifts; i++)
                assert_int_equal(rep.drifts[i].repair, B24_REPAIR_FIELDS);
}

static void deal_rows_by_count_then_row_by_row(void **state)
{
        want_deal(VISIT, false);
        reconcile_compare_deal(&rep, "123", &deal_want, parse("[" AS_SENT "]"), parse("[]"), false);
        reconcile_compare_deal(
            &rep, "124", &deal_want, parse("[" AS_SENT "]"),
            parse("[{\"PRODUCT_NAME\":\"Kettle\",\"PRICE\":2495.5,\"QUANTITY\":2}]"), false);
        reconcile_compare_deal(
            &rep, "125", &deal_want, parse("[" AS_SENT "]"),
            parse("[{\"PRODUCT_NAME\":\"Kettle\",\"PRICE\":2495,\"QUANTITY\":2.5}]"), false);
        reconcile_compare_deal(
            &rep, "126", &deal_want, parse("[" AS_SENT "]"),
            parse("[{\"PRODUCT_NAME\":\"Teapot\",\"PRICE\":2495,\"QUANTITY\":2}]"), false);
        assert_string_equal(drifts(),
                            "123 bitrix24 rows 1 row 0 rows;"
                            "124 bitrix24 rows #1 Kettle 2495.00 x 2 #1 Kettle 2495.50 x 2;"
                            "125 bitrix24 rows #1 Kettle 2495.00 x 2 #1 Kettle 2495.00 x 2.5;"
                            "126 bitrix24 rows #1 Kettle 2495.00 x 2 #1 Teapot 2495.00 x 2");
        for (size_t i = 0; i < rep.n_drifts; i++)
                assert_int_equal(rep.drifts[i].repair, B24_REPAIR_ROWS);
}

static void deal_contact_is_a_persons_and_a_light_run_skips_rows_contact_and_visit(void **state)
{
        json_t *deal = parse("[{\"ID\":\"7\",\"STAGE_ID\":\"NEW\",\"OPPORTUNITY\":\"4990.00\","
                             "\"CURRENCY_ID\":\"RUB\",\"CONTACT_ID\":\"4\","
                             "\"UF_CRM_ROISTAT\":\"1\"}]");

        want_deal(VISIT, false);
        reconcile_compare_deal(&rep, "123", &deal_want, deal, parse("[]"), false);
        assert_string_equal(drifts(), "123 bitrix24 visit 4521890 1;"
                                      "123 bitrix24 rows 1 row 0 rows;"
                                      "123 bitrix24 contact 3 4");
        assert_true(rep.drifts[2].by_hand);
        assert_int_equal(rep.drifts[2].repair, 0);
        reconcile_report_clear(&rep);
        reconcile_compare_deal(&rep, "123", &deal_want, deal, NULL, true);
        assert_string_equal(drifts(), "");
}

static void deal_the_roistat_field_is_owned_only_with_a_visit(void **state)
{
        want_deal("", false);
        reconcile_compare_deal(&rep, "123", &deal_want, parse("[" AS_SENT "]"), parse(ROWS_AS_SENT),
                               false);
        assert_string_equal(drifts(), "");
}

static void deal_a_long_remote_text_is_cut_between_characters(void **state)
{
        char stage[1200] = "", deal[1400];
        json_t *text;

        for (int i = 0; i < 250; i++)
                strcat(stage, "\xd0\xaf"); /* "Я": two bytes each, 500 in all */
        snprintf(deal, sizeof(deal), "[" DEAL("7", "%s", "\"4990.00\"", "RUB", "\"3\"") "]", stage);
        want_deal(VISIT, true);
        reconcile_compare_deal(&rep, "123", &deal_want, parse(deal), NULL, true);
        assert_int_equal(rep.n_drifts, 1);
        assert_string_equal(rep.drifts[0].field, "stage");
        /* cut, and still text: JSON (the --json output) takes it */
        assert_true(strlen(rep.drifts[0].remote) < strlen(stage));
        assert_int_equal(strlen(rep.drifts[0].remote) % 2, 0);
        text = keep(json_string(rep.drifts[0].remote));
        assert_string_equal(json_string_value(text), rep.drifts[0].remote);
}

/* ---- values, filters, repairs ---- */

static void remote_decimals_in_every_form(void **state)
{
        int64_t v = -1;

        assert_int_equal(reconcile_decimal(parse("4990"), 2, 1000000000, &v), 0);
        assert_int_equal(v, 499000);
        assert_int_equal(reconcile_decimal(parse("4990.1"), 2, 1000000000, &v), 0);
        assert_int_equal(v, 499010);
        assert_int_equal(reconcile_decimal(parse("\"4990.1000\""), 2, 1000000000, &v), 0);
        assert_int_equal(v, 499010);
        assert_int_equal(reconcile_decimal(parse("0.25"), 3, 1000000000, &v), 0);
        assert_int_equal(v, 250);
        assert_int_equal(reconcile_decimal(parse("\"4990.001\""), 2, 1000000000, &v), -EINVAL);
        assert_int_equal(reconcile_decimal(parse("-1"), 2, 1000000000, &v), -EINVAL);
        assert_int_equal(reconcile_decimal(parse("\"-1\""), 2, 1000000000, &v), -EINVAL);
        assert_int_equal(reconcile_decimal(parse("\"1e3\""), 2, 1000000000, &v), -EINVAL);
        assert_int_equal(reconcile_decimal(parse("true"), 2, 1000000000, &v), -EINVAL);
        assert_int_equal(reconcile_decimal(parse("null"), 2, 1000000000, &v), -EINVAL);
        assert_int_equal(reconcile_decimal(parse("10000001"), 2, 1000000000, &v), -ERANGE);
        assert_int_equal(reconcile_decimal(parse("1e300"), 2, 1000000000, &v), -ERANGE);
        assert_int_equal(v, 250);
}

static void one_roistat_condition_goes_as_the_flat_list(void **state)
{
        json_t *one = keep(roistat_orders_all_of(json_pack("[[s, s, s]]", "id", "=", "1")));
        json_t *two = keep(roistat_orders_all_of(
            json_pack("[[s, s, s], [s, s, s]]", "id", "=", "1", "id", "=", "2")));
        json_t *any = keep(roistat_orders_any_of(
            json_pack("[[s, s, s], [s, s, s]]", "id", "=", "1", "id", "=", "2")));
        json_t *any_one = keep(roistat_orders_any_of(json_pack("[[s, s, s]]", "id", "=", "1")));

        assert_true(json_equal(one, parse("[[\"id\", \"=\", \"1\"]]")));
        assert_true(json_equal(any_one, one));
        assert_true(json_equal(two, parse("{\"and\": [[\"id\", \"=\", \"1\"], "
                                          "[\"id\", \"=\", \"2\"]]}")));
        assert_true(json_equal(any, parse("{\"or\": [[\"id\", \"=\", \"1\"], "
                                          "[\"id\", \"=\", \"2\"]]}")));
        assert_null(roistat_orders_all_of(json_array()));
}

static void a_deal_repair_makes_the_sink_look_up_and_send_everything(void **state)
{
        struct store_writes w = {0};

        b24_repair_writes(&w, "123", B24_REPAIR_DEAL);
        assert_string_equal(store_writes_find_link(&w, "123", "b24.deal"), "pending");
        assert_string_equal(store_writes_find_link(&w, "123", "b24.sent"), "{}");
        assert_non_null(store_writes_find_link(&w, "123", "b24.rows"));
        store_writes_clear(&w);
        b24_repair_writes(&w, "123", B24_REPAIR_FIELDS);
        assert_null(store_writes_find_link(&w, "123", "b24.deal"));
        assert_string_equal(store_writes_find_link(&w, "123", "b24.sent"), "{}");
        assert_null(store_writes_find_link(&w, "123", "b24.rows"));
        store_writes_clear(&w);
        b24_repair_writes(&w, "123", B24_REPAIR_ROWS);
        assert_int_equal(w.n, 1);
        assert_null(store_writes_find_link(&w, "123", "b24.sent"));
        store_writes_clear(&w);
}

static void the_report_is_sorted_by_order_then_sink_then_as_found(void **state)
{
        reconcile_report_drift(&rep, "b", "roistat", "status", "x", "y", false, 1);
        reconcile_report_drift(&rep, "a", "roistat", "revenue", "1", "2", false, 1);
        reconcile_report_drift(&rep, "b", "bitrix24", "stage", "x", "y", false, 2);
        reconcile_report_drift(&rep, "a", "roistat", "order", NULL, NULL, false, 1);
        reconcile_report_sort(&rep);
        assert_string_equal(drifts(), "a roistat revenue 1 2;a roistat order - -;"
                                      "b bitrix24 stage x y;b roistat status x y");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
            T(roistat_an_order_as_sent_has_no_drift),
            T(roistat_revenue_is_compared_to_the_kopeck_both_ways),
            T(roistat_a_cancelled_order_must_have_no_revenue),
            T(roistat_status_and_visit_and_a_light_run_skips_the_visit),
            T(roistat_an_order_it_lacks_is_missing),
            T(deal_as_sent_has_no_drift),
            T(deal_none_is_missing_and_repaired_by_a_new_look_up),
            T(deal_a_second_one_is_a_duplicate_for_a_person_the_linked_one_is_compared),
            T(deal_the_only_one_not_the_linked_one),
            T(deal_stage_amount_and_currency),
            T(deal_rows_by_count_then_row_by_row),
            T(deal_contact_is_a_persons_and_a_light_run_skips_rows_contact_and_visit),
            T(deal_the_roistat_field_is_owned_only_with_a_visit),
            T(deal_a_long_remote_text_is_cut_between_characters),
            T(remote_decimals_in_every_form),
            T(one_roistat_condition_goes_as_the_flat_list),
            T(a_deal_repair_makes_the_sink_look_up_and_send_everything),
            T(the_report_is_sorted_by_order_then_sink_then_as_found),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
