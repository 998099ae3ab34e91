/*
 * Money and quantities: decimal strings on the wire, integers inside. The grammar is
 * narrow on purpose (digits, optionally '.' and 1..scale digits), so every test below is
 * either an exact value or a rejection with the reason (-EINVAL: not our grammar,
 * -ERANGE: above the limit).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "model/money.h"

#define UNTOUCHED 0x5a5a5a5a5a5a5a5aLL

/* Parses `text` as money and checks it gives `want` minor units. */
static void expect_money(const char *text, int64_t want)
{
        int64_t v = UNTOUCHED;
        int r = money_parse(text, &v);

        if (r != 0 || v != want)
                fail_msg("money_parse(\"%s\"): want 0 and %lld, got %d and %lld", text,
                         (long long)want, r, (long long)v);
}

/* Checks that `text` is refused with `want_errno` and the out-parameter is untouched. */
static void expect_money_rejected(const char *text, int want_errno)
{
        int64_t v = UNTOUCHED;
        int r = money_parse(text, &v);

        if (r != -want_errno || v != UNTOUCHED)
                fail_msg("money_parse(\"%s\"): want -%d and untouched, got %d and %lld", text,
                         want_errno, r, (long long)v);
}

static void expect_quantity(const char *text, int64_t want)
{
        int64_t v = UNTOUCHED;
        int r = quantity_parse(text, &v);

        if (r != 0 || v != want)
                fail_msg("quantity_parse(\"%s\"): want 0 and %lld, got %d and %lld", text,
                         (long long)want, r, (long long)v);
}

static void expect_quantity_rejected(const char *text, int want_errno)
{
        int64_t v = UNTOUCHED;
        int r = quantity_parse(text, &v);

        if (r != -want_errno || v != UNTOUCHED)
                fail_msg("quantity_parse(\"%s\"): want -%d and untouched, got %d and %lld", text,
                         want_errno, r, (long long)v);
}

static void expect_money_text(int64_t minor, const char *want)
{
        char buf[32];

        memset(buf, 'x', sizeof(buf));
        money_format(minor, buf, sizeof(buf));
        if (strcmp(buf, want) != 0)
                fail_msg("money_format(%lld): want \"%s\", got \"%s\"", (long long)minor, want,
                         buf);
}

static void expect_quantity_text(int64_t milli, const char *want)
{
        char buf[32];

        memset(buf, 'x', sizeof(buf));
        quantity_format(milli, buf, sizeof(buf));
        if (strcmp(buf, want) != 0)
                fail_msg("quantity_format(%lld): want \"%s\", got \"%s\"", (long long)milli, want,
                         buf);
}

/* ---- money_parse: accepted forms ---- */

static void money_with_two_decimals_becomes_minor_units(void **state)
{
        expect_money("4990.00", 499000);
        expect_money("2495.00", 249500);
        expect_money("0.01", 1);
        expect_money("12.34", 1234);
}

static void money_zero_is_zero(void **state)
{
        expect_money("0", 0);
        expect_money("0.0", 0);
        expect_money("0.00", 0);
}

static void money_with_one_decimal_is_scaled_to_kopecks(void **state)
{
        expect_money("0.5", 50);
        expect_money("10.1", 1010);
}

static void money_without_decimals_is_whole_roubles(void **state)
{
        expect_money("1", 100);
        expect_money("4990", 499000);
}

static void money_with_leading_zeros_is_read_as_decimal_not_octal(void **state)
{
        expect_money("007", 700);
        expect_money("010.50", 1050);
}

static void money_exactly_at_the_maximum_is_accepted(void **state)
{
        /* MONEY_MAX_MINOR = 10^13 minor units = "100000000000.00" */
        expect_money("100000000000.00", MONEY_MAX_MINOR);
        expect_money("100000000000", MONEY_MAX_MINOR);
}

/* ---- money_parse: rejected forms ---- */

