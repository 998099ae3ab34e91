/*
 * The capped buffer (base/buf.c): everything the network or a file fills goes through
 * it, so its cap must hold exactly, an overflow must change nothing and stay marked, and
 * the contents must always be a C string.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"

static void appends_up_to_the_cap_exactly(void **state)
{
        struct buf b;

        buf_init(&b, 8);
        assert_int_equal(buf_append(&b, "abcd", 4), 0);
        assert_int_equal(buf_append(&b, "efgh", 4), 0);
        assert_int_equal(b.len, 8);
        assert_string_equal(b.data, "abcdefgh");
        assert_false(b.toobig);
        buf_free(&b);
}

static void an_append_past_the_cap_changes_nothing_and_is_marked(void **state)
{
        struct buf b;

        buf_init(&b, 8);
        assert_int_equal(buf_append(&b, "abcdef", 6), 0);
        assert_int_equal(buf_append(&b, "xyz", 3), -EMSGSIZE);
        assert_int_equal(b.len, 6);
        assert_string_equal(b.data, "abcdef");
        assert_true(b.toobig);
        buf_free(&b);
}

static void after_an_overflow_even_a_small_append_fails(void **state)
{
        struct buf b;

        /* a writer of many pieces checks once at the end: a piece that would still fit
         * must not land after one that was dropped */
        buf_init(&b, 8);
        assert_int_equal(buf_append(&b, "123456789", 9), -EMSGSIZE);
        assert_int_equal(buf_append(&b, "a", 1), -EMSGSIZE);
        assert_int_equal(b.len, 0);
        assert_true(b.toobig);
        buf_free(&b);
}

static void a_size_that_would_wrap_around_is_refused(void **state)
{
        struct buf b;

        buf_init(&b, 16);
        assert_int_equal(buf_append(&b, "ab", 2), 0);
        assert_int_equal(buf_append(&b, "x", SIZE_MAX), -EMSGSIZE);
        assert_string_equal(b.data, "ab");
        buf_free(&b);
}

static void printf_formats_and_honours_the_cap(void **state)
{
        struct buf b;
        char big[700];

        buf_init(&b, 1000);
        assert_int_equal(buf_printf(&b, "%s=%d;", "n", 42), 0);
        assert_string_equal(b.data, "n=42;");
        memset(big, 'z', sizeof(big) - 1); /* longer than printf's stack buffer */
        big[sizeof(big) - 1] = '\0';
        assert_int_equal(buf_printf(&b, "%s", big), 0);
        assert_int_equal(b.len, 5 + 699);
        assert_int_equal(buf_printf(&b, "%s", big), -EMSGSIZE);
        assert_int_equal(b.len, 5 + 699);
        buf_free(&b);
}

static void steal_hands_over_a_string_and_resets(void **state)
{
        struct buf b;
        char *s;

        buf_init(&b, 4);
        s = buf_steal(&b);
        assert_string_equal(s, ""); /* never NULL, even when nothing was appended */
        free(s);
        assert_int_equal(buf_append(&b, "toolong", 7), -EMSGSIZE);
        assert_int_equal(buf_append(&b, "ok", 2), -EMSGSIZE);
        s = buf_steal(&b);
        free(s);
        assert_false(b.toobig);
        assert_int_equal(buf_append(&b, "ok", 2), 0); /* usable again, same cap */
        assert_string_equal(b.data, "ok");
        buf_free(&b);
}

static void reset_empties_but_keeps_the_cap(void **state)
{
        struct buf b;

        buf_init(&b, 4);
        assert_int_equal(buf_append(&b, "abcd", 4), 0);
        buf_reset(&b);
        assert_int_equal(b.len, 0);
        assert_string_equal(b.data, "");
        assert_int_equal(buf_append(&b, "abcde", 5), -EMSGSIZE);
        buf_free(&b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(appends_up_to_the_cap_exactly),
            cmocka_unit_test(an_append_past_the_cap_changes_nothing_and_is_marked),
            cmocka_unit_test(after_an_overflow_even_a_small_append_fails),
            cmocka_unit_test(a_size_that_would_wrap_around_is_refused),
            cmocka_unit_test(printf_formats_and_honours_the_cap),
            cmocka_unit_test(steal_hands_over_a_string_and_resets),
            cmocka_unit_test(reset_empties_but_keeps_the_cap),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
