/*
 * Issue #13's mapping rules, as an operator writes them and as the remotes get them:
 * templates ({placeholder}, checked when the file is loaded), the deal rules of
 * [bitrix24] / [bitrix24.fields] / [bitrix24.site LID] / [bitrix24.person_type ID], the
 * product rows with discounts and the delivery, and Roistat's name template and fields.
 * Inputs are real configurations (config_load_string) and real snapshots (snapshot_parse).
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
#include "model/money.h"
#include "model/order_template.h"
#include "model/snapshot.h"
#include "sinks/b24_rules.h"
#include "sinks/bitrix24_conf.h"
#include "sinks/roistat_conf.h"
#include "sinks/sink_bitrix24.h"
#include "sinks/sink_roistat.h"

#define NAME "test.conf"

/* An order of storefront s2, person type 2, with every field of issue #13: two kettles at
 * 2495.00 after a discount from 2745.00, a cup without one, delivery 300.00 (350.00 before
 * its discount): 2*2495 + 1*10.50 + 300 = 5300.50. */
static const char full_order[] =
    "{\"site\":\"shop.example.ru\",\"order\":{\"id\":\"123\",\"account_number\":\"A-123\","
    "\"version\":1,\"status\":\"N\",\"created_at\":\"2026-03-13T10:00:00+03:00\","
    "\"price\":\"5300.50\",\"currency\":\"RUB\",\"lid\":\"s2\",\"person_type\":\"2\","
    "\"comment\":\"Call first\",\"buyer\":{\"type\":\"individual\",\"name\":\"Ivan\"},"
    "\"items\":[{\"name\":\"Kettle\",\"price\":\"2495.00\",\"base_price\":\"2745.00\","
    "\"quantity\":\"2\"},{\"name\":\"Cup\",\"price\":\"10.50\",\"quantity\":\"1\"}],"
    "\"delivery\":{\"name\":\"Courier\",\"price\":\"300.00\",\"base_price\":\"350.00\"},"
    "\"discount\":\"550.00\",\"coupons\":[\"SALE10\",\"VIP\"],"
    "\"payments\":[{\"name\":\"Card\",\"sum\":\"5000.00\",\"paid\":true},"
    "{\"name\":\"Cash\",\"sum\":\"300.50\",\"paid\":false}],\"sum_paid\":\"5000.00\","
    "\"utm\":{\"source\":\"google\",\"campaign\":\"spring\"},"
    "\"properties\":{\"ADDRESS\":\"Moscow, Lenina 1\",\"MANAGER\":\"Olga\"}}}";

static struct config *configs[8];
static struct snapshot *snaps[8];
static json_t *jsons[8];
static char *texts[8];
static size_t n_configs, n_snaps, n_jsons, n_texts;

static int teardown(void **state)
{
        while (n_configs)
                config_free(configs[--n_configs]);
        while (n_snaps)
                snapshot_free(snaps[--n_snaps]);
        while (n_jsons)
                json_decref(jsons[--n_jsons]);
        while (n_texts)
                free(texts[--n_texts]);
        return 0;
}

static int group_teardown(void **state)
{
        unsetenv("ORDERBRIDGE_BITRIX24_WEBHOOK_URL");
        unsetenv("ORDERBRIDGE_ROISTAT_API_KEY");
        return 0;
}

static int setup(void **state)
{
        setenv("ORDERBRIDGE_BITRIX24_WEBHOOK_URL", "https://portal.example.ru/rest/1/c0de/", 1);
        setenv("ORDERBRIDGE_ROISTAT_API_KEY", "k3y", 1);
        return 0;
}

static json_t *keep_json(json_t *j)
{
        assert_non_null(j);
        assert_true(n_jsons < 8);
        return jsons[n_jsons++] = j;
}

static char *keep_text(char *t)
{
        assert_true(n_texts < 8);
        return texts[n_texts++] = t;
}

/* "[site] id … [bitrix24] [roistat]" + `more` loads. */
static struct config *config_with(const char *more)
{
        char text[4096], *errors = NULL;
        struct config *c = NULL;

        snprintf(text, sizeof(text),
                 "[site]\nid = shop.example.ru\n[roistat]\nproject = 1\n"
                 "[bitrix24]\n%s",
                 more);
        if (config_load_string(text, NAME, &c, &errors) != 0)
                fail_msg("configuration refused:\n%s--- from:\n%s", errors, text);
        assert_true(n_configs < 8);
        return configs[n_configs++] = c;
}