static void money_with_three_decimals_is_rejected(void **state)
{
        expect_money_rejected("1.234", EINVAL);
        expect_money_rejected("0.001", EINVAL);
        expect_money_rejected("4990.000", EINVAL);
}

static void money_with_a_sign_is_rejected(void **state)
{
        expect_money_rejected("-1", EINVAL);
        expect_money_rejected("+1", EINVAL);
        expect_money_rejected("-0", EINVAL);
        expect_money_rejected("-0.50", EINVAL);
}

static void money_with_surrounding_spaces_is_rejected(void **state)
{
        expect_money_rejected(" 1", EINVAL);
        expect_money_rejected("1 ", EINVAL);
        expect_money_rejected("1\n", EINVAL);
        expect_money_rejected("\t1", EINVAL);
        expect_money_rejected("1 000", EINVAL);
}

static void money_in_exponent_hex_or_locale_notation_is_rejected(void **state)
{
        expect_money_rejected("1e3", EINVAL);
        expect_money_rejected("1E3", EINVAL);
        expect_money_rejected("0x10", EINVAL);
        expect_money_rejected("1,5", EINVAL);
        expect_money_rejected("1_000", EINVAL);
        expect_money_rejected("inf", EINVAL);
        expect_money_rejected("NaN", EINVAL);
}

static void money_with_a_missing_whole_or_fraction_part_is_rejected(void **state)
{
        expect_money_rejected(".5", EINVAL);
        expect_money_rejected("5.", EINVAL);
        expect_money_rejected(".", EINVAL);
        expect_money_rejected("1..5", EINVAL);
        expect_money_rejected("1.5.0", EINVAL);
}

static void money_empty_or_null_is_rejected(void **state)
{
        int64_t v = UNTOUCHED;

        expect_money_rejected("", EINVAL);
        assert_int_equal(money_parse(NULL, &v), -EINVAL);
        assert_true(v == UNTOUCHED);
}

static void money_one_kopeck_above_the_maximum_is_out_of_range(void **state)
{
        expect_money_rejected("100000000000.01", ERANGE);
        expect_money_rejected("100000000001", ERANGE);
}

static void money_with_twenty_or_more_digits_is_out_of_range_not_wrapped(void **state)
{
        expect_money_rejected("99999999999999999999", ERANGE);
        expect_money_rejected("18446744073709551617", ERANGE); /* 2^64 + 1 */
        expect_money_rejected("9223372036854775808.00", ERANGE);
        expect_money_rejected("1000000000000000000000000000000000000000.00", ERANGE);
}

static void money_with_garbage_after_a_huge_number_is_invalid_not_out_of_range(void **state)
{
        /* the whole string is validated even once the value is known to be too large */
        expect_money_rejected("99999999999999999999x", EINVAL);
        expect_money_rejected("99999999999999999999.123", EINVAL);
}

/* ---- decimal_parse with a caller's limit ---- */

static void decimal_with_scale_zero_accepts_only_integers(void **state)
{
        int64_t v = UNTOUCHED;

        assert_int_equal(decimal_parse("42", 0, 100, &v), 0);
        assert_true(v == 42);
        v = UNTOUCHED;
        assert_int_equal(decimal_parse("4.2", 0, 100, &v), -EINVAL);
        assert_true(v == UNTOUCHED);
}

static void decimal_exactly_at_a_caller_limit_is_accepted_and_one_above_is_not(void **state)
{
        int64_t v = UNTOUCHED;

        assert_int_equal(decimal_parse("1.00", 2, 100, &v), 0);
        assert_true(v == 100);
        v = UNTOUCHED;
        assert_int_equal(decimal_parse("1.01", 2, 100, &v), -ERANGE);
        assert_true(v == UNTOUCHED);
}

static void decimal_at_int64_max_is_accepted(void **state)
{
        int64_t v = 0;

        assert_int_equal(decimal_parse("9223372036854775807", 0, INT64_MAX, &v), 0);
        assert_true(v == INT64_MAX);
}

