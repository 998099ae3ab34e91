/*
 * The order snapshot is the ingest contract of design.md. Each test starts from the
 * design's example, changes one thing, and checks either the parsed value or the exact
 * field the rejection names (err.field), because that field is what the site developer
 * sees in the 400 answer.
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

#include "model/iso8601.h"
#include "model/snapshot.h"

/* design.md, "The ingest contract" */
static const char example[] =
    "{\n"
    "  \"site\": \"shop.example.ru\",\n"
    "  \"order\": {\n"
    "    \"id\": \"123\",\n"
    "    \"account_number\": \"123\",\n"
    "    \"version\": 4,\n"
    "    \"status\": \"N\",\n"
    "    \"canceled\": false,\n"
    "    \"paid\": false,\n"
    "    \"created_at\": \"2026-03-13T10:00:00+03:00\",\n"
    "    \"updated_at\": \"2026-03-13T10:05:00+03:00\",\n"
    "    \"price\": \"4990.00\",\n"
    "    \"currency\": \"RUB\",\n"
    "    \"roistat_visit\": \"4521890\",\n"
    "    \"buyer\": {\n"
    "      \"type\": \"individual\",\n"
    "      \"name\": \"Ivan Petrov\",\n"
    "      \"phone\": \"+7 900 123-45-67\",\n"
    "      \"email\": \"ivan@example.ru\",\n"
    "      \"company\": null,\n"
    "      \"inn\": null\n"
    "    },\n"
    "    \"items\": [\n"
    "      {\"product_id\": \"55\", \"name\": \"Kettle\", \"price\": \"2495.00\", "
    "\"quantity\": \"2\"}\n"
    "    ]\n"
    "  }\n"
    "}\n";

/* 2026-03-13T10:00:00+03:00 and 10:05, computed with python3 datetime */
#define EXAMPLE_CREATED_AT 1773385200LL
#define EXAMPLE_UPDATED_AT 1773385500LL

/* Every snapshot a test parses is freed in teardown, so that a failing assertion (which
 * leaves the test early) is reported as a failure and not also as a leak. */
static struct snapshot *kept[64];
static size_t n_kept;

static struct snapshot *keep(struct snapshot *s)
{
        assert_true(n_kept < sizeof(kept) / sizeof(kept[0]));
        return kept[n_kept++] = s;
}

static int teardown(void **state)
{
        while (n_kept > 0)
                snapshot_free(kept[--n_kept]);
        return 0;
}

/* snapshot_parse, with the result kept for teardown. */
static int parse_kept(const char *text, size_t len, struct snapshot **ret,
                      struct snapshot_error *err)
{
        int r;

        *ret = NULL;
        r = snapshot_parse(text, len, ret, err);
        keep(*ret);
        return r;
}

static json_t *example_doc(void)
{
        json_error_t jerr;
        json_t *doc = json_loads(example, 0, &jerr);

        if (!doc)
                fail_msg("the example does not load: %s", jerr.text);
        return doc;
}

/* Sets (or with value NULL removes) the member at a dotted path such as "order.buyer.inn"
 * in `doc`. Steals `value`. */
static void set_path(json_t *doc, const char *path, json_t *value)
{
        char buf[128], *dot, *key = buf;
        json_t *obj = doc;

        snprintf(buf, sizeof(buf), "%s", path);
        while ((dot = strchr(key, '.')) != NULL) {
                *dot = '\0';
                obj = json_object_get(obj, key);
                if (!json_is_object(obj))
                        fail_msg("set_path: \"%s\" is not an object in the example", key);
                key = dot + 1;
        }
        if (value)
                json_object_set_new(obj, key, value);
        else
                json_object_del(obj, key);
}

/* Parses `doc` (consumed). Returns snapshot_parse's result. */
static int parse_doc(json_t *doc, struct snapshot **ret, struct snapshot_error *err)
{
        char *text = json_dumps(doc, JSON_COMPACT);
        int r;

        json_decref(doc);
        r = parse_kept(text, strlen(text), ret, err);
        free(text);
        return r;
}

/* The example with one member changed parses, and is returned for inspection. */
static struct snapshot *parse_with(const char *path, json_t *value)
{
        struct snapshot_error err;
        struct snapshot *s = NULL;
        json_t *doc = example_doc();

        set_path(doc, path, value);
        if (parse_doc(doc, &s, &err) != 0)
                fail_msg("with %s changed: want success, got %s: %s", path, err.field, err.message);
        return s;
}

/* The example with one member changed is rejected, naming `want_field`. */
static void expect_rejected_with(const char *path, json_t *value, const char *want_field)
{
        struct snapshot_error err;
        struct snapshot *s = NULL;
        json_t *doc = example_doc();
        int r;

        set_path(doc, path, value);
        r = parse_doc(doc, &s, &err);
        if (r != -EINVAL || strcmp(err.field, want_field) != 0 || err.message[0] == '\0')
                fail_msg("with %s changed: want -EINVAL naming %s, got %d naming \"%s\" (%s)", path,
                         want_field, r, err.field, err.message);
        if (s != NULL)
                fail_msg("with %s changed: a rejected parse returned a snapshot", path);
}

/* Raw text is rejected (not via the example), naming `want_field`. */
static void expect_text_rejected(const char *text, size_t len, const char *want_field)
{
        struct snapshot_error err;
        struct snapshot *s = NULL;
        int r = parse_kept(text, len, &s, &err);

        if (r != -EINVAL || strcmp(err.field, want_field) != 0)
                fail_msg("want -EINVAL naming %s, got %d naming \"%s\" (%s)", want_field, r,
                         err.field, err.message);
        assert_null(s);
}

static json_t *items_with_bad_third_price(void)
{
        return json_pack("[{s:s, s:s, s:s}, {s:s, s:s, s:s}, {s:s, s:s, s:s}]", "name", "A",
                         "price", "1.00", "quantity", "1", "name", "B", "price", "2.00", "quantity",
                         "1", "name", "C", "price", "3.000", "quantity", "1");
}

static json_t *items_of(size_t n)
{
        json_t *arr = json_array();

        for (size_t i = 0; i < n; i++)
                json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "name", "X", "price",
                                                     "1.00", "quantity", "1"));
        return arr;
}

static json_t *string_of(char c, size_t n)
{
        char *buf = malloc(n + 1);
        json_t *v;

        memset(buf, c, n);
        buf[n] = '\0';
        v = json_string(buf);
        free(buf);
        return v;
}

static int64_t iso(const char *text)
{
        int64_t t = -1;

        if (iso8601_parse(text, &t) != 0)
                fail_msg("iso8601_parse(\"%s\") failed", text);
        return t;
}

static void expect_iso_rejected(const char *text)
{
        int64_t t = 12345;

        if (iso8601_parse(text, &t) != -EINVAL || t != 12345)
                fail_msg("iso8601_parse(\"%s\"): want -EINVAL and untouched, got %lld", text,
                         (long long)t);
}

/* ---- the example ---- */

static void the_design_example_parses_with_every_field(void **state)
{
        struct snapshot_error err;
        struct snapshot *s = NULL;

        assert_int_equal(parse_kept(example, strlen(example), &s, &err), 0);
        assert_string_equal(s->site, "shop.example.ru");
        assert_string_equal(s->order_id, "123");
        assert_string_equal(s->account_number, "123");
        assert_true(s->has_version);
        assert_int_equal(s->version, 4);
        assert_string_equal(s->status, "N");
        assert_false(s->canceled);
        assert_false(s->paid);
        assert_int_equal(s->created_at, EXAMPLE_CREATED_AT);
        assert_true(s->has_updated_at);
        assert_int_equal(s->updated_at, EXAMPLE_UPDATED_AT);
        assert_int_equal(s->price_minor, 499000);
        assert_false(s->has_cost);
        assert_string_equal(s->currency, "RUB");
        assert_string_equal(s->roistat_visit, "4521890");
        assert_false(s->visit_dropped);
}

