/*
 * The pure parts of the Bitrix24 source: a crm.deal.list row (as the portal answers it,
 * b24restdocs crm-deal-list.md: every value a string, times in the portal's zone) → the
 * deal of a site order or the snapshot "b24-deal-<ID>"; the version that keeps two
 * changes in one second in order; "nothing new" when only the version would differ;
 * the portal's offset kept when a time is written back to it.
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
#include "sources/b24_deal.h"

#define SITE "shop.example.ru"
#define FIELD "UF_CRM_ROISTAT"
/* 2026-03-13T10:05:00+03:00 */
#define MODIFIED 1773385500LL

/* A call deal as crm.deal.list returns it with the source's select. */
static const char call_deal[] =
    "{\"ID\":\"662\",\"TITLE\":\"Call from +7 900 111-22-33\",\"STAGE_ID\":\"C1:NEW\","
    "\"STAGE_SEMANTIC_ID\":\"P\",\"CATEGORY_ID\":\"1\",\"OPPORTUNITY\":\"1500.50\","
    "\"CURRENCY_ID\":\"RUB\",\"DATE_CREATE\":\"2026-03-13T10:00:00+03:00\","
    "\"DATE_MODIFY\":\"2026-03-13T10:05:00+03:00\",\"ORIGINATOR_ID\":null,\"ORIGIN_ID\":null,"
    "\"UF_CRM_ROISTAT\":\"4521890\"}";

static json_t *row_with(const char *key, json_t *value)
{
        json_t *row = json_loads(call_deal, 0, NULL);

        assert_non_null(row);
        if (key && value)
                json_object_set_new(row, key, value);
        else if (key)
                json_object_del(row, key);
        return row;
}

/* The snapshot of `row` at `version`, which must parse; the row is consumed. */
static struct snapshot *snapshot_of(json_t *row, int64_t version)
{
        struct snapshot_error err;
        struct snapshot *s = NULL;
        int r = b24_deal_snapshot(row, SITE, FIELD, version, &s, &err);

        json_decref(row);
        if (r != 0)
                fail_msg("want a snapshot, got %d: %s %s", r, err.field, err.message);
        return s;
}

static void a_call_deal_becomes_order_b24_deal_id_with_its_amount_and_visit(void **state)
{
        struct snapshot *s = snapshot_of(row_with(NULL, NULL), MODIFIED * 1000);

        assert_string_equal(s->site, SITE);
        assert_string_equal(s->order_id, "b24-deal-662");
        assert_string_equal(s->status, "C1:NEW");
        assert_false(s->canceled);
        assert_false(s->paid);
        assert_int_equal(s->price_minor, 150050);
        assert_string_equal(s->currency, "RUB");
        assert_string_equal(s->roistat_visit, "4521890");
        assert_string_equal(s->deal_id, "662");
        assert_string_equal(s->deal_title, "Call from +7 900 111-22-33");
        assert_int_equal(s->created_at, 1773385200LL);
        assert_true(s->has_updated_at);
        assert_int_equal(s->updated_at, MODIFIED);
        assert_true(s->has_version);
        assert_int_equal(s->version, MODIFIED * 1000);
        assert_int_equal(s->n_items, 0);
        snapshot_free(s);
}

static void a_failed_stage_is_canceled_and_a_successful_one_paid(void **state)
{
        struct snapshot *s = snapshot_of(row_with("STAGE_SEMANTIC_ID", json_string("F")), 1);

        assert_true(s->canceled);
        assert_false(s->paid);
        snapshot_free(s);
        s = snapshot_of(row_with("STAGE_SEMANTIC_ID", json_string("S")), 1);
        assert_false(s->canceled);
        assert_true(s->paid);
        snapshot_free(s);
        s = snapshot_of(row_with("STAGE_SEMANTIC_ID", NULL), 1);
        assert_false(s->canceled || s->paid);
        snapshot_free(s);
}

static void the_visit_is_taken_only_when_it_is_digits(void **state)
{
        static const char *const bad[] = {"", "45x", "-1", "123456789012345678901234567890123"};
        struct snapshot *s;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                s = snapshot_of(row_with(FIELD, json_string(bad[i])), 1);
                if (s->roistat_visit)
                        fail_msg("visit \"%s\" was taken as %s", bad[i], s->roistat_visit);
                assert_false(s->visit_dropped);
                snapshot_free(s);
        }
        s = snapshot_of(row_with(FIELD, json_integer(77)), 1);
        assert_string_equal(s->roistat_visit, "77");
        snapshot_free(s);
        s = snapshot_of(row_with(FIELD, json_pack("[s]", "77")), 1);
        assert_null(s->roistat_visit);
        snapshot_free(s);
}