static void decimal_above_int64_max_is_out_of_range_when_the_limit_is_int64_max(void **state)
{
        int64_t v = UNTOUCHED;
        int r;

        /* The limit is a parameter, so a caller may pass INT64_MAX: the parser must still
         * refuse what does not fit rather than overflow. */
        r = decimal_parse("9223372036854775808", 0, INT64_MAX, &v);
        if (r != -ERANGE)
                fail_msg("decimal_parse(\"9223372036854775808\", 0, INT64_MAX): want -ERANGE, "
                         "got %d with value %lld",
                         r, (long long)v);
        r = decimal_parse("99999999999999999999", 0, INT64_MAX, &v);
        if (r != -ERANGE)
                fail_msg("decimal_parse(\"99999999999999999999\", 0, INT64_MAX): want -ERANGE, "
                         "got %d with value %lld",
                         r, (long long)v);
        r = decimal_parse("92233720368547758.08", 2, INT64_MAX, &v);
        if (r != -ERANGE)
                fail_msg("decimal_parse(\"92233720368547758.08\", 2, INT64_MAX): want -ERANGE, "
                         "got %d with value %lld",
                         r, (long long)v);
}

/* ---- quantity_parse ---- */

static void quantity_is_read_in_thousandths(void **state)
{
        expect_quantity("2", 2000);
        expect_quantity("0.125", 125);
        expect_quantity("0.5", 500);
        expect_quantity("1.25", 1250);
        expect_quantity("0.001", 1);
}

static void quantity_zero_parses_as_zero_the_snapshot_refuses_it(void **state)
{
        expect_quantity("0", 0);
}

static void quantity_with_four_decimals_is_rejected(void **state)
{
        expect_quantity_rejected("1.2345", EINVAL);
        expect_quantity_rejected("0.0001", EINVAL);
}

static void quantity_in_any_other_notation_is_rejected(void **state)
{
        expect_quantity_rejected("-1", EINVAL);
        expect_quantity_rejected("+1", EINVAL);
        expect_quantity_rejected("1e3", EINVAL);
        expect_quantity_rejected("1,5", EINVAL);
        expect_quantity_rejected("", EINVAL);
        expect_quantity_rejected(" 2", EINVAL);
        expect_quantity_rejected("2.", EINVAL);
        expect_quantity_rejected(".2", EINVAL);
}

static void quantity_at_its_maximum_is_accepted_and_above_is_out_of_range(void **state)
{
        /* QUANTITY_MAX_MILLI = 10^12 thousandths = 10^9 units */
        expect_quantity("1000000000", QUANTITY_MAX_MILLI);
        expect_quantity_rejected("1000000000.001", ERANGE);
        expect_quantity_rejected("99999999999999999999", ERANGE);
}

/* ---- formatting ---- */

static void money_format_always_writes_two_decimals(void **state)
{
        expect_money_text(499000, "4990.00");
        expect_money_text(0, "0.00");
        expect_money_text(5, "0.05");
        expect_money_text(50, "0.50");
        expect_money_text(1010, "10.10");
        expect_money_text(MONEY_MAX_MINOR, "100000000000.00");
}

static void quantity_format_drops_trailing_zeros_and_a_bare_point(void **state)
{
        expect_quantity_text(2000, "2");
        expect_quantity_text(1500, "1.5");
        expect_quantity_text(1050, "1.05");
        expect_quantity_text(125, "0.125");
        expect_quantity_text(1, "0.001");
        expect_quantity_text(0, "0");
        expect_quantity_text(QUANTITY_MAX_MILLI, "1000000000");
}

static void money_format_into_a_short_buffer_is_truncated_and_terminated(void **state)
{
        char buf[5];

        memset(buf, 'x', sizeof(buf));
        money_format(499000, buf, sizeof(buf));
        assert_string_equal(buf, "4990");
}