static void the_design_example_buyer_is_an_individual_with_contacts(void **state)
{
        struct snapshot_error err;
        struct snapshot *s = NULL;

        assert_int_equal(parse_kept(example, strlen(example), &s, &err), 0);
        assert_false(s->buyer.legal);
        assert_string_equal(s->buyer.name, "Ivan Petrov");
        assert_string_equal(s->buyer.phone, "+7 900 123-45-67");
        assert_string_equal(s->buyer.email, "ivan@example.ru");
        assert_null(s->buyer.company);
        assert_null(s->buyer.inn);
}

static void the_design_example_has_one_item_of_two_kettles(void **state)
{
        struct snapshot_error err;
        struct snapshot *s = NULL;

        assert_int_equal(parse_kept(example, strlen(example), &s, &err), 0);
        assert_int_equal(s->n_items, 1);
        assert_string_equal(s->items[0].product_id, "55");
        assert_string_equal(s->items[0].name, "Kettle");
        assert_int_equal(s->items[0].price_minor, 249500);
        assert_int_equal(s->items[0].quantity_milli, 2000);
}

static void the_canonical_json_of_the_example_is_compact_sorted_and_in_utc(void **state)
{
        struct snapshot_error err;
        struct snapshot *s = NULL;

        assert_int_equal(parse_kept(example, strlen(example), &s, &err), 0);
        assert_string_equal(
            s->json,
            "{\"order\":{\"account_number\":\"123\",\"buyer\":{\"email\":\"ivan@example.ru\","
            "\"name\":\"Ivan Petrov\",\"phone\":\"+7 900 123-45-67\",\"type\":\"individual\"},"
            "\"canceled\":false,\"created_at\":\"2026-03-13T07:00:00Z\",\"currency\":\"RUB\","
            "\"id\":\"123\",\"items\":[{\"name\":\"Kettle\",\"price\":\"2495.00\","
            "\"product_id\":\"55\",\"quantity\":\"2\"}],\"paid\":false,\"price\":\"4990.00\","
            "\"roistat_visit\":\"4521890\",\"status\":\"N\","
            "\"updated_at\":\"2026-03-13T07:05:00Z\",\"version\":4},"
            "\"site\":\"shop.example.ru\"}");
}

static void the_canonical_json_reparses_to_the_same_canonical_json(void **state)
{
        static const char *const variants[] = {
            example,
            "{\"site\":\"s\",\"order\":{\"id\":\"A-1_b\",\"status\":\"P\",\"canceled\":true,"
            "\"paid\":true,\"created_at\":\"2026-02-28T23:59:59.123-05:30\","
            "\"updated_at\":\"2026-03-01T00:00:00Z\",\"price\":\"0.5\",\"cost\":\"0.1\","
            "\"currency\":\"USD\",\"buyer\":{\"type\":\"legal\",\"company\":\"OOO Romashka\","
            "\"inn\":\"7707083893\"},\"items\":[{\"name\":\"Tea\",\"price\":\"0.25\","
            "\"quantity\":\"1.500\"}]}}",
        };

        for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
                struct snapshot_error err;
                struct snapshot *a = NULL, *b = NULL;

                assert_int_equal(parse_kept(variants[i], strlen(variants[i]), &a, &err), 0);
                if (parse_kept(a->json, strlen(a->json), &b, &err) != 0)
                        fail_msg("canonical json #%zu does not reparse: %s %s", i, err.field,
                                 err.message);
                assert_string_equal(a->json, b->json);
                assert_int_equal(a->created_at, b->created_at);
                assert_int_equal(a->price_minor, b->price_minor);
        }
}

static void the_canonical_json_keeps_money_as_two_decimal_strings(void **state)
{
        struct snapshot *s = parse_with("order.price", json_string("0.5"));

        assert_int_equal(s->price_minor, 50);
        assert_non_null(strstr(s->json, "\"price\":\"0.50\""));
}

/* Issue #13: an unknown member is refused at every level, naming its path, so that a
 * misspelt field never vanishes silently. */
static void an_unknown_member_is_refused_at_every_level_by_its_path(void **state)
{
        struct snapshot_error err;
        struct snapshot *s = NULL;
        json_t *doc;

        expect_rejected_with("extra", json_string("x"), "extra");
        expect_rejected_with("order.delivery_service", json_string("CDEK"),
                             "order.delivery_service");
        expect_rejected_with("order.buyer.middle_name", json_string("I"),
                             "order.buyer.middle_name");
        expect_rejected_with("order.delivery", json_pack("{s:s, s:s}", "price", "1.00", "nmae",
                                                         "CDEK"),
                             "order.delivery.nmae");
        expect_rejected_with("order.utm", json_pack("{s:s}", "sorce", "google"),
                             "order.utm.sorce");
        expect_rejected_with("order.payments",
                             json_pack("[{s:s, s:s, s:b, s:s}]", "name", "Card", "sum", "1.00",
                                       "paid", 1, "when", "now"),
                             "order.payments[0].when");
        expect_rejected_with("order.deal", json_pack("{s:s, s:s}", "id", "5", "stage", "WON"),
                             "order.deal.stage");
        /* the empty key too (found by fuzz_snapshot): a refusal always names a field */
        expect_rejected_with("", json_string("x"), "\"\"");
        expect_rejected_with("order.utm", json_pack("{s:s}", "", "google"), "order.utm.\"\"");
        doc = example_doc();
        json_object_set_new(json_array_get(json_object_get(json_object_get(doc, "order"), "items"),
                                           0),
                            "discount", json_string("1.00"));
        assert_int_equal(parse_doc(doc, &s, &err), -EINVAL);
        assert_string_equal(err.field, "order.items[0].discount");
        assert_non_null(strstr(err.message, "is not a field of the snapshot contract"));
}

/* ---- issue #13: the optional fields and their bounds ---- */

static json_t *full_extras_order(void)
{
        json_t *doc = example_doc(), *order = json_object_get(doc, "order");

        json_object_set_new(order, "lid", json_string("s2"));
        json_object_set_new(order, "person_type", json_string("1"));
        json_object_set_new(order, "comment", json_string("Call me\nafter 18:00"));
        json_object_set_new(order, "delivery", json_pack("{s:s, s:s, s:s}", "name", "Courier",
                                                         "price", "300.00", "base_price",
                                                         "350.00"));
        json_object_set_new(order, "discount", json_string("550.00"));
        json_object_set_new(order, "coupons", json_pack("[s, s]", "SALE10", "VIP"));
        json_object_set_new(order, "payments",
                            json_pack("[{s:s, s:s, s:b}]", "name", "Card", "sum", "4990.00",
                                      "paid", 1));
        json_object_set_new(order, "sum_paid", json_string("4990.00"));
        json_object_set_new(order, "utm", json_pack("{s:s, s:s}", "source", "google", "term",
                                                    "kettle"));
        json_object_set_new(order, "properties", json_pack("{s:s, s:s}", "ADDRESS",
                                                           "Moscow,\nLenina 1", "MANAGER",
                                                           "Olga"));
        json_object_set_new(json_array_get(json_object_get(order, "items"), 0), "base_price",
                            json_string("2745.00"));
        return doc;
}

