/*
 * Contact keys (model/phone.c), which decide whether a buyer is a repeat customer: a
 * phone becomes one E.164 key however it was typed, in the country [bitrix24]
 * country_code names, and an e-mail becomes its trimmed, lower-cased self.
 *
 * The country tables hold one real-format number per country as its people write it
 * (trunk prefixes: Russia's and Kazakhstan's 8, Belarus's 8 0, the 0 of Ukraine, the UK
 * and the others; the "00" and "8 10" international prefixes; brackets, dashes, an
 * extension) and the one key all of them must give. Each country is its own test, so a
 * failure names the country; every test prints each spelling that gave another key.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "model/phone.h"

static void expect_phone(const char *in, const char *cc, const char *want)
{
        char out[32];
        int r;

        memset(out, 'x', sizeof(out));
        r = phone_normalize(in, cc, out, sizeof(out));
        if (r != 0 || strcmp(out, want) != 0)
                fail_msg("phone_normalize(\"%s\", \"%s\"): want 0 and \"%s\", got %d and \"%.*s\"",
                         in, cc, want, r, (int)sizeof(out) - 1, out);
}

/* refused, and the output left as it was (ret_ parameters are untouched on failure) */
static void expect_phone_rejected(const char *in, const char *cc)
{
        char out[32] = "untouched";
        int r = phone_normalize(in, cc, out, sizeof(out));

        if (r != -EINVAL || strcmp(out, "untouched") != 0)
                fail_msg("phone_normalize(\"%s\", \"%s\"): want -EINVAL, got %d and \"%.*s\"",
                         in ? in : "(null)", cc, r, (int)sizeof(out) - 1, out);
}

/* --- Russia, and what the digits-only rule before libphonenumber already did ---------- */

static void a_russian_number_written_every_usual_way_is_one_key(void **state)
{
        static const char *const ways[] = {
            "8 (900) 123-45-67", "+7 900 123 45 67", "+7 (900) 123-45-67",   "89001234567",
            "79001234567",       "+79001234567",     "  +7 900 123 45 67  ", "8-900-123-45-67",
            "+7.900.123.45.67",  "(900) 123-45-67",  "9001234567",
        };

        for (size_t i = 0; i < sizeof(ways) / sizeof(ways[0]); i++)
                expect_phone(ways[i], "7", "+79001234567");
}

static void a_national_number_gets_the_configured_country_code(void **state)
{
        expect_phone("9001234567", "7", "+79001234567");
        expect_phone("(212) 555-0123", "1", "+12125550123");
        /* a number written with '+' has its own country code, even when its ten digits
         * would pass for a national number (Estonia: +372 and seven digits) */
        expect_phone("+372 612 3456", "7", "+3726123456");
}

static void the_00_international_prefix_is_dropped(void **state)
{
        expect_phone("00 7 900 123 45 67", "7", "+79001234567");
        expect_phone("0079001234567", "7", "+79001234567");
        expect_phone("00 44 20 7123 4567", "7", "+442071234567");
        /* Uzbekistan's own international prefix is 810 (as Russia's), yet its people
         * type 00 too */
        expect_phone("00 998 90 123 45 67", "998", "+998901234567");
}

static void the_trunk_prefix_8_means_russia_only_for_country_code_7(void **state)
{
        expect_phone("8 (900) 123-45-67", "7", "+79001234567");
        /* in Belarus 8 is Belarus's own trunk prefix (8 0 before an area code): dropped,
         * and the rest read as a Belarusian number, never a Russian one */
        expect_phone("8 029 123-45-67", "375", "+375291234567");
        expect_phone("8 (900) 123-45-67", "375", "+3759001234567");
}