static void money_parse_then_format_gives_the_canonical_text_back(void **state)
{
        static const struct {
                const char *in, *out;
        } cases[] = {
            {"4990.00", "4990.00"},   {"0", "0.00"},
            {"0.5", "0.50"},          {"007.1", "7.10"},
            {"12345.67", "12345.67"}, {"100000000000", "100000000000.00"},
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int64_t v = -1, again = -1;
                char buf[32];

                assert_int_equal(money_parse(cases[i].in, &v), 0);
                money_format(v, buf, sizeof(buf));
                if (strcmp(buf, cases[i].out) != 0)
                        fail_msg("\"%s\" → %lld → \"%s\", want \"%s\"", cases[i].in, (long long)v,
                                 buf, cases[i].out);
                assert_int_equal(money_parse(buf, &again), 0);
                assert_true(again == v);
        }
}

static void every_minor_amount_up_to_ten_thousand_round_trips(void **state)
{
        for (int64_t minor = 0; minor <= 10000; minor++) {
                char buf[32];
                int64_t back = -1;

                money_format(minor, buf, sizeof(buf));
                if (money_parse(buf, &back) != 0 || back != minor)
                        fail_msg("%lld → \"%s\" → %lld", (long long)minor, buf, (long long)back);
        }
}

static void every_quantity_up_to_five_units_round_trips(void **state)
{
        for (int64_t milli = 0; milli <= 5000; milli++) {
                char buf[32];
                int64_t back = -1;

                quantity_format(milli, buf, sizeof(buf));
                if (quantity_parse(buf, &back) != 0 || back != milli)
                        fail_msg("%lld → \"%s\" → %lld", (long long)milli, buf, (long long)back);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(money_with_two_decimals_becomes_minor_units),
            cmocka_unit_test(money_zero_is_zero),
            cmocka_unit_test(money_with_one_decimal_is_scaled_to_kopecks),
            cmocka_unit_test(money_without_decimals_is_whole_roubles),
            cmocka_unit_test(money_with_leading_zeros_is_read_as_decimal_not_octal),
            cmocka_unit_test(money_exactly_at_the_maximum_is_accepted),
            cmocka_unit_test(money_with_three_decimals_is_rejected),
            cmocka_unit_test(money_with_a_sign_is_rejected),
            cmocka_unit_test(money_with_surrounding_spaces_is_rejected),
            cmocka_unit_test(money_in_exponent_hex_or_locale_notation_is_rejected),
            cmocka_unit_test(money_with_a_missing_whole_or_fraction_part_is_rejected),
            cmocka_unit_test(money_empty_or_null_is_rejected),
            cmocka_unit_test(money_one_kopeck_above_the_maximum_is_out_of_range),
            cmocka_unit_test(money_with_twenty_or_more_digits_is_out_of_range_not_wrapped),
            cmocka_unit_test(money_with_garbage_after_a_huge_number_is_invalid_not_out_of_range),
            cmocka_unit_test(decimal_with_scale_zero_accepts_only_integers),
            cmocka_unit_test(decimal_exactly_at_a_caller_limit_is_accepted_and_one_above_is_not),
            cmocka_unit_test(decimal_at_int64_max_is_accepted),
            cmocka_unit_test(decimal_above_int64_max_is_out_of_range_when_the_limit_is_int64_max),
            cmocka_unit_test(quantity_is_read_in_thousandths),
            cmocka_unit_test(quantity_zero_parses_as_zero_the_snapshot_refuses_it),
            cmocka_unit_test(quantity_with_four_decimals_is_rejected),
            cmocka_unit_test(quantity_in_any_other_notation_is_rejected),
            cmocka_unit_test(quantity_at_its_maximum_is_accepted_and_above_is_out_of_range),
            cmocka_unit_test(money_format_always_writes_two_decimals),
            cmocka_unit_test(quantity_format_drops_trailing_zeros_and_a_bare_point),
            cmocka_unit_test(money_format_into_a_short_buffer_is_truncated_and_terminated),
            cmocka_unit_test(money_parse_then_format_gives_the_canonical_text_back),
            cmocka_unit_test(every_minor_amount_up_to_ten_thousand_round_trips),
            cmocka_unit_test(every_quantity_up_to_five_units_round_trips),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