static void every_new_optional_field_is_read(void **state)
{
        struct snapshot_error err;
        struct snapshot *s = NULL;

        assert_int_equal(parse_doc(full_extras_order(), &s, &err), 0);
        assert_string_equal(s->lid, "s2");
        assert_string_equal(s->person_type, "1");
        assert_string_equal(s->comment, "Call me\nafter 18:00");
        assert_true(s->delivery.present);
        assert_string_equal(s->delivery.name, "Courier");
        assert_int_equal(s->delivery.price_minor, 30000);
        assert_true(s->delivery.has_base_price);
        assert_int_equal(s->delivery.base_price_minor, 35000);
        assert_true(s->has_discount);
        assert_int_equal(s->discount_minor, 55000);
        assert_int_equal(s->n_coupons, 2);
        assert_string_equal(s->coupons[1], "VIP");
        assert_int_equal(s->n_payments, 1);
        assert_string_equal(s->payments[0].name, "Card");
        assert_int_equal(s->payments[0].sum_minor, 499000);
        assert_true(s->payments[0].paid);
        assert_int_equal(s->sum_paid_minor, 499000);
        assert_string_equal(s->utm[SNAPSHOT_UTM_SOURCE], "google");
        assert_null(s->utm[SNAPSHOT_UTM_MEDIUM]);
        assert_string_equal(s->utm[SNAPSHOT_UTM_TERM], "kettle");
        assert_string_equal(snapshot_property(s, "ADDRESS"), "Moscow,\nLenina 1");
        assert_null(snapshot_property(s, "NONE"));
        assert_true(s->items[0].has_base_price);
        assert_int_equal(s->items[0].base_price_minor, 274500);
}

static void the_new_fields_are_in_the_canonical_json_sorted_and_reparse_the_same(void **state)
{
        struct snapshot_error err;
        struct snapshot *s = NULL, *again = NULL;

        assert_int_equal(parse_doc(full_extras_order(), &s, &err), 0);
        assert_non_null(strstr(s->json, "\"delivery\":{\"base_price\":\"350.00\",\"name\":"
                                        "\"Courier\",\"price\":\"300.00\"}"));
        assert_non_null(strstr(s->json, "\"coupons\":[\"SALE10\",\"VIP\"]"));
        assert_non_null(strstr(s->json, "\"payments\":[{\"name\":\"Card\",\"paid\":true,"
                                        "\"sum\":\"4990.00\"}]"));
        assert_non_null(strstr(s->json, "\"utm\":{\"source\":\"google\",\"term\":\"kettle\"}"));
        assert_non_null(strstr(s->json, "\"properties\":{\"ADDRESS\":\"Moscow,\\nLenina 1\","
                                        "\"MANAGER\":\"Olga\"}"));
        assert_non_null(strstr(s->json, "\"base_price\":\"2745.00\",\"name\":\"Kettle\""));
        assert_non_null(strstr(s->json, "\"lid\":\"s2\""));
        assert_non_null(strstr(s->json, "\"discount\":\"550.00\""));
        assert_non_null(strstr(s->json, "\"sum_paid\":\"4990.00\""));
        assert_int_equal(parse_kept(s->json, strlen(s->json), &again, &err), 0);
        assert_string_equal(again->json, s->json);
}

static void lid_and_person_type_are_1_to_16_id_characters(void **state)
{
        parse_with("order.lid", string_of('a', 16));
        expect_rejected_with("order.lid", string_of('a', 17), "order.lid");
        expect_rejected_with("order.lid", json_string(""), "order.lid");
        expect_rejected_with("order.lid", json_string("s 1"), "order.lid");
        expect_rejected_with("order.lid", json_integer(1), "order.lid");
        parse_with("order.person_type", json_string("legal_2"));
        expect_rejected_with("order.person_type", string_of('1', 17), "order.person_type");
        expect_rejected_with("order.person_type", json_string("1.5"), "order.person_type");
}

static void a_comment_of_1000_bytes_with_line_breaks_is_accepted_and_1001_rejected(void **state)
{
        parse_with("order.comment", json_string("line one\r\n\tline two"));
        parse_with("order.comment", string_of('c', SNAPSHOT_COMMENT_MAX));
        expect_rejected_with("order.comment", string_of('c', SNAPSHOT_COMMENT_MAX + 1),
                             "order.comment");
        expect_rejected_with("order.comment", json_string("bell\a"), "order.comment");
        expect_rejected_with("order.comment", json_true(), "order.comment");
}

static void an_item_base_price_below_its_price_or_not_money_is_rejected(void **state)
{
        json_t *doc = example_doc(), *item;
        struct snapshot_error err;
        struct snapshot *s = NULL;

        item = json_array_get(json_object_get(json_object_get(doc, "order"), "items"), 0);
        json_object_set_new(item, "base_price", json_string("2494.99"));
        assert_int_equal(parse_doc(doc, &s, &err), -EINVAL);
        assert_string_equal(err.field, "order.items[0].base_price");
        doc = example_doc();
        item = json_array_get(json_object_get(json_object_get(doc, "order"), "items"), 0);
        json_object_set_new(item, "base_price", json_string("1.001"));
        assert_int_equal(parse_doc(doc, &s, &err), -EINVAL);
        assert_string_equal(err.field, "order.items[0].base_price");
        doc = example_doc();
        item = json_array_get(json_object_get(json_object_get(doc, "order"), "items"), 0);
        json_object_set_new(item, "base_price", json_string("2495.00"));
        assert_int_equal(parse_doc(doc, &s, &err), 0);
}

static void a_delivery_needs_a_price_and_a_base_price_not_below_it(void **state)
{
        parse_with("order.delivery", json_pack("{s:s}", "price", "0.00"));
        expect_rejected_with("order.delivery", json_pack("{s:s}", "name", "Courier"),
                             "order.delivery.price");
        expect_rejected_with("order.delivery", json_pack("{s:s, s:s}", "price", "300.00",
                                                         "base_price", "299.99"),
                             "order.delivery.base_price");
        expect_rejected_with("order.delivery", json_pack("{s:s, s:o}", "price", "1.00", "name",
                                                         string_of('n', 256)),
                             "order.delivery.name");
        expect_rejected_with("order.delivery", json_string("Courier"), "order.delivery");
        expect_rejected_with("order.delivery", json_pack("{s:i}", "price", 300),
                             "order.delivery.price");
}

static void discount_and_sum_paid_are_money(void **state)
{
        parse_with("order.discount", json_string("0.50"));
        expect_rejected_with("order.discount", json_string("-1.00"), "order.discount");
        expect_rejected_with("order.discount", json_real(1.5), "order.discount");
        parse_with("order.sum_paid", json_string("4990.00"));
        expect_rejected_with("order.sum_paid", json_string("1.234"), "order.sum_paid");
}

static void twenty_coupons_of_64_bytes_are_accepted_and_more_or_longer_rejected(void **state)
{
        json_t *arr = json_array();

        for (int i = 0; i < SNAPSHOT_COUPONS_MAX; i++)
                json_array_append_new(arr, string_of('k', SNAPSHOT_COUPON_MAX));
        parse_with("order.coupons", json_deep_copy(arr));
        json_array_append_new(arr, json_string("ONE_MORE"));
        expect_rejected_with("order.coupons", arr, "order.coupons");
        expect_rejected_with("order.coupons", json_pack("[s, o]", "A", string_of('k', 65)),
                             "order.coupons[1]");
        expect_rejected_with("order.coupons", json_pack("[s, s]", "A", ""), "order.coupons[1]");
        expect_rejected_with("order.coupons", json_pack("[i]", 5), "order.coupons[0]");
        expect_rejected_with("order.coupons", json_string("A"), "order.coupons");
}