static void an_extension_is_not_part_of_the_number(void **state)
{
        expect_phone("+7 900 123-45-67 #12", "7", "+79001234567");
        expect_phone("+7 900 123-45-67#12", "7", "+79001234567");
        expect_phone("+7 900 123-45-67, 12", "7", "+79001234567");
        expect_phone("+7 900 123-45-67; 12", "7", "+79001234567");
        expect_phone("+7 900 123-45-67 ext 12", "7", "+79001234567");
        expect_phone("+7 900 123-45-67 x12", "7", "+79001234567");
}

/* phone.c's own comment names "доб. 12" (Russian for "ext."): its letters are UTF-8
 * bytes, not ASCII letters, and must still end the number. */
static void a_russian_extension_is_not_part_of_the_number(void **state)
{
        expect_phone("+7 900 123-45-67 доб. 12", "7", "+79001234567");
        expect_phone("8 (900) 123-45-67 доб 5", "7", "+79001234567");
}

static void too_short_too_long_or_no_digits_is_not_a_phone(void **state)
{
        expect_phone_rejected("123-45-67", "7");         /* 7 digits: no area code */
        expect_phone_rejected("900 123 456", "7");       /* 9 digits */
        expect_phone_rejected("+1234567890123456", "7"); /* 16 digits */
        expect_phone_rejected("1234567890123456789012345678901234567890", "7");
        expect_phone_rejected("", "7");
        expect_phone_rejected("   ", "7");
        expect_phone_rejected("no phone", "7");
        expect_phone_rejected("call me", "7");
        expect_phone_rejected(NULL, "7");
        /* letters end the number: what is before them is too short */
        expect_phone_rejected("8-900-CALL-NOW", "7");
}

/* E.164's limit, even where a country's own plan is longer (Germany's is) */
static void fifteen_digits_is_the_longest_phone(void **state)
{
        expect_phone("+49 30 12345678901", "7", "+493012345678901");
        expect_phone_rejected("+49 30 123456789012", "7");
        expect_phone_rejected("+1234567890123456", "7");
}

static void a_result_that_does_not_fit_is_refused_not_truncated(void **state)
{
        char out[8] = "";

        assert_int_equal(phone_normalize("+79001234567", "7", out, sizeof(out)), -EINVAL);
        assert_string_equal(out, "");
}

/* --- every country: one number, its usual spellings, one key ------------------------- */

struct country {
        const char *name, *code, *key;
        /* the key's national number cut to five digits, and with three digits more:
         * lengths the country does not use */
        const char *too_short, *too_long;
        const char *ways[12]; /* NULL-terminated */
};

static const struct country russia = {
    .name = "Russia",
    .code = "7",
    .key = "+79123456789",
    .too_short = "91234",
    .too_long = "+7 912 345 67 89 123",
    .ways = {"+7 912 345-67-89", "8 (912) 345-67-89", "89123456789", "79123456789", "9123456789",
             "+7(912)3456789", "00 7 912 345 67 89", "8 10 7 912 345 67 89",
             "+7 912 345 67 89 доб. 12", NULL},
};
/* Kazakhstan shares +7 and its 8 trunk prefix: country code 7 reads its numbers too */
static const struct country kazakhstan = {
    .name = "Kazakhstan",
    .code = "7",
    .key = "+77012345678",
    .too_short = "70123",
    .too_long = "+7 701 234 56 78 123",
    .ways = {"+7 701 234 56 78", "8 (701) 234-56-78", "87012345678", "77012345678", "7012345678",
             "007 701 234 56 78", NULL},
};
static const struct country belarus = {
    .name = "Belarus",
    .code = "375",
    .key = "+375291234567",
    .too_short = "29123",
    .too_long = "+375 29 123 45 67 123",
    .ways = {"+375 29 123-45-67", "8 029 123-45-67", "8 (029) 123 45 67", "80291234567",
             "375291234567", "00375291234567", "029 123 45 67", "29 123 45 67", NULL},
};
static const struct country ukraine = {
    .name = "Ukraine",
    .code = "380",
    .key = "+380441234567",
    .too_short = "44123",
    .too_long = "044 123 45 67 123",
    .ways = {"+380 44 123 45 67", "044 123 45 67", "0 44 123-45-67", "380441234567",
             "00380441234567", "(044) 123-45-67", "+38 044 123 45 67", "+380 44 123 45 67 #2",
             NULL},
};
/* Uzbekistan's 8 trunk prefix and 8 10 international prefix are the old Soviet ones,
 * still typed */