/* "[site] … [bitrix24]" + `more` is refused with every needle in its errors. */
static void expect_refused(const char *more, ...)
{
        char text[4096], *errors = NULL;
        struct config *c = NULL;
        const char *needle;
        va_list ap;

        snprintf(text, sizeof(text),
                 "[site]\nid = shop.example.ru\n[roistat]\nproject = 1\n"
                 "[bitrix24]\n%s",
                 more);
        if (config_load_string(text, NAME, &c, &errors) != -EINVAL) {
                config_free(c);
                fail_msg("want the configuration refused:\n%s", text);
        }
        keep_text(errors);
        va_start(ap, more);
        while ((needle = va_arg(ap, const char *)) != NULL)
                if (!strstr(errors, needle))
                        fail_msg("the errors do not say \"%s\":\n%s", needle, errors);
        va_end(ap);
}

static struct snapshot *order_of(const char *text)
{
        struct snapshot_error err;
        struct snapshot *s = NULL;

        if (snapshot_parse(text, strlen(text), &s, &err) != 0)
                fail_msg("snapshot refused: %s %s", err.field, err.message);
        assert_true(n_snaps < 8);
        return snaps[n_snaps++] = s;
}

/* full_order with `from` replaced by `to` (once). */
static struct snapshot *order_changed(const char *from, const char *to)
{
        char text[sizeof(full_order) + 256];
        const char *at = strstr(full_order, from);

        assert_non_null(at);
        snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - full_order), full_order, to,
                 at + strlen(from));
        return order_of(text);
}

static const char *str(json_t *obj, const char *key)
{
        json_t *v = json_object_get(obj, key);

        if (!json_is_string(v))
                fail_msg("%s is not a string", key);
        return json_string_value(v);
}

/* ---- templates ---- */

static void a_template_fills_each_placeholder_from_the_order(void **state)
{
        struct snapshot *s = order_of(full_order);

        assert_string_equal(keep_text(order_template_expand(
                                "Заказ №{account_number} ({lid}) {{x}} {property:ADDRESS}", s)),
                            "Заказ №A-123 (s2) {x} Moscow, Lenina 1");
        assert_string_equal(keep_text(order_template_expand("{coupons}|{payments}|{sum_paid}|"
                                                            "{delivery}|{delivery_price}|"
                                                            "{utm_source}|{utm_medium}|"
                                                            "{property:NONE}|{person_type}",
                                                            s)),
                            "SALE10, VIP|Card, Cash|5000.00|Courier|300.00|google|||2");
}

static void a_template_with_an_unknown_placeholder_or_a_lone_brace_is_refused(void **state)
{
        char why[600];

        assert_int_equal(order_template_check("Order {acount_number}", why, sizeof(why)), -EINVAL);
        assert_non_null(strstr(why, "unknown placeholder {acount_number}"));
        assert_int_equal(order_template_check("Order {id", why, sizeof(why)), -EINVAL);
        assert_int_equal(order_template_check("Order id}", why, sizeof(why)), -EINVAL);
        assert_int_equal(order_template_check("{property:BAD CODE}", why, sizeof(why)), -EINVAL);
        assert_int_equal(order_template_check("{property:}", why, sizeof(why)), -EINVAL);
        assert_int_equal(
            order_template_check("{{literal}} {property:A_B-1} {inn}", why, sizeof(why)), 0);
}

/* ---- configuration ---- */

static void the_roistat_name_template_with_an_unknown_placeholder_is_refused_naming_it(void **state)
{
        char text[512], *errors = NULL;
        struct config *c = NULL;

        snprintf(text, sizeof(text), "[roistat]\nproject = 1\nname_template = Заказ {nmae}\n");
        assert_int_equal(config_load_string(text, NAME, &c, &errors), -EINVAL);
        keep_text(errors);
        assert_non_null(strstr(errors, NAME ":3: [roistat] name_template: unknown placeholder "
                                            "{nmae}"));
}