static void payments_are_at_most_20_each_with_a_name_a_sum_and_a_flag(void **state)
{
        json_t *arr = json_array();

        for (int i = 0; i < SNAPSHOT_PAYMENTS_MAX; i++)
                json_array_append_new(arr, json_pack("{s:s, s:s, s:b}", "name", "Cash", "sum",
                                                     "1.00", "paid", 0));
        parse_with("order.payments", json_deep_copy(arr));
        json_array_append_new(arr, json_pack("{s:s, s:s}", "name", "Cash", "sum", "1.00"));
        expect_rejected_with("order.payments", arr, "order.payments");
        expect_rejected_with("order.payments", json_pack("[{s:s}]", "sum", "1.00"),
                             "order.payments[0].name");
        expect_rejected_with("order.payments", json_pack("[{s:s}]", "name", "Card"),
                             "order.payments[0].sum");
        expect_rejected_with("order.payments",
                             json_pack("[{s:s, s:s, s:s}]", "name", "Card", "sum", "1.00",
                                       "paid", "yes"),
                             "order.payments[0].paid");
        expect_rejected_with("order.payments", json_pack("[{s:o, s:s}]", "name",
                                                         string_of('p', 256), "sum", "1.00"),
                             "order.payments[0].name");
        expect_rejected_with("order.payments", json_pack("[s]", "Card"), "order.payments[0]");
}

static void each_utm_member_is_text_of_at_most_255_bytes(void **state)
{
        const char *const names[] = {"source", "medium", "campaign", "content", "term"};

        for (size_t i = 0; i < 5; i++) {
                char path[64];
                snprintf(path, sizeof(path), "order.utm.%s", names[i]);
                parse_with("order.utm", json_pack("{s:o}", names[i], string_of('u', 255)));
                expect_rejected_with("order.utm", json_pack("{s:o}", names[i],
                                                            string_of('u', 256)),
                                     path);
                expect_rejected_with("order.utm", json_pack("{s:i}", names[i], 1), path);
        }
        expect_rejected_with("order.utm", json_string("google"), "order.utm");
}