static void a_deal_without_a_currency_or_amount_is_refused_naming_the_field(void **state)
{
        static const struct {
                const char *key;
                json_t *(*value)(void);
                const char *field, *deal_field;
        } cases[] = {
            {"CURRENCY_ID", json_null, "order.currency", "CURRENCY_ID"},
            {"OPPORTUNITY", json_null, "order.price", "OPPORTUNITY"},
            {"DATE_CREATE", json_null, "order.created_at", "DATE_CREATE"},
            {"STAGE_ID", json_null, "order.status", "STAGE_ID"},
        };
        struct snapshot_error err;
        struct snapshot *s = NULL;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                json_t *row = row_with(cases[i].key, cases[i].value());
                int r = b24_deal_snapshot(row, SITE, FIELD, 1, &s, &err);
                json_decref(row);
                assert_int_equal(r, -EINVAL);
                assert_string_equal(err.field, cases[i].field);
                if (!strstr(err.message, cases[i].deal_field))
                        fail_msg("%s: the message does not name %s: %s", cases[i].field,
                                 cases[i].deal_field, err.message);
        }
        assert_null(s);
}

static void a_long_title_is_cut_whole_characters_and_control_characters_blanked(void **state)
{
        char title[400];
        struct snapshot *s;
        size_t n = 0;

        /* "Ж" is two bytes: after 254 ASCII bytes, a cut at 255 would halve it */
        memset(title, 'a', 254);
        n = 254;
        memcpy(title + n, "Ж\nЖ", 5);
        n += 5;
        title[n] = '\0';
        s = snapshot_of(row_with("TITLE", json_string(title)), 1);
        assert_int_equal(strlen(s->deal_title), 254);
        snapshot_free(s);
        s = snapshot_of(row_with("TITLE", json_string("a\nb\tc")), 1);
        assert_string_equal(s->deal_title, "a b c");
        snapshot_free(s);
}

static void a_row_is_placed_by_its_id_and_date_modify(void **state)
{
        struct snapshot_error err;
        struct b24_deal d;
        json_t *row = row_with(NULL, NULL);

        assert_int_equal(b24_deal_read(row, &d, &err), 0);
        assert_string_equal(d.id, "662");
        assert_int_equal(d.modified, MODIFIED);
        assert_string_equal(d.date_modify, "2026-03-13T10:05:00+03:00");
        assert_null(d.originator_id);
        json_decref(row);
        row = row_with("DATE_MODIFY", json_string("2026-03-13 10:05:00"));
        assert_int_equal(b24_deal_read(row, &d, &err), -EINVAL);
        assert_string_equal(err.field, "DATE_MODIFY");
        json_decref(row);
        row = row_with("ID", json_string("0662"));
        assert_int_equal(b24_deal_read(row, &d, &err), -EINVAL);
        assert_string_equal(err.field, "ID");
        json_decref(row);
        row = row_with("ID", json_integer(663));
        assert_int_equal(b24_deal_read(row, &d, &err), 0);
        assert_string_equal(d.id, "663");
        json_decref(row);
}

static void deal_ids_are_one_to_eighteen_digits(void **state)
{
        assert_true(b24_deal_id_valid("1"));
        assert_true(b24_deal_id_valid("123456789012345678"));
        assert_false(b24_deal_id_valid("1234567890123456789"));
        assert_false(b24_deal_id_valid(""));
        assert_false(b24_deal_id_valid("0"));
        assert_false(b24_deal_id_valid("07"));
        assert_false(b24_deal_id_valid("7 "));
        assert_false(b24_deal_id_valid("-7"));
}

static void only_our_originator_with_an_origin_is_a_site_deal(void **state)
{
        struct b24_deal d = {.id = "5", .originator_id = SITE, .origin_id = "123"};

        assert_true(b24_deal_from_site(&d, SITE));
        assert_false(b24_deal_from_site(&d, "other.example"));
        assert_false(b24_deal_from_site(&d, NULL));
        d.origin_id = NULL;
        assert_false(b24_deal_from_site(&d, SITE));
        d.origin_id = "123";
        d.originator_id = NULL;
        assert_false(b24_deal_from_site(&d, SITE));
}

static void the_select_names_the_roistat_field(void **state)
{
        json_t *a = b24_deal_select(FIELD), *b = b24_deal_select("");
        char *text = json_dumps(a, JSON_COMPACT);

        assert_int_equal(json_array_size(a), json_array_size(b) + 1);
        assert_non_null(strstr(text, "\"UF_CRM_ROISTAT\""));
        assert_non_null(strstr(text, "\"STAGE_SEMANTIC_ID\""));
        assert_non_null(strstr(text, "\"DATE_MODIFY\""));
        free(text);
        json_decref(a);
        json_decref(b);
}

/* --- what a re-read says ---------------------------------------------------------------- */

static void a_new_deal_is_sent_at_date_modify_in_ms(void **state)
{
        struct snapshot *s = snapshot_of(row_with(NULL, NULL), 1);
        int64_t v = 0;

        assert_int_equal(b24_deal_compare(s, NULL, &v), B24_DEAL_NEW);
        assert_int_equal(v, MODIFIED * 1000);
        snapshot_free(s);
}