static void a_field_rule_with_a_bad_code_a_bad_template_or_an_owned_field_is_refused(void **state)
{
        expect_refused("[bitrix24.fields]\nuf_crm_lower = x\n",
                       NAME ":7: [bitrix24.fields] "
                            "uf_crm_lower: a deal field code",
                       NULL);
        expect_refused("[bitrix24.fields]\nUF_CRM_A = {nope}\n",
                       NAME ":7: [bitrix24.fields] UF_CRM_A: unknown placeholder {nope}", NULL);
        expect_refused("[bitrix24.fields]\nSTAGE_ID = {status}\n",
                       NAME ":7: [bitrix24.fields] STAGE_ID: orderbridge sets this field itself",
                       NULL);
        expect_refused("[bitrix24.fields]\nUF_CRM_ROISTAT = {id}\n",
                       "[bitrix24.fields] UF_CRM_ROISTAT: orderbridge sets this field itself",
                       NULL);
        expect_refused("[bitrix24.fields]\nUF_CRM_A = 1\nUF_CRM_A = 2\n",
                       NAME ":8: [bitrix24.fields] UF_CRM_A: set twice (first at line 7)", NULL);
}

static void a_site_or_person_type_section_with_a_bad_name_or_key_is_refused(void **state)
{
        expect_refused("[bitrix24.site s 2]\ncategory_id = 1\n",
                       NAME ":6: [bitrix24.site s 2]: "
                            "unknown section",
                       NULL);
        expect_refused("[bitrix24.site s2]\npipeline = 1\n",
                       NAME ":7: [bitrix24.site s2] pipeline: unknown key", NULL);
        expect_refused("[bitrix24.person_type 2]\ncategory_id = x\n",
                       NAME ":7: [bitrix24.person_type 2] category_id = x: must be a pipeline id",
                       NULL);
        expect_refused("[bitrix24.site s2]\nassigned_by_id = 0\n",
                       NAME ":7: [bitrix24.site s2] assigned_by_id = 0: must be a Bitrix24 user "
                            "id",
                       NULL);
        expect_refused("[bitrix24]\nsource_id = not a source\n",
                       "[bitrix24] source_id: must be a source id", NULL);
}

/* ---- Bitrix24: the deal ---- */

static void the_rules_of_a_person_type_win_over_its_sites_which_win_over_bitrix24(void **state)
{
        const struct b24_conf *bc =
            b24_conf_get(config_with("assigned_by_id = 1\nsource_id = STORE\ncategory_id = 0\n"
                                     "[bitrix24.site s2]\ncategory_id = 2\nassigned_by_id = 7\n"
                                     "[bitrix24.person_type 2]\ncategory_id = 3\n"));
        struct b24_order_rules r;
        char stage[96];

        b24_rules_resolve(bc, order_of(full_order), &r); /* s2, person type 2 */
        assert_int_equal(r.category_id, 3);
        assert_int_equal(r.assigned_by_id, 7);
        assert_string_equal(r.source_id, "STORE");
        b24_rules_resolve(bc, order_changed("\"person_type\":\"2\"", "\"person_type\":\"1\""), &r);
        assert_int_equal(r.category_id, 2);
        b24_rules_resolve(bc, order_changed("\"lid\":\"s2\"", "\"lid\":\"s1\""), &r);
        assert_int_equal(r.category_id, 3); /* the person type still matches */
        assert_int_equal(r.assigned_by_id, 1);
        assert_int_equal(b24_conf_order_stage(bc, NULL, order_of(full_order), stage, sizeof(stage)),
                         0);
        assert_string_equal(stage, "C3:NEW");
}

static void the_deal_owns_assigned_source_utm_comment_and_the_mapped_fields(void **state)
{
        const struct b24_conf *bc = b24_conf_get(config_with(
            "assigned_by_id = 5\nsource_id = STORE\n[bitrix24.fields]\n"
            "UF_CRM_DELIVERY_ADDR = {property:ADDRESS}\nSOURCE_DESCRIPTION = Site {lid}\n"));
        json_t *f = keep_json(b24_deal_owned_fields(bc, order_of(full_order), "NEW"));

        assert_int_equal(json_integer_value(json_object_get(f, "ASSIGNED_BY_ID")), 5);
        assert_string_equal(str(f, "SOURCE_ID"), "STORE");
        assert_string_equal(str(f, "UTM_SOURCE"), "google");
        assert_string_equal(str(f, "UTM_CAMPAIGN"), "spring");
        assert_null(json_object_get(f, "UTM_MEDIUM"));
        assert_string_equal(str(f, "COMMENTS"), "Call first");
        assert_string_equal(str(f, "UF_CRM_DELIVERY_ADDR"), "Moscow, Lenina 1");
        assert_string_equal(str(f, "SOURCE_DESCRIPTION"), "Site s2");
        assert_string_equal(str(f, "OPPORTUNITY"), "5300.50");
}