static void properties_are_at_most_100_codes_of_50_with_values_of_1000(void **state)
{
        json_t *o = json_object();
        char key[16];

        for (int i = 0; i < SNAPSHOT_PROPERTIES_MAX; i++) {
                snprintf(key, sizeof(key), "P%d", i);
                json_object_set_new(o, key, json_string("v"));
        }
        parse_with("order.properties", json_deep_copy(o));
        json_object_set_new(o, "ONE_MORE", json_string("v"));
        expect_rejected_with("order.properties", o, "order.properties");
        parse_with("order.properties", json_pack("{s:o}", "ADDRESS", string_of('a', 1000)));
        expect_rejected_with("order.properties", json_pack("{s:o}", "ADDRESS",
                                                           string_of('a', 1001)),
                             "order.properties.ADDRESS");
        expect_rejected_with("order.properties", json_pack("{s:i}", "ADDRESS", 5),
                             "order.properties.ADDRESS");
        expect_rejected_with("order.properties", json_pack("{s:s}", "BAD CODE", "v"),
                             "order.properties.BAD CODE");
        o = json_object();
        json_object_set_new(o, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", /* 51 */
                            json_string("v"));
        expect_rejected_with("order.properties", o,
                             "order.properties.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                             "AAA");
        expect_rejected_with("order.properties", json_pack("[s]", "v"), "order.properties");
}

static void account_number_defaults_to_the_order_id(void **state)
{
        struct snapshot *s = parse_with("order.account_number", NULL);

        assert_string_equal(s->account_number, "123");
        s = parse_with("order.account_number", json_string(""));
        assert_string_equal(s->account_number, "123");
        s = parse_with("order.account_number", json_string("2026/03-0042"));
        assert_string_equal(s->account_number, "2026/03-0042");
}

static void a_cost_is_read_as_money_when_present(void **state)
{
        struct snapshot *s = parse_with("order.cost", json_string("1200.50"));

        assert_true(s->has_cost);
        assert_int_equal(s->cost_minor, 120050);
}

/* ---- required fields ---- */

static void each_missing_required_field_is_rejected_by_name(void **state)
{
        static const char *const required[] = {
            "site",        "order",         "order.id", "order.status", "order.created_at",
            "order.price", "order.currency"};

        for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
                expect_rejected_with(required[i], NULL, required[i]);
}

static void each_required_field_given_as_null_is_rejected_by_name(void **state)
{
        static const char *const required[] = {"site",         "order.id",
                                               "order.status", "order.created_at",
                                               "order.price",  "order.currency"};

        for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
                expect_rejected_with(required[i], json_null(), required[i]);
}

static void each_required_text_field_given_empty_is_rejected_by_name(void **state)
{
        static const char *const required[] = {"site",        "order.id",       "order.status",
                                               "order.price", "order.currency", "order.created_at"};

        for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
                expect_rejected_with(required[i], json_string(""), required[i]);
}

static void neither_version_nor_updated_at_is_rejected_naming_version(void **state)
{
        struct snapshot_error err;
        struct snapshot *s = NULL;
        json_t *doc = example_doc();

        set_path(doc, "order.version", NULL);
        set_path(doc, "order.updated_at", NULL);
        assert_int_equal(parse_doc(doc, &s, &err), -EINVAL);
        assert_string_equal(err.field, "order.version");
}

static void version_alone_orders_the_snapshot(void **state)
{
        struct snapshot *s = parse_with("order.updated_at", NULL);

        assert_true(s->has_version);
        assert_false(s->has_updated_at);
        assert_null(strstr(s->json, "updated_at"));
}

static void updated_at_alone_orders_the_snapshot(void **state)
{
        struct snapshot *s = parse_with("order.version", NULL);

        assert_false(s->has_version);
        assert_true(s->has_updated_at);
        assert_int_equal(s->updated_at, EXAMPLE_UPDATED_AT);
}

/* ---- types ---- */

static void a_price_given_as_a_json_number_is_rejected(void **state)
{
        expect_rejected_with("order.price", json_integer(4990), "order.price");
        expect_rejected_with("order.price", json_real(4990.0), "order.price");
        expect_rejected_with("order.cost", json_real(0.1), "order.cost");
}

static void each_field_of_the_wrong_json_type_is_rejected_by_name(void **state)
{
        expect_rejected_with("site", json_integer(1), "site");
        expect_rejected_with("order", json_string("123"), "order");
        expect_rejected_with("order", json_array(), "order");
        expect_rejected_with("order", json_null(), "order");
        expect_rejected_with("order.id", json_integer(123), "order.id");
        expect_rejected_with("order.account_number", json_integer(123), "order.account_number");
        expect_rejected_with("order.status", json_true(), "order.status");
        expect_rejected_with("order.canceled", json_string("false"), "order.canceled");
        expect_rejected_with("order.paid", json_integer(0), "order.paid");
        expect_rejected_with("order.created_at", json_integer(EXAMPLE_CREATED_AT),
                             "order.created_at");
        expect_rejected_with("order.updated_at", json_integer(EXAMPLE_UPDATED_AT),
                             "order.updated_at");
        expect_rejected_with("order.currency", json_integer(643), "order.currency");
        expect_rejected_with("order.buyer", json_string("Ivan"), "order.buyer");
        expect_rejected_with("order.buyer.name", json_integer(1), "order.buyer.name");
        expect_rejected_with("order.buyer.phone", json_integer(79001234567), "order.buyer.phone");
        expect_rejected_with("order.items", json_object(), "order.items");
}

static void a_version_that_is_not_a_non_negative_integer_is_rejected(void **state)
{
        expect_rejected_with("order.version", json_string("4"), "order.version");
        expect_rejected_with("order.version", json_real(4.5), "order.version");
        expect_rejected_with("order.version", json_integer(-1), "order.version");
        expect_rejected_with("order.version", json_true(), "order.version");
        expect_rejected_with("order.version", json_integer((1LL << 53) + 1), "order.version");
}

static void a_version_of_zero_and_of_two_to_the_53_are_accepted(void **state)
{
        struct snapshot *s = parse_with("order.version", json_integer(0));

        assert_int_equal(s->version, 0);
        s = parse_with("order.version", json_integer(1LL << 53));
        assert_int_equal(s->version, 1LL << 53);
}

static void canceled_and_paid_flags_are_read(void **state)
{
        struct snapshot *s = parse_with("order.canceled", json_true());

        assert_true(s->canceled);
        s = parse_with("order.paid", json_true());
        assert_true(s->paid);
}

/* ---- ids and text ---- */

static void an_order_id_with_unsafe_characters_is_rejected(void **state)
{
        static const char *const bad[] = {"12/3", "12'3", "12;3",  "12 3",  "12.3", "12\"3",
                                          "../1", "12%3", "12\\3", "ид123", "12\t3"};

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                expect_rejected_with("order.id", json_string(bad[i]), "order.id");
}

static void an_order_id_of_letters_digits_dash_and_underscore_is_accepted(void **state)
{
        struct snapshot *s = parse_with("order.id", json_string("Ab-12_z"));

        assert_string_equal(s->order_id, "Ab-12_z");
}

static void an_order_id_of_64_characters_is_accepted_and_65_is_rejected(void **state)
{
        struct snapshot *s = parse_with("order.id", string_of('7', 64));

        assert_int_equal(strlen(s->order_id), 64);
        expect_rejected_with("order.id", string_of('7', 65), "order.id");
}

static void a_status_code_that_is_not_an_identifier_is_rejected(void **state)
{
        expect_rejected_with("order.status", json_string("N N"), "order.status");
        expect_rejected_with("order.status", json_string("N;"), "order.status");
        expect_rejected_with("order.status", string_of('N', 51), "order.status");
}

static void text_with_a_control_character_is_rejected(void **state)
{
        expect_rejected_with("order.buyer.name", json_string("Ivan\nPetrov"), "order.buyer.name");
        expect_rejected_with("site", json_string("shop\r.example.ru"), "site");
        expect_rejected_with("order.buyer.phone", json_string("+7\x1b[2J"), "order.buyer.phone");
}

static void text_over_its_limit_is_rejected(void **state)
{
        struct snapshot *s = parse_with("order.buyer.name", string_of('a', 255));

        assert_int_equal(strlen(s->buyer.name), 255);
        expect_rejected_with("order.buyer.name", string_of('a', 256), "order.buyer.name");
        expect_rejected_with("site", string_of('a', 256), "site");
        expect_rejected_with("order.account_number", string_of('1', 129), "order.account_number");
}

static void a_currency_that_is_not_three_capital_letters_is_rejected(void **state)
{
        static const char *const bad[] = {"rub", "Rub", "RU", "RUBL", "R1B", "RU ", "643"};

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                expect_rejected_with("order.currency", json_string(bad[i]), "order.currency");
}

/* ---- money in the order ---- */

static void an_order_price_outside_the_money_grammar_is_rejected(void **state)
{
        static const char *const bad[] = {"-1.00", "1.234",          "1e3", " 1", "1,5",
                                          ".5",    "100000000000.01"};

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                expect_rejected_with("order.price", json_string(bad[i]), "order.price");
}

static void a_zero_price_is_accepted(void **state)
{
        struct snapshot *s = parse_with("order.price", json_string("0"));

        assert_int_equal(s->price_minor, 0);
}

/* ---- a deal read from Bitrix24 ---- */

static void a_deal_snapshot_keeps_its_stage_id_and_deal_in_canonical_json(void **state)
{
        struct snapshot_error err;
        struct snapshot *s = parse_with("order.deal",
                                        json_pack("{s:s, s:s}", "id", "55", "title", "Call"));

        assert_string_equal(s->deal_id, "55");
        assert_string_equal(s->deal_title, "Call");
        assert_non_null(strstr(s->json, "\"deal\":{\"id\":\"55\",\"title\":\"Call\"}"));
        /* a site order is not a deal: the ingest and import refuse this one */
        assert_int_equal(snapshot_check_from_site(s, NULL, &err), -EINVAL);
        assert_string_equal(err.field, "order.deal");
        s = parse_with("order.status", json_string("C12:PREPAYMENT_INVOICE"));
        assert_string_equal(s->status, "C12:PREPAYMENT_INVOICE");
        assert_null(s->deal_id);
        assert_null(strstr(s->json, "\"deal\""));
        assert_int_equal(snapshot_check_from_site(s, NULL, &err), 0);
}

static void a_deal_that_is_not_digits_is_rejected(void **state)
{
        expect_rejected_with("order.deal", json_pack("{s:s}", "id", "5x"), "order.deal.id");
        expect_rejected_with("order.deal", json_pack("{s:s}", "id", "055"), "order.deal.id");
        expect_rejected_with("order.deal", json_pack("{s:i}", "id", 55), "order.deal.id");
        expect_rejected_with("order.deal", json_string("55"), "order.deal");
        expect_rejected_with("order.deal", json_pack("{s:s}", "title", "no id"), "order.deal.id");
}

static void the_site_may_not_use_the_deal_prefix_or_another_site(void **state)
{
        struct snapshot_error err;
        struct snapshot *s = parse_with("order.id", json_string(SNAPSHOT_DEAL_PREFIX "7"));

        assert_int_equal(snapshot_check_from_site(s, NULL, &err), -EINVAL);
        assert_string_equal(err.field, "order.id");
        s = parse_with("site", json_string("other.example"));
        assert_int_equal(snapshot_check_from_site(s, "shop.example", &err), -EINVAL);
        assert_string_equal(err.field, "site");
        assert_int_equal(snapshot_check_from_site(s, NULL, &err), 0);
        assert_int_equal(snapshot_check_from_site(s, "other.example", &err), 0);
}

/* ---- items ---- */

static void a_bad_price_in_the_third_item_names_items_2_price(void **state)
{
        expect_rejected_with("order.items", items_with_bad_third_price(), "order.items[2].price");
}

static void an_item_with_zero_quantity_is_rejected(void **state)
{
        json_t *items =
            json_pack("[{s:s, s:s, s:s}]", "name", "A", "price", "1.00", "quantity", "0");

        expect_rejected_with("order.items", items, "order.items[0].quantity");
}

static void an_item_quantity_that_is_a_number_or_too_precise_is_rejected(void **state)
{
        expect_rejected_with(
            "order.items",
            json_pack("[{s:s, s:s, s:i}]", "name", "A", "price", "1.00", "quantity", 2),
            "order.items[0].quantity");
        expect_rejected_with(
            "order.items",
            json_pack("[{s:s, s:s, s:s}]", "name", "A", "price", "1.00", "quantity", "0.0001"),
            "order.items[0].quantity");
        expect_rejected_with(
            "order.items",
            json_pack("[{s:s, s:s, s:s}]", "name", "A", "price", "1.00", "quantity", "-1"),
            "order.items[0].quantity");
        expect_rejected_with("order.items", json_pack("[{s:s, s:s}]", "name", "A", "price", "1.00"),
                             "order.items[0].quantity");
}

static void a_fractional_quantity_is_kept_in_thousandths(void **state)
{
        struct snapshot *s =
            parse_with("order.items", json_pack("[{s:s, s:s, s:s}]", "name", "Cheese", "price",
                                                "10.00", "quantity", "0.125"));

        assert_int_equal(s->items[0].quantity_milli, 125);
        assert_null(s->items[0].product_id);
}

static void an_item_without_a_name_not_an_object_or_with_a_long_product_id_is_rejected(void **state)
{
        expect_rejected_with("order.items",
                             json_pack("[{s:s, s:s}]", "price", "1.00", "quantity", "1"),
                             "order.items[0].name");
        expect_rejected_with(
            "order.items",
            json_pack("[{s:s, s:s, s:s}, s]", "name", "A", "price", "1.00", "quantity", "1", "B"),
            "order.items[1]");
        expect_rejected_with("order.items",
                             json_pack("[{s:s, s:s, s:s, s:o}]", "name", "A", "price", "1.00",
                                       "quantity", "1", "product_id", string_of('5', 65)),
                             "order.items[0].product_id");
}

static void a_thousand_items_are_accepted_and_1001_rejected(void **state)
{
        struct snapshot *s = parse_with("order.items", items_of(1000));

        assert_int_equal(s->n_items, 1000);
        expect_rejected_with("order.items", items_of(1001), "order.items");
}

static void an_empty_or_null_item_list_is_accepted(void **state)
{
        struct snapshot *s = parse_with("order.items", json_array());

        assert_int_equal(s->n_items, 0);
        s = parse_with("order.items", json_null());
        assert_int_equal(s->n_items, 0);
}

/* ---- buyer ---- */

static void a_buyer_type_other_than_individual_or_legal_is_rejected(void **state)
{
        expect_rejected_with("order.buyer.type", json_string("company"), "order.buyer.type");
        expect_rejected_with("order.buyer.type", json_string("Legal"), "order.buyer.type");
        expect_rejected_with("order.buyer.type", json_string(""), "order.buyer.type");
}

static void a_legal_buyer_keeps_company_and_inn(void **state)
{
        struct snapshot *s;
        struct snapshot_error err;
        json_t *doc = example_doc();

        set_path(doc, "order.buyer.type", json_string("legal"));
        set_path(doc, "order.buyer.company", json_string("OOO Romashka"));
        set_path(doc, "order.buyer.inn", json_string("7707083893"));
        assert_int_equal(parse_doc(doc, &s, &err), 0);
        assert_true(s->buyer.legal);
        assert_string_equal(s->buyer.company, "OOO Romashka");
        assert_string_equal(s->buyer.inn, "7707083893");
}

static void a_buyer_without_a_type_is_an_individual(void **state)
{
        struct snapshot *s = parse_with("order.buyer.type", NULL);

        assert_false(s->buyer.legal);
}

static void an_inn_that_is_not_10_or_12_digits_is_rejected(void **state)
{
        static const char *const bad[] = {"77070838AB", "770708389", "77070838931", "7707083893123",
                                          "7707 83893"};
        struct snapshot *s;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                expect_rejected_with("order.buyer.inn", json_string(bad[i]), "order.buyer.inn");
        s = parse_with("order.buyer.inn", json_string("500100732259"));
        assert_string_equal(s->buyer.inn, "500100732259");
}

static void an_email_without_an_at_sign_is_rejected(void **state)
{
        expect_rejected_with("order.buyer.email", json_string("ivan.example.ru"),
                             "order.buyer.email");
}

static void a_missing_buyer_is_accepted_as_empty(void **state)
{
        struct snapshot *s = parse_with("order.buyer", NULL);

        assert_false(s->buyer.legal);
        assert_null(s->buyer.name);
        assert_null(s->buyer.email);
}

/* ---- the Roistat visit: dropped, never the order ---- */

static void expect_visit_dropped(json_t *visit)
{
        struct snapshot *s = parse_with("order.roistat_visit", visit);

        assert_null(s->roistat_visit);
        assert_true(s->visit_dropped);
        assert_null(strstr(s->json, "roistat_visit"));
}

static void a_visit_with_letters_is_dropped_and_the_order_kept(void **state)
{
        expect_visit_dropped(json_string("abc"));
}

static void a_visit_with_an_sql_injection_is_dropped_and_the_order_kept(void **state)
{
        expect_visit_dropped(json_string("12;DROP"));
}

static void a_visit_of_33_digits_is_dropped_and_32_kept(void **state)
{
        struct snapshot *s;

        expect_visit_dropped(string_of('9', 33));
        s = parse_with("order.roistat_visit", string_of('9', 32));
        assert_int_equal(strlen(s->roistat_visit), 32);
        assert_false(s->visit_dropped);
}

static void a_visit_given_as_a_json_number_is_dropped_and_the_order_kept(void **state)
{
        expect_visit_dropped(json_integer(4521890));
        expect_visit_dropped(json_true());
        expect_visit_dropped(json_object());
}

static void a_visit_with_a_sign_or_spaces_is_dropped(void **state)
{
        expect_visit_dropped(json_string("-4521890"));
        expect_visit_dropped(json_string(" 4521890"));
        expect_visit_dropped(json_string("nocookie"));
}

static void an_absent_null_or_empty_visit_is_simply_absent(void **state)
{
        static const int variants = 3;

        for (int i = 0; i < variants; i++) {
                struct snapshot *s = parse_with("order.roistat_visit", i == 0   ? NULL
                                                                       : i == 1 ? json_null()
                                                                                : json_string(""));
                assert_null(s->roistat_visit);
                assert_false(s->visit_dropped);
        }
}

/* ---- whole bodies ---- */

static void text_that_is_not_json_is_rejected_as_the_body(void **state)
{
        expect_text_rejected("site=shop&order=1", 17, "(body)");
        expect_text_rejected("", 0, "(body)");
        expect_text_rejected("{\"site\":", 8, "(body)");
}

static void a_json_array_or_scalar_is_rejected_as_the_body(void **state)
{
        expect_text_rejected("[]", 2, "(body)");
        expect_text_rejected("[{\"site\":\"s\"}]", 14, "(body)");
        expect_text_rejected("\"order\"", 7, "(body)");
        expect_text_rejected("null", 4, "(body)");
}

static void duplicate_keys_are_rejected(void **state)
{
        static const char text[] =
            "{\"site\":\"s\",\"order\":{\"id\":\"1\",\"id\":\"2\",\"version\":1,\"status\":\"N\","
            "\"created_at\":\"2026-03-13T10:00:00Z\",\"price\":\"1\",\"currency\":\"RUB\"}}";
        struct snapshot_error err;
        struct snapshot *s = NULL;

        assert_int_equal(parse_kept(text, strlen(text), &s, &err), -EINVAL);
        assert_null(s);
        assert_string_equal(err.field, "(body)");
}

static void an_escaped_nul_inside_a_string_is_rejected(void **state)
{
        static const char text[] =
            "{\"site\":\"s\",\"order\":{\"id\":\"1\\u0000x\",\"version\":1,\"status\":\"N\","
            "\"created_at\":\"2026-03-13T10:00:00Z\",\"price\":\"1\",\"currency\":\"RUB\"}}";
        struct snapshot_error err;
        struct snapshot *s = NULL;

        assert_int_equal(parse_kept(text, strlen(text), &s, &err), -EINVAL);
        assert_null(s);
        assert_true(err.field[0] != '\0');
}

static void a_raw_nul_byte_in_the_body_is_rejected(void **state)
{
        static const char text[] = "{\"site\":\"s\0\",\"order\":{}}";
        struct snapshot_error err;
        struct snapshot *s = NULL;

        assert_int_equal(parse_kept(text, sizeof(text) - 1, &s, &err), -EINVAL);
        assert_null(s);
        assert_string_equal(err.field, "(body)");
}

static void only_len_bytes_of_the_text_are_read(void **state)
{
        /* the example followed by junk that is not part of the body */
        size_t n = strlen(example);
        char text[sizeof(example) + 8];
        struct snapshot_error err;
        struct snapshot *s = NULL;

        memcpy(text, example, n);
        memcpy(text + n, "garbage", 8);
        assert_int_equal(parse_kept(text, n, &s, &err), 0);
        assert_string_equal(s->order_id, "123");
}

static void invalid_utf8_is_rejected_as_the_body(void **state)
{
        static const char text[] = "{\"site\":\"\xff\xfe\",\"order\":{}}";

        expect_text_rejected(text, sizeof(text) - 1, "(body)");
}

static void snapshot_free_accepts_null_and_returns_null(void **state)
{
        assert_null(snapshot_free(NULL));
}

/* ---- ordering ---- */

static struct snapshot *with_order(json_t *version, const char *updated_at)
{
        struct snapshot_error err;
        struct snapshot *s = NULL;
        json_t *doc = example_doc();

        set_path(doc, "order.version", version);
        set_path(doc, "order.updated_at", updated_at ? json_string(updated_at) : NULL);
        if (parse_doc(doc, &s, &err) != 0)
                fail_msg("with_order: %s %s", err.field, err.message);
        return s;
}

/* The README's table ("Which snapshot is newer"), written out: incoming × stored, each
 * with `version` only, `updated_at` only or both, the deciding key the same, greater or
 * smaller. Every row is judged both ways round, each way with its own expectation from the
 * table, so a rule that is made symmetric (or drops the no-common-key case) is seen. */
#define V(v) {true, v, false, 0}
#define U(t) {false, 0, true, t}
#define VU(v, t) {true, v, true, t}

static void the_readme_ordering_table_holds_both_ways_round(void **state)
{
        static const struct {
                const char *why;
                struct snapshot_order_key a, b;
                bool a_replaces_b, b_replaces_a;
        } table[] = {
            {"version only, greater", V(5), V(4), true, false},
            {"version only, the same", V(4), V(4), false, false},
            {"updated_at only, greater", U(1001), U(1000), true, false},
            {"updated_at only, the same", U(1000), U(1000), false, false},
            {"both: version decides", VU(5, 1000), VU(4, 1000), true, false},
            {"both: version decides against the time", VU(5, 1000), VU(4, 2000), true, false},
            {"both: equal version, later time", VU(4, 2000), VU(4, 1000), false, false},
            {"both: the same", VU(4, 1000), VU(4, 1000), false, false},
            {"version only vs both: version greater", V(5), VU(4, 1000), true, false},
            {"version only vs both: version the same", V(4), VU(4, 1000), false, false},
            {"version only vs both: version smaller", V(3), VU(4, 1000), false, true},
            {"updated_at only vs both: time greater", U(1001), VU(4, 1000), true, false},
            {"updated_at only vs both: time the same", U(1000), VU(4, 1000), false, false},
            {"updated_at only vs both: time smaller", U(999), VU(9, 1000), false, true},
            {"no common key: version greater than time", V(2000), U(1000), true, true},
            {"no common key: version equal to time", V(1000), U(1000), true, true},
            {"no common key: version smaller than time", V(5), U(1000), true, true},
        };

        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
                bool ab = snapshot_order_is_newer(&table[i].a, &table[i].b);
                bool ba = snapshot_order_is_newer(&table[i].b, &table[i].a);
                if (ab != table[i].a_replaces_b || ba != table[i].b_replaces_a)
                        fail_msg("row %zu (%s): a over b %s (want %s), b over a %s (want %s)", i,
                                 table[i].why, ab ? "newer" : "stale",
                                 table[i].a_replaces_b ? "newer" : "stale",
                                 ba ? "newer" : "stale", table[i].b_replaces_a ? "newer" : "stale");
        }
}

