/*
 * http_form_value: a Bitrix24 outgoing webhook's fields, read from the body exactly as
 * the portal sends it (b24restdocs api-reference/events: form-encoded, bracketed keys).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/form.h"

/* As the portal posts ONCRMDEALUPDATE (on-crm-deal-update.md), brackets %-encoded. */
static const char event[] =
    "event=ONCRMDEALUPDATE&event_handler_id=975&data%5BFIELDS%5D%5BID%5D=662&ts=1724140800&"
    "auth%5Bdomain%5D=example.bitrix24.com&auth%5Bapplication_token%5D=jvh9y1ulvt2m6k5or90v";

static char *value_of(const char *body, const char *name, size_t max, int want)
{
        char *v = (char *)0x1;
        int r = http_form_value(body, strlen(body), name, max, &v);

        if (r != want)
                fail_msg("%s: want %d, got %d", name, want, r);
        return r == 0 ? v : NULL;
}

static void bracketed_keys_are_matched_after_decoding(void **state)
{
        char *v = value_of(event, "data[FIELDS][ID]", 64, 0);

        assert_string_equal(v, "662");
        free(v);
        v = value_of(event, "auth[application_token]", 64, 0);
        assert_string_equal(v, "jvh9y1ulvt2m6k5or90v");
        free(v);
        v = value_of(event, "event", 64, 0);
        assert_string_equal(v, "ONCRMDEALUPDATE");
        free(v);
}

static void plus_is_a_space_and_an_encoded_plus_is_a_plus(void **state)
{
        char *v = value_of("a=1&title=Call+from%2B7+999", "title", 64, 0);

        assert_string_equal(v, "Call from+7 999");
        free(v);
}

static void the_first_of_repeated_fields_wins_and_a_bare_name_is_empty(void **state)
{
        char *v = value_of("x=1&x=2&flag", "x", 8, 0);

        assert_string_equal(v, "1");
        free(v);
        v = value_of("x=1&x=2&flag", "flag", 8, 0);
        assert_string_equal(v, "");
        free(v);
}

static void a_missing_field_is_enoent_and_a_prefix_is_not_a_match(void **state)
{
        value_of(event, "data[FIELDS]", 64, -ENOENT);
        value_of(event, "auth[application_token", 64, -ENOENT);
        value_of("", "event", 64, -ENOENT);
}

static void a_nul_byte_or_an_overlong_value_is_refused(void **state)
{
        value_of("id=6%006", "id", 64, -EINVAL);
        value_of("i%00d=6", "id", 64, -EINVAL);
        value_of("id=123456789", "id", 8, -E2BIG);
        char *v = value_of("id=12345678", "id", 8, 0);
        assert_string_equal(v, "12345678");
        free(v);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(bracketed_keys_are_matched_after_decoding),
            cmocka_unit_test(plus_is_a_space_and_an_encoded_plus_is_a_plus),
            cmocka_unit_test(the_first_of_repeated_fields_wins_and_a_bare_name_is_empty),
            cmocka_unit_test(a_missing_field_is_enoent_and_a_prefix_is_not_a_match),
            cmocka_unit_test(a_nul_byte_or_an_overlong_value_is_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