static void without_rules_the_deal_gets_no_assigned_or_source_and_utm_can_be_off(void **state)
{
        const struct b24_conf *bc = b24_conf_get(config_with("utm = no\ncomment_to_deal = no\n"));
        json_t *f = keep_json(b24_deal_owned_fields(bc, order_of(full_order), "NEW"));

        assert_null(json_object_get(f, "ASSIGNED_BY_ID"));
        assert_null(json_object_get(f, "SOURCE_ID"));
        assert_null(json_object_get(f, "UTM_SOURCE"));
        assert_null(json_object_get(f, "COMMENTS"));
}

/* The rows add up to what the buyer pays: Σ PRICE × QUANTITY = OPPORTUNITY. */
static void discounted_rows_and_the_delivery_row_add_up_to_the_order_price(void **state)
{
        const struct b24_conf *bc = b24_conf_get(config_with("delivery_row_name = Доставка\n"));
        struct snapshot *s = order_of(full_order);
        json_t *rows = keep_json(b24_deal_rows(bc, s)), *row;
        int64_t total = 0;
        size_t i;

        assert_int_equal(json_array_size(rows), 3);
        row = json_array_get(rows, 0);
        assert_string_equal(str(row, "PRICE"), "2495.00");
        assert_int_equal(json_integer_value(json_object_get(row, "DISCOUNT_TYPE_ID")), 1);
        assert_string_equal(str(row, "DISCOUNT_SUM"), "250.00");
        assert_null(json_object_get(json_array_get(rows, 1), "DISCOUNT_TYPE_ID"));
        row = json_array_get(rows, 2);
        assert_string_equal(str(row, "PRODUCT_NAME"), "Доставка");
        assert_string_equal(str(row, "PRICE"), "300.00");
        assert_string_equal(str(row, "QUANTITY"), "1");
        assert_string_equal(str(row, "DISCOUNT_SUM"), "50.00");
        json_array_foreach(rows, i, row)
        {
                int64_t price, qty;
                assert_int_equal(money_parse(str(row, "PRICE"), &price), 0);
                assert_int_equal(quantity_parse(str(row, "QUANTITY"), &qty), 0);
                total += price * qty / 1000;
        }
        assert_int_equal(total, s->price_minor);
}

static void a_free_delivery_has_no_row_and_the_default_row_name_is_delivery(void **state)
{
        const struct b24_conf *bc = b24_conf_get(config_with(""));
        json_t *rows = keep_json(
            b24_deal_rows(bc, order_changed("\"price\":\"300.00\",\"base_price\":\"350.00\"",
                                            "\"price\":\"0.00\"")));

        assert_int_equal(json_array_size(rows), 2);
        rows = keep_json(b24_deal_rows(bc, order_of(full_order)));
        assert_string_equal(str(json_array_get(rows, 2), "PRODUCT_NAME"), "Delivery");
}

/* ---- Roistat ---- */

static void roistat_gets_the_name_template_and_the_orders_fields(void **state)
{
        struct config *c = config_with("[roistat.fields]\nМенеджер = {property:MANAGER}\n"
                                       "Канал = Сайт\n");
        const struct roistat_conf *rc = roistat_conf_get(c);
        char why[200];
        json_t *o, *f;

        (void)rc;
        o = keep_json(
            roistat_order_json(roistat_conf_get(c), order_of(full_order), why, sizeof(why)));
        assert_string_equal(str(o, "name"), "Order A-123");
        f = json_object_get(o, "fields");
        assert_string_equal(str(f, "site"), "s2");
        assert_string_equal(str(f, "DELIVERY_NAME"), "Courier");
        assert_string_equal(str(f, "PAY_SYSTEM_NAME"), "Card, Cash");
        assert_string_equal(str(f, "coupons"), "SALE10, VIP");
        assert_string_equal(str(f, "sum_paid"), "5000.00");
        assert_string_equal(str(f, "comment"), "Call first");
        assert_string_equal(str(f, "utm_source"), "google");
        assert_string_equal(str(f, "utm_campaign"), "spring");
        assert_null(json_object_get(f, "utm_medium"));
        assert_string_equal(str(f, "Менеджер"), "Olga");
        assert_string_equal(str(f, "Канал"), "Сайт");
}