static void a_higher_version_is_newer_whatever_the_times_say(void **state)
{
        struct snapshot *v4 = with_order(json_integer(4), "2026-03-13T10:05:00+03:00");
        struct snapshot *v5 = with_order(json_integer(5), "2026-03-13T10:01:00+03:00");

        assert_true(snapshot_is_newer(v5, v4));
        assert_false(snapshot_is_newer(v4, v5));
}

static void an_equal_version_is_not_newer_even_with_a_later_time(void **state)
{
        struct snapshot *a = with_order(json_integer(4), "2026-03-13T10:05:00+03:00");
        struct snapshot *b = with_order(json_integer(4), "2026-03-13T11:00:00+03:00");

        assert_false(snapshot_is_newer(a, b));
        assert_false(snapshot_is_newer(b, a));
}

static void without_versions_the_later_updated_at_is_newer(void **state)
{
        struct snapshot *early = with_order(NULL, "2026-03-13T10:05:00+03:00");
        struct snapshot *late = with_order(NULL, "2026-03-13T10:05:01+03:00");
        struct snapshot *same = with_order(NULL, "2026-03-13T07:05:00Z");

        assert_true(snapshot_is_newer(late, early));
        assert_false(snapshot_is_newer(early, late));
        assert_false(snapshot_is_newer(same, early));
}