static const struct country uzbekistan = {
    .name = "Uzbekistan",
    .code = "998",
    .key = "+998901234567",
    .too_short = "90123",
    .too_long = "90 123 45 67 123",
    .ways = {"+998 90 123 45 67", "90 123 45 67", "(90) 123-45-67", "998901234567",
             "00998901234567", "8 90 123 45 67", "8 10 998 90 123 45 67", NULL},
};
static const struct country kyrgyzstan = {
    .name = "Kyrgyzstan",
    .code = "996",
    .key = "+996555123456",
    .too_short = "55512",
    .too_long = "0555 123 456 123",
    .ways = {"+996 555 123 456", "0555 123 456", "0 (555) 12-34-56", "996555123456",
             "00996555123456", "555 123 456", NULL},
};
static const struct country armenia = {
    .name = "Armenia",
    .code = "374",
    .key = "+37477123456",
    .too_short = "77123",
    .too_long = "077 123456 123",
    .ways = {"+374 77 123456", "077 123456", "(077) 12-34-56", "37477123456", "0037477123456",
             "77 123456", NULL},
};
static const struct country azerbaijan = {
    .name = "Azerbaijan",
    .code = "994",
    .key = "+994501234567",
    .too_short = "50123",
    .too_long = "050 123 45 67 123",
    .ways = {"+994 50 123 45 67", "050 123 45 67", "(050) 123-45-67", "994501234567",
             "00994501234567", "50 123 45 67", NULL},
};
/* Georgia dropped its trunk 0 in 2011; numbers are still typed with it */
static const struct country georgia = {
    .name = "Georgia",
    .code = "995",
    .key = "+995555123456",
    .too_short = "55512",
    .too_long = "555 12 34 56 123",
    .ways = {"+995 555 12 34 56", "555 12 34 56", "0 555 12 34 56", "995555123456",
             "00995555123456", "(555) 123-456", NULL},
};
static const struct country moldova = {
    .name = "Moldova",
    .code = "373",
    .key = "+37369123456",
    .too_short = "69123",
    .too_long = "069 123 456 123",
    .ways = {"+373 69 123 456", "069 123 456", "0 (69) 12-34-56", "37369123456", "0037369123456",
             "069123456", NULL},
};
static const struct country tajikistan = {
    .name = "Tajikistan",
    .code = "992",
    .key = "+992931234567",
    .too_short = "93123",
    .too_long = "93 123 4567 123",
    .ways = {"+992 93 123 4567", "93 123 4567", "(93) 123-45-67", "992931234567", "00992931234567",
             "8 10 992 93 123 4567", NULL},
};
/* 07700 900xxx is Ofcom's range for drama, never given to a line: libphonenumber's
 * IsValidNumber says no, its length is possible, and that is all a key needs */
static const struct country uk = {
    .name = "the UK",
    .code = "44",
    .key = "+447700900123",
    .too_short = "77009",
    .too_long = "07700 900123 123",
    .ways = {"07700 900123", "+44 7700 900123", "+44 (0) 7700 900123", "447700900123",
             "0044 7700 900123", "07700900123", "+44 7700 900 123 ext 4", NULL},
};

static const struct country *const countries[] = {
    &russia,  &kazakhstan, &belarus, &ukraine, &uzbekistan, &kyrgyzstan,
    &armenia, &azerbaijan, &georgia, &moldova, &tajikistan, &uk,
};