static void a_storefront_overrides_the_roistat_name_and_fields(void **state)
{
        struct config *c = config_with("[roistat]\nname_template = Заказ №{account_number}\n"
                                       "[roistat.fields]\nКанал = Сайт\n"
                                       "[roistat.site s2]\nname_template = Опт №{account_number} "
                                       "({lid})\nКанал = Опт\n");
        char why[200];
        json_t *o;

        o = keep_json(
            roistat_order_json(roistat_conf_get(c), order_of(full_order), why, sizeof(why)));
        assert_string_equal(str(o, "name"), "Опт №A-123 (s2)");
        assert_string_equal(str(json_object_get(o, "fields"), "Канал"), "Опт");
        o = keep_json(roistat_order_json(roistat_conf_get(c),
                                         order_changed("\"lid\":\"s2\"", "\"lid\":\"s1\""), why,
                                         sizeof(why)));
        assert_string_equal(str(o, "name"), "Заказ №A-123");
        assert_string_equal(str(json_object_get(o, "fields"), "Канал"), "Сайт");
}

static void a_roistat_field_value_is_cut_to_1000_characters(void **state)
{
        char text[sizeof(full_order) + 4096], big[2100];
        struct config *c = config_with("[roistat.fields]\nАдрес = {property:ADDRESS}\n");
        char why[200];
        const char *v;
        json_t *o;

        /* 1000 bytes of two-byte letters: 500 characters, kept whole */
        for (size_t i = 0; i < 500; i++)
                memcpy(big + 2 * i, "ж", 2);
        big[1000] = '\0';
        snprintf(text, sizeof(text), "%.*s%s%s",
                 (int)(strstr(full_order, "Moscow, Lenina 1") - full_order), full_order, big,
                 strstr(full_order, "Moscow, Lenina 1") + 16);
        o = keep_json(roistat_order_json(roistat_conf_get(c), order_of(text), why, sizeof(why)));
        v = str(json_object_get(o, "fields"), "Адрес");
        assert_int_equal(strlen(v), 1000);
        /* three of them, 1500 characters, are cut at 1000 characters (2000 bytes), between
         * characters */
        c = config_with("[roistat.fields]\nДлинный = {property:ADDRESS}{property:ADDRESS}"
                        "{property:ADDRESS}\n");
        o = keep_json(roistat_order_json(roistat_conf_get(c), order_of(text), why, sizeof(why)));
        v = str(json_object_get(o, "fields"), "Длинный");
        assert_int_equal(strlen(v), 2000);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_teardown(a_template_fills_each_placeholder_from_the_order, teardown),
            cmocka_unit_test_teardown(
                a_template_with_an_unknown_placeholder_or_a_lone_brace_is_refused, teardown),
            cmocka_unit_test_teardown(
                the_roistat_name_template_with_an_unknown_placeholder_is_refused_naming_it,
                teardown),
            cmocka_unit_test_teardown(
                a_field_rule_with_a_bad_code_a_bad_template_or_an_owned_field_is_refused, teardown),
            cmocka_unit_test_teardown(
                a_site_or_person_type_section_with_a_bad_name_or_key_is_refused, teardown),
            cmocka_unit_test_teardown(
                the_rules_of_a_person_type_win_over_its_sites_which_win_over_bitrix24, teardown),
            cmocka_unit_test_teardown(
                the_deal_owns_assigned_source_utm_comment_and_the_mapped_fields, teardown),
            cmocka_unit_test_teardown(
                without_rules_the_deal_gets_no_assigned_or_source_and_utm_can_be_off, teardown),
            cmocka_unit_test_teardown(
                discounted_rows_and_the_delivery_row_add_up_to_the_order_price, teardown),
            cmocka_unit_test_teardown(
                a_free_delivery_has_no_row_and_the_default_row_name_is_delivery, teardown),
            cmocka_unit_test_teardown(roistat_gets_the_name_template_and_the_orders_fields,
                                      teardown),
            cmocka_unit_test_teardown(a_storefront_overrides_the_roistat_name_and_fields, teardown),
            cmocka_unit_test_teardown(a_roistat_field_value_is_cut_to_1000_characters, teardown),
        };

        return cmocka_run_group_tests(tests, setup, group_teardown);
}