static void with_a_version_on_one_side_only_updated_at_decides(void **state)
{
        struct snapshot *v = with_order(json_integer(9), "2026-03-13T10:05:00+03:00");
        struct snapshot *t = with_order(NULL, "2026-03-13T10:06:00+03:00");

        assert_true(snapshot_is_newer(t, v));
        assert_false(snapshot_is_newer(v, t));
}

/* The case: the site moved from updated_at-only to version-only snapshots (or
 * back); the first snapshot in the new keying replaces the stored one, whatever order. */
static void with_no_key_in_common_the_incoming_snapshot_is_newer(void **state)
{
        struct snapshot *v = with_order(json_integer(1), NULL);
        struct snapshot *t = with_order(NULL, "2026-03-13T10:06:00+03:00");

        assert_true(snapshot_is_newer(v, t));
        assert_true(snapshot_is_newer(t, v));
}

/* ---- ISO 8601 ---- */

static void iso8601_with_z_is_utc(void **state)
{
        assert_int_equal(iso("2026-03-13T07:00:00Z"), EXAMPLE_CREATED_AT);
        assert_int_equal(iso("1970-01-01T00:00:00Z"), 0);
}

static void iso8601_with_a_colon_offset_is_converted_to_utc(void **state)
{
        assert_int_equal(iso("2026-03-13T10:00:00+03:00"), EXAMPLE_CREATED_AT);
        assert_int_equal(iso("2026-03-13T02:00:00-05:00"), EXAMPLE_CREATED_AT);
        assert_int_equal(iso("2026-03-13T12:30:00+05:30"), EXAMPLE_CREATED_AT);
}

static void iso8601_with_a_compact_offset_is_converted_to_utc(void **state)
{
        assert_int_equal(iso("2026-03-13T10:00:00+0300"), EXAMPLE_CREATED_AT);
        assert_int_equal(iso("2026-03-13T07:00:00+0000"), EXAMPLE_CREATED_AT);
}

static void iso8601_fractional_seconds_are_truncated(void **state)
{
        assert_int_equal(iso("2026-03-13T10:00:00.999+03:00"), EXAMPLE_CREATED_AT);
        assert_int_equal(iso("2026-03-13T07:00:00.123456789Z"), EXAMPLE_CREATED_AT);
        expect_iso_rejected("2026-03-13T07:00:00.Z");
        expect_iso_rejected("2026-03-13T07:00:00.1234567890Z");
}

static void iso8601_with_a_space_instead_of_t_is_accepted(void **state)
{
        assert_int_equal(iso("2026-03-13 10:00:00+03:00"), EXAMPLE_CREATED_AT);
}

static void iso8601_without_an_offset_is_rejected_as_ambiguous(void **state)
{
        expect_iso_rejected("2026-03-13T10:00:00");
        expect_iso_rejected("2026-03-13T10:00:00.5");
        expect_iso_rejected("2026-03-13");
}

static void iso8601_february_29_exists_only_in_leap_years(void **state)
{
        assert_int_equal(iso("2024-02-29T00:00:00Z"), 1709164800);
        assert_int_equal(iso("2000-02-29T12:34:56Z"), 951827696); /* divisible by 400 */
        expect_iso_rejected("2026-02-29T00:00:00Z");
        expect_iso_rejected("2100-02-29T00:00:00Z"); /* divisible by 100, not 400 */
        expect_iso_rejected("2024-02-30T00:00:00Z");
}