static void a_reread_that_differs_only_in_version_is_the_same(void **state)
{
        struct snapshot *stored = snapshot_of(row_with(NULL, NULL), MODIFIED * 1000 + 3);
        struct snapshot *again = snapshot_of(row_with(NULL, NULL), MODIFIED * 1000);
        int64_t v = 0;

        assert_int_equal(b24_deal_compare(again, stored->json, &v), B24_DEAL_SAME);
        snapshot_free(stored);
        snapshot_free(again);
}

static void a_change_is_sent_at_date_modify_or_after_the_stored_version(void **state)
{
        /* stored at an earlier second: DATE_MODIFY in ms wins */
        json_t *earlier = row_with("DATE_MODIFY", json_string("2026-03-13T10:04:00+03:00"));
        struct snapshot *stored = snapshot_of(earlier, (MODIFIED - 60) * 1000);
        struct snapshot *moved = snapshot_of(row_with("STAGE_ID", json_string("C1:WON")), 1);
        int64_t v = 0;

        assert_int_equal(b24_deal_compare(moved, stored->json, &v), B24_DEAL_CHANGED);
        assert_int_equal(v, MODIFIED * 1000);
        snapshot_free(stored);
        /* two changes in one second: the second goes after the first */
        stored = snapshot_of(row_with(NULL, NULL), MODIFIED * 1000 + 1);
        assert_int_equal(b24_deal_compare(moved, stored->json, &v), B24_DEAL_CHANGED);
        assert_int_equal(v, MODIFIED * 1000 + 2);
        snapshot_free(stored);
        snapshot_free(moved);
}

static void a_read_older_than_the_stored_snapshot_is_not_sent(void **state)
{
        struct snapshot *stored =
            snapshot_of(row_with("DATE_MODIFY", json_string("2026-03-13T10:06:00+03:00")), 1);
        struct snapshot *stale = snapshot_of(row_with("OPPORTUNITY", json_string("1.00")), 1);
        int64_t v = 0;

        assert_int_equal(b24_deal_compare(stale, stored->json, &v), B24_DEAL_OLDER);
        snapshot_free(stored);
        snapshot_free(stale);
}

static void a_stored_text_that_does_not_parse_is_replaced(void **state)
{
        struct snapshot *s = snapshot_of(row_with(NULL, NULL), 1);
        int64_t v = 0;

        assert_int_equal(b24_deal_compare(s, "not json", &v), B24_DEAL_CHANGED);
        assert_int_equal(v, MODIFIED * 1000);
        snapshot_free(s);
}

/* --- the portal's offset ------------------------------------------------------------------ */

static void a_time_keeps_its_offset_when_written_back(void **state)
{
        static const struct {
                const char *text;
                int offset;
        } cases[] = {
            {"2024-08-30T12:19:57+02:00", 7200},     {"2024-08-30T12:19:57-05:30", -19800},
            {"2024-08-30T12:19:57+0300", 10800},     {"2024-08-30T12:19:57Z", 0},
            {"2024-08-30T12:19:57.25+03:00", 10800},
        };
        char buf[40];
        int64_t t, back;
        int off = 99;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                assert_int_equal(iso8601_offset(cases[i].text, &off), 0);
                assert_int_equal(off, cases[i].offset);
                assert_int_equal(iso8601_parse(cases[i].text, &t), 0);
                iso8601_format_offset(t, off, buf, sizeof(buf));
                assert_int_equal(iso8601_parse(buf, &back), 0);
                assert_int_equal(back, t);
        }
        iso8601_format_offset(1725013197, 7200, buf, sizeof(buf));
        assert_string_equal(buf, "2024-08-30T12:19:57+02:00");
        iso8601_format_offset(1725013197, -19800, buf, sizeof(buf));
        assert_string_equal(buf, "2024-08-30T04:49:57-05:30");
        off = 99;
        assert_int_equal(iso8601_offset("2024-08-30 12:19:57", &off), -EINVAL);
        assert_int_equal(off, 99);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(a_call_deal_becomes_order_b24_deal_id_with_its_amount_and_visit),
            cmocka_unit_test(a_failed_stage_is_canceled_and_a_successful_one_paid),
            cmocka_unit_test(the_visit_is_taken_only_when_it_is_digits),
            cmocka_unit_test(a_deal_without_a_currency_or_amount_is_refused_naming_the_field),
            cmocka_unit_test(a_long_title_is_cut_whole_characters_and_control_characters_blanked),
            cmocka_unit_test(a_row_is_placed_by_its_id_and_date_modify),
            cmocka_unit_test(deal_ids_are_one_to_eighteen_digits),
            cmocka_unit_test(only_our_originator_with_an_origin_is_a_site_deal),
            cmocka_unit_test(the_select_names_the_roistat_field),
            cmocka_unit_test(a_new_deal_is_sent_at_date_modify_in_ms),
            cmocka_unit_test(a_reread_that_differs_only_in_version_is_the_same),
            cmocka_unit_test(a_change_is_sent_at_date_modify_or_after_the_stored_version),
            cmocka_unit_test(a_read_older_than_the_stored_snapshot_is_not_sent),
            cmocka_unit_test(a_stored_text_that_does_not_parse_is_replaced),
            cmocka_unit_test(a_time_keeps_its_offset_when_written_back),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