/* The test state is the country (cmocka's prestate). */
static void every_spelling_is_one_key(void **state)
{
        const struct country *c = *state;
        size_t wrong = 0, n = 0;

        for (; c->ways[n]; n++) {
                char out[32] = "";
                int r = phone_normalize(c->ways[n], c->code, out, sizeof(out));
                if (r != 0 || strcmp(out, c->key) != 0) {
                        print_error("%s (%s): \"%s\" gave %d and \"%s\", want \"%s\"\n", c->name,
                                    c->code, c->ways[n], r, out, c->key);
                        wrong++;
                }
        }
        if (wrong)
                fail_msg("%s: %zu of %zu spellings did not give %s", c->name, wrong, n, c->key);
}

static void a_key_reads_back_as_itself_whatever_the_configured_country(void **state)
{
        for (size_t i = 0; i < sizeof(countries) / sizeof(countries[0]); i++)
                for (size_t j = 0; j < sizeof(countries) / sizeof(countries[0]); j++)
                        expect_phone(countries[i]->key, countries[j]->code, countries[i]->key);
}

static void what_is_no_phone_is_refused_in_every_country(void **state)
{
        static const char *const not_phones[] = {
            "", "   ", "call me", "звоните вечером", "--()--", "+", "00", "12", "12 345",
        };
        char digits[201], letters[201];

        memset(digits, '5', 200);
        digits[200] = '\0';
        memset(letters, 'a', 200);
        letters[200] = '\0';
        for (size_t i = 0; i < sizeof(countries) / sizeof(countries[0]); i++) {
                const struct country *c = countries[i];
                for (size_t j = 0; j < sizeof(not_phones) / sizeof(not_phones[0]); j++)
                        expect_phone_rejected(not_phones[j], c->code);
                expect_phone_rejected(digits, c->code);
                expect_phone_rejected(letters, c->code);
                expect_phone_rejected(c->too_short, c->code);
                expect_phone_rejected(c->too_long, c->code);
        }
}

/* libphonenumber drops one trunk prefix after a country code per reading, so its E.164
 * of "+43 0024430117" is "+43024430117", which it reads as "+4324430117"; the sink reads
 * its own keys back from the portal's contacts (found by tests/fuzz/fuzz_phone) */
static void a_key_is_read_again_until_it_stays(void **state)
{
        expect_phone("+43 0024430117", "7", "+4324430117");
        expect_phone("+43 024430117", "7", "+4324430117");
        expect_phone("+4324430117", "7", "+4324430117");
}

static void two_numbers_of_one_country_are_two_keys(void **state)
{
        expect_phone("044 123 45 67", "380", "+380441234567");
        expect_phone("044 123 45 68", "380", "+380441234568");
        expect_phone("067 123 45 67", "380", "+380671234567");
}

/* A country code no country has reads numbers written with their own country code
 * only: a national number cannot be placed. */
static void an_unknown_country_code_reads_only_international_numbers(void **state)
{
        expect_phone_rejected("9001234567", "1234");
        expect_phone_rejected("9001234567", "0");
        expect_phone_rejected("9001234567", "800");
        expect_phone("+7 900 123 45 67", "1234", "+79001234567");
        expect_phone("00 380 44 123 45 67", "0", "+380441234567");
        expect_phone_rejected("+7 900 123 45 67", "");
        expect_phone_rejected("+7 900 123 45 67", "+7");
        expect_phone_rejected("+7 900 123 45 67", NULL);
}

static void the_configured_country_code_must_be_a_countrys(void **state)
{
        static const char *const known[] = {"7", "1", "44", "375", "380", "998", "992"};
        static const char *const unknown[] = {"0",   "8", "999", "1234", "800",
                                              "882", "",  "+7",  "7a",   "12345"};

        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
                if (phone_check_country_code(known[i]) != 0)
                        fail_msg("\"%s\" must be a country's code", known[i]);
        for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
                if (phone_check_country_code(unknown[i]) != -EINVAL)
                        fail_msg("\"%s\" must not be a country's code", unknown[i]);
        assert_int_equal(phone_check_country_code(NULL), -EINVAL);
}