static void iso8601_out_of_range_parts_are_rejected(void **state)
{
        expect_iso_rejected("2026-13-01T00:00:00Z");
        expect_iso_rejected("2026-00-01T00:00:00Z");
        expect_iso_rejected("2026-04-31T00:00:00Z");
        expect_iso_rejected("2026-01-00T00:00:00Z");
        expect_iso_rejected("2026-01-01T24:00:00Z");
        expect_iso_rejected("2026-01-01T00:60:00Z");
        expect_iso_rejected("2026-01-01T00:00:61Z");
        expect_iso_rejected("2026-01-01T00:00:00+24:00");
        expect_iso_rejected("2026-01-01T00:00:00+03:60");
}

static void iso8601_before_1970_is_rejected(void **state)
{
        expect_iso_rejected("1969-12-31T23:59:59Z");
}

static void iso8601_malformed_text_is_rejected(void **state)
{
        static const char *const bad[] = {
            "",
            "2026-3-13T10:00:00Z",
            "2026-03-13T10:00Z",
            "2026-03-13t10:00:00Z",
            "2026-03-13T10:00:00z",
            "2026-03-13T10:00:00+03",
            "2026-03-13T10:00:00+3:00",
            "2026-03-13T10:00:00Z ",
            " 2026-03-13T10:00:00Z",
            "2026-03-13T10:00:00ZZ",
            "2026/03/13T10:00:00Z",
            "1773385200",
            "2026-03-13T10:00:00+03:00\n",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                expect_iso_rejected(bad[i]);
}

static void iso8601_format_writes_utc_with_z(void **state)
{
        char buf[32];

        iso8601_format(EXAMPLE_CREATED_AT, buf, sizeof(buf));
        assert_string_equal(buf, "2026-03-13T07:00:00Z");
        iso8601_format(0, buf, sizeof(buf));
        assert_string_equal(buf, "1970-01-01T00:00:00Z");
        assert_int_equal(iso(buf), 0);
}

static void a_created_at_without_offset_names_the_field(void **state)
{
        expect_rejected_with("order.created_at", json_string("2026-03-13T10:00:00"),
                             "order.created_at");
        expect_rejected_with("order.updated_at", json_string("2026-02-29T10:00:00Z"),
                             "order.updated_at");
}

#define T(name) cmocka_unit_test_teardown(name, teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
            T(the_design_example_parses_with_every_field),
            T(the_design_example_buyer_is_an_individual_with_contacts),
            T(the_design_example_has_one_item_of_two_kettles),
            T(the_canonical_json_of_the_example_is_compact_sorted_and_in_utc),
            T(the_canonical_json_reparses_to_the_same_canonical_json),
            T(the_canonical_json_keeps_money_as_two_decimal_strings),
            T(an_unknown_member_is_refused_at_every_level_by_its_path),
            T(every_new_optional_field_is_read),
            T(the_new_fields_are_in_the_canonical_json_sorted_and_reparse_the_same),
            T(lid_and_person_type_are_1_to_16_id_characters),
            T(a_comment_of_1000_bytes_with_line_breaks_is_accepted_and_1001_rejected),
            T(an_item_base_price_below_its_price_or_not_money_is_rejected),
            T(a_delivery_needs_a_price_and_a_base_price_not_below_it),
            T(discount_and_sum_paid_are_money),
            T(twenty_coupons_of_64_bytes_are_accepted_and_more_or_longer_rejected),
            T(payments_are_at_most_20_each_with_a_name_a_sum_and_a_flag),
            T(each_utm_member_is_text_of_at_most_255_bytes),
            T(properties_are_at_most_100_codes_of_50_with_values_of_1000),
            T(account_number_defaults_to_the_order_id),
            T(a_cost_is_read_as_money_when_present),
            T(each_missing_required_field_is_rejected_by_name),
            T(each_required_field_given_as_null_is_rejected_by_name),
            T(each_required_text_field_given_empty_is_rejected_by_name),
            T(neither_version_nor_updated_at_is_rejected_naming_version),
            T(version_alone_orders_the_snapshot),
            T(updated_at_alone_orders_the_snapshot),
            T(a_price_given_as_a_json_number_is_rejected),
            T(each_field_of_the_wrong_json_type_is_rejected_by_name),
            T(a_version_that_is_not_a_non_negative_integer_is_rejected),
            T(a_version_of_zero_and_of_two_to_the_53_are_accepted),
            T(canceled_and_paid_flags_are_read),
            T(an_order_id_with_unsafe_characters_is_rejected),
            T(an_order_id_of_letters_digits_dash_and_underscore_is_accepted),
            T(an_order_id_of_64_characters_is_accepted_and_65_is_rejected),
            T(a_status_code_that_is_not_an_identifier_is_rejected),
            T(a_deal_snapshot_keeps_its_stage_id_and_deal_in_canonical_json),
            T(a_deal_that_is_not_digits_is_rejected),
            T(the_site_may_not_use_the_deal_prefix_or_another_site),
            T(text_with_a_control_character_is_rejected),
            T(text_over_its_limit_is_rejected),
            T(a_currency_that_is_not_three_capital_letters_is_rejected),
            T(an_order_price_outside_the_money_grammar_is_rejected),
            T(a_zero_price_is_accepted),
            T(a_bad_price_in_the_third_item_names_items_2_price),
            T(an_item_with_zero_quantity_is_rejected),
            T(an_item_quantity_that_is_a_number_or_too_precise_is_rejected),
            T(a_fractional_quantity_is_kept_in_thousandths),
            T(an_item_without_a_name_not_an_object_or_with_a_long_product_id_is_rejected),
            T(a_thousand_items_are_accepted_and_1001_rejected),
            T(an_empty_or_null_item_list_is_accepted),
            T(a_buyer_type_other_than_individual_or_legal_is_rejected),
            T(a_legal_buyer_keeps_company_and_inn),
            T(a_buyer_without_a_type_is_an_individual),
            T(an_inn_that_is_not_10_or_12_digits_is_rejected),
            T(an_email_without_an_at_sign_is_rejected),
            T(a_missing_buyer_is_accepted_as_empty),
            T(a_visit_with_letters_is_dropped_and_the_order_kept),
            T(a_visit_with_an_sql_injection_is_dropped_and_the_order_kept),
            T(a_visit_of_33_digits_is_dropped_and_32_kept),
            T(a_visit_given_as_a_json_number_is_dropped_and_the_order_kept),
            T(a_visit_with_a_sign_or_spaces_is_dropped),
            T(an_absent_null_or_empty_visit_is_simply_absent),
            T(text_that_is_not_json_is_rejected_as_the_body),
            T(a_json_array_or_scalar_is_rejected_as_the_body),
            T(duplicate_keys_are_rejected),
            T(an_escaped_nul_inside_a_string_is_rejected),
            T(a_raw_nul_byte_in_the_body_is_rejected),
            T(only_len_bytes_of_the_text_are_read),
            T(invalid_utf8_is_rejected_as_the_body),
            T(snapshot_free_accepts_null_and_returns_null),
            T(a_higher_version_is_newer_whatever_the_times_say),
            T(an_equal_version_is_not_newer_even_with_a_later_time),
            T(without_versions_the_later_updated_at_is_newer),
            T(with_a_version_on_one_side_only_updated_at_decides),
            T(with_no_key_in_common_the_incoming_snapshot_is_newer),
            T(the_readme_ordering_table_holds_both_ways_round),
            T(iso8601_with_z_is_utc),
            T(iso8601_with_a_colon_offset_is_converted_to_utc),
            T(iso8601_with_a_compact_offset_is_converted_to_utc),
            T(iso8601_fractional_seconds_are_truncated),
            T(iso8601_with_a_space_instead_of_t_is_accepted),
            T(iso8601_without_an_offset_is_rejected_as_ambiguous),
            T(iso8601_february_29_exists_only_in_leap_years),
            T(iso8601_out_of_range_parts_are_rejected),
            T(iso8601_before_1970_is_rejected),
            T(iso8601_malformed_text_is_rejected),
            T(iso8601_format_writes_utc_with_z),
            T(a_created_at_without_offset_names_the_field),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