/* --- email_normalize ------------------------------------------------------------------- */

static void expect_email(const char *in, const char *want)
{
        char out[256];
        int r;

        memset(out, 'x', sizeof(out));
        r = email_normalize(in, out, sizeof(out));
        if (r != 0 || strcmp(out, want) != 0)
                fail_msg("email_normalize(\"%s\"): want 0 and \"%s\", got %d", in, want, r);
}

static void expect_email_rejected(const char *in)
{
        char out[256];
        int r = email_normalize(in, out, sizeof(out));

        if (r != -EINVAL)
                fail_msg("email_normalize(\"%s\"): want -EINVAL, got %d", in ? in : "(null)", r);
}

static void an_email_is_lower_cased_and_trimmed(void **state)
{
        expect_email("Ivan@Example.RU", "ivan@example.ru");
        expect_email("  IVAN@EXAMPLE.RU\t\n", "ivan@example.ru");
        expect_email("ivan@example.ru", "ivan@example.ru");
        expect_email("a@b", "a@b");
}

static void an_email_without_at_or_empty_is_refused(void **state)
{
        expect_email_rejected("ivan.example.ru");
        expect_email_rejected("");
        expect_email_rejected("    ");
        expect_email_rejected("@");
        expect_email_rejected(NULL);
}

static void an_email_that_does_not_fit_is_refused(void **state)
{
        char out[8];

        assert_int_equal(email_normalize("ivan@example.ru", out, sizeof(out)), -EINVAL);
}

#define COUNTRY_TEST(c)                                                                            \
        {                                                                                          \
                "every_spelling_is_one_key_in_" #c, every_spelling_is_one_key, NULL, NULL,         \
                    (void *)&c                                                                     \
        }

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(a_russian_number_written_every_usual_way_is_one_key),
            cmocka_unit_test(a_national_number_gets_the_configured_country_code),
            cmocka_unit_test(the_00_international_prefix_is_dropped),
            cmocka_unit_test(the_trunk_prefix_8_means_russia_only_for_country_code_7),
            cmocka_unit_test(an_extension_is_not_part_of_the_number),
            cmocka_unit_test(a_russian_extension_is_not_part_of_the_number),
            cmocka_unit_test(too_short_too_long_or_no_digits_is_not_a_phone),
            cmocka_unit_test(fifteen_digits_is_the_longest_phone),
            cmocka_unit_test(a_result_that_does_not_fit_is_refused_not_truncated),
            COUNTRY_TEST(russia),
            COUNTRY_TEST(kazakhstan),
            COUNTRY_TEST(belarus),
            COUNTRY_TEST(ukraine),
            COUNTRY_TEST(uzbekistan),
            COUNTRY_TEST(kyrgyzstan),
            COUNTRY_TEST(armenia),
            COUNTRY_TEST(azerbaijan),
            COUNTRY_TEST(georgia),
            COUNTRY_TEST(moldova),
            COUNTRY_TEST(tajikistan),
            COUNTRY_TEST(uk),
            cmocka_unit_test(a_key_reads_back_as_itself_whatever_the_configured_country),
            cmocka_unit_test(what_is_no_phone_is_refused_in_every_country),
            cmocka_unit_test(a_key_is_read_again_until_it_stays),
            cmocka_unit_test(two_numbers_of_one_country_are_two_keys),
            cmocka_unit_test(an_unknown_country_code_reads_only_international_numbers),
            cmocka_unit_test(the_configured_country_code_must_be_a_countrys),
            cmocka_unit_test(an_email_is_lower_cased_and_trimmed),
            cmocka_unit_test(an_email_without_at_or_empty_is_refused),
            cmocka_unit_test(an_email_that_does_not_fit_is_refused),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
