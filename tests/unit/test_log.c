/*
 * The log line format of log.h: logfmt, with every string value escaped by one rule.
 * Each test logs one event with stderr captured through a pipe and compares the fields
 * part of the line (after "TIME info t.ev ") with the text log.h says it must be; the
 * expected texts are written out here, never produced by the logger.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wchar.h>

#include <cmocka.h>

#include "base/log.h"

#define LINE_MAX_BYTES 2048

static char captured[LINE_MAX_BYTES * 4];
static size_t n_captured;
static int saved_stderr = -1, pipe_read = -1;

static void capture_begin(void)
{
        int fds[2];

        assert_int_equal(pipe(fds), 0);
        fflush(stderr);
        saved_stderr = dup(STDERR_FILENO);
        assert_true(saved_stderr >= 0);
        assert_true(dup2(fds[1], STDERR_FILENO) >= 0);
        close(fds[1]);
        pipe_read = fds[0];
}

/* Everything written since capture_begin; stderr is back before anything is checked. */
static const char *capture_end(void)
{
        ssize_t got;

        dup2(saved_stderr, STDERR_FILENO);
        close(saved_stderr);
        n_captured = 0;
        while ((got = read(pipe_read, captured + n_captured, sizeof(captured) - 1 - n_captured)) >
               0)
                n_captured += (size_t)got;
        close(pipe_read);
        captured[n_captured] = '\0';
        return captured;
}

/* The fields part of the one line logged: after "2026-03-13T07:00:00Z info t.ev ". */
static const char *fields(void)
{
        static const char prefix[] = " info t.ev ";
        const char *p = captured;

        assert_true(n_captured > 21 + sizeof(prefix) - 1);
        assert_int_equal(captured[4], '-');
        assert_int_equal(captured[19], 'Z');
        assert_memory_equal(captured + 20, prefix, sizeof(prefix) - 1);
        p = captured + 20 + sizeof(prefix) - 1;
        assert_ptr_equal(strchr(captured, '\n'), captured + n_captured - 1); /* one line */
        return p;
}

#define LOGGED(...) (capture_begin(), log_info("t.ev", __VA_ARGS__), capture_end(), fields())

/* ---- quoted values ---- */

static void a_quote_inside_a_quoted_value_is_escaped(void **state)
{
        assert_string_equal(LOGGED("id=\"%s\" z=1", "a\"b"), "id=\"a\\\"b\" z=1\n");
}

static void a_backslash_inside_a_quoted_value_is_escaped(void **state)
{
        assert_string_equal(LOGGED("id=\"%s\" z=1", "a\\\"b\\"), "id=\"a\\\\\\\"b\\\\\" z=1\n");
}

static void control_characters_inside_a_quoted_value_are_escaped(void **state)
{
        assert_string_equal(LOGGED("m=\"%s\" z=1", "a\nb\tc\rd\001e\037f\177g"),
                            "m=\"a\\nb\\tc\\rd\\u0001e\\u001ff\\u007fg\" z=1\n");
}

static void a_value_inside_quoted_text_is_escaped_and_the_quotes_stay_balanced(void **state)
{
        assert_string_equal(LOGGED("error=\"pid %ld is serving %s\" z=1", 42L, "/a \"b\""),
                            "error=\"pid 42 is serving /a \\\"b\\\"\" z=1\n");
}

static void an_empty_quoted_value_stays_an_empty_pair_of_quotes(void **state)
{
        assert_string_equal(LOGGED("m=\"%s\" z=1", ""), "m=\"\" z=1\n");
}

static void utf8_passes_unchanged(void **state)
{
        assert_string_equal(LOGGED("m=\"%s\" n=%s", "Иван Петров", "Иван"),
                            "m=\"Иван Петров\" n=Иван\n");
}

/* ---- bare values ---- */

static void a_plain_bare_value_is_written_as_it_is(void **state)
{
        assert_string_equal(LOGGED("order_id=%s z=1", "A-123_x.y/z:1"),
                            "order_id=A-123_x.y/z:1 z=1\n");
}

static void a_bare_value_with_an_equals_sign_is_quoted(void **state)
{
        assert_string_equal(LOGGED("webhook_id=%s z=1", "a=1"), "webhook_id=\"a=1\" z=1\n");
}

static void a_bare_value_with_a_quote_is_quoted_and_escaped(void **state)
{
        assert_string_equal(LOGGED("webhook_id=%s z=1", "msg\" z=2"),
                            "webhook_id=\"msg\\\" z=2\" z=1\n");
}

static void a_bare_value_with_a_space_is_quoted(void **state)
{
        assert_string_equal(LOGGED("k=%s z=1", "a b"), "k=\"a b\" z=1\n");
}

static void a_bare_value_with_a_backslash_is_quoted_and_escaped(void **state)
{
        assert_string_equal(LOGGED("k=%s z=1", "a\\b"), "k=\"a\\\\b\" z=1\n");
}

static void a_bare_value_with_a_newline_is_quoted_and_escaped(void **state)
{
        assert_string_equal(LOGGED("k=%s z=1", "a\nforged=1"), "k=\"a\\nforged=1\" z=1\n");
}

static void an_empty_bare_value_is_written_as_empty_quotes(void **state)
{
        assert_string_equal(LOGGED("k=%s z=1", ""), "k=\"\" z=1\n");
}

static void a_null_string_is_written_as_null(void **state)
{
        /* volatile: gcc -O2 would refuse a NULL it can see passed to %s */
        static const char *volatile null_value = NULL;
        const char *none = null_value;

        assert_string_equal(LOGGED("k=%s m=\"%s\" z=1", none, none), "k=(null) m=\"(null)\" z=1\n");
}

static void a_bare_message_without_a_key_follows_the_same_rule(void **state)
{
        assert_string_equal(LOGGED("%s", "restart the service"), "\"restart the service\"\n");
}

/* ---- precision and width on strings ---- */

static void a_star_precision_limits_the_string_before_escaping(void **state)
{
        assert_string_equal(LOGGED("k=%.*s z=1", 3, "ab\"cdef"), "k=\"ab\\\"\" z=1\n");
        assert_string_equal(LOGGED("k=%.*s z=1", 2, "abcdef"), "k=ab z=1\n");
        assert_string_equal(LOGGED("k=%.3s z=1", "abcdef"), "k=abc z=1\n");
        /* the precision allows a string that is not terminated */
        assert_string_equal(LOGGED("k=%.*s z=1", 4, (const char[]){'w', 'x', 'y', 'z'}),
                            "k=wxyz z=1\n");
}

static void a_width_on_a_string_pads_and_the_padding_is_quoted(void **state)
{
        assert_string_equal(LOGGED("k=%5s z=1", "ab"), "k=\"   ab\" z=1\n");
        assert_string_equal(LOGGED("k=%-4s| z=1", "ab"), "k=\"ab  \"| z=1\n");
        assert_string_equal(LOGGED("k=%2s z=1", "abc"), "k=abc z=1\n");
}

/* ---- numbers ---- */

static void every_length_modifier_formats_its_type(void **state)
{
        assert_string_equal(LOGGED("a=%hhd b=%hd c=%d d=%ld e=%lld f=%zd g=%jd h=%td",
                                   (signed char)-128, (short)-32768, INT32_MIN, (long)-2147483649L,
                                   (long long)INT64_MIN, (ssize_t)-5, (intmax_t)INT64_MAX,
                                   (ptrdiff_t)-7),
                            "a=-128 b=-32768 c=-2147483648 d=-2147483649 "
                            "e=-9223372036854775808 f=-5 g=9223372036854775807 h=-7\n");
        assert_string_equal(LOGGED("a=%hhu b=%hu c=%u d=%lu e=%llu f=%zu g=%ju h=%tu i=%i",
                                   (unsigned char)255, (unsigned short)65535, UINT32_MAX,
                                   4294967296UL, (unsigned long long)UINT64_MAX, (size_t)12,
                                   (uintmax_t)UINT64_MAX, (ptrdiff_t)9, -3),
                            "a=255 b=65535 c=4294967295 d=4294967296 "
                            "e=18446744073709551615 f=12 g=18446744073709551615 h=9 i=-3\n");
}

static void flags_widths_and_bases_are_kept(void **state)
{
        assert_string_equal(LOGGED("a=%x b=%X c=%o d=%#x e=%5d| f=%-5d| g=%05d h=%+d i=%lx", 255u,
                                   255u, 8u, 255u, 42, 42, 42, 42, 0xdeadbeefUL),
                            "a=ff b=FF c=10 d=0xff e=   42| f=42   | g=00042 h=+42 "
                            "i=deadbeef\n");
        assert_string_equal(LOGGED("a=%*d| b=%*d| c=%.*d", 4, 7, -4, 7, 3, 7),
                            "a=   7| b=7   | c=007\n");
}

static void floating_point_and_characters_and_percent(void **state)
{
        assert_string_equal(LOGGED("a=%.3f b=%e c=%g d=%Lf e=%c f=%c g=100%% h=%%s", 1.5, 0.5, 0.25,
                                   (long double)2.5, 'x', '"'),
                            "a=1.500 b=5.000000e-01 c=0.25 d=2.500000 e=x f=\"\\\"\" g=100% "
                            "h=%s\n");
}

static void a_pointer_is_formatted_as_printf_does(void **state)
{
        char want[64];
        int x;

        snprintf(want, sizeof(want), "p=%p\n", (void *)&x);
        assert_string_equal(LOGGED("p=%p", (void *)&x), want);
}

/* ---- the line cap ---- */

static size_t trailing_backslashes(const char *s, size_t end)
{
        size_t n = 0;

        while (end > n && s[end - 1 - n] == '\\')
                n++;
        return n;
}

static void a_very_long_bare_value_is_cut_to_the_line_cap_and_the_line_ends(void **state)
{
        static char value[5000];

        memset(value, 'a', sizeof(value) - 1);
        LOGGED("k=%s z=1", value);
        assert_true(n_captured <= LINE_MAX_BYTES);
        assert_true(n_captured >= LINE_MAX_BYTES - 2);
        assert_int_equal(captured[n_captured - 1], '\n');
        assert_int_equal(captured[n_captured - 2], 'a');
        assert_null(strstr(captured, "z=1"));
}

static void a_long_value_of_escapes_is_cut_between_escapes_and_its_quote_closed(void **state)
{
        static char value[3000];

        for (size_t cut = 0; cut < 6; cut++) {
                /* shift where the cap falls against the 2- and 6-byte escapes */
                memset(value, '"', sizeof(value) - 1);
                for (size_t i = 0; i < cut; i++)
                        value[i] = 'x';
                value[cut] = '\001';
                const char *p = LOGGED("k=%s m=\"%s\" z=1", value, value + 1);
                const char *end = captured + n_captured - 2;
                assert_true(n_captured <= LINE_MAX_BYTES);
                assert_true(n_captured >= LINE_MAX_BYTES - 6);
                assert_int_equal(end[1], '\n');
                assert_int_equal(end[0], '"');
                /* whole escapes only: k=" x… \u0001 \"\"… then the closing quote */
                assert_memory_equal(p, "k=\"", 3);
                p += 3;
                for (size_t i = 0; i < cut; i++)
                        assert_int_equal(*p++, 'x');
                assert_memory_equal(p, "\\u0001", 6);
                for (p += 6; p < end; p += 2)
                        assert_memory_equal(p, "\\\"", 2);
                assert_ptr_equal(p, end);
                assert_int_equal(trailing_backslashes(captured, n_captured - 2) % 2, 0);
        }
}

static void a_long_value_inside_format_quotes_is_closed_too(void **state)
{
        static char value[3000];

        memset(value, 'b', sizeof(value) - 1);
        LOGGED("m=\"pid 1 at %s\" z=1", value);
        assert_true(n_captured <= LINE_MAX_BYTES);
        assert_int_equal(captured[n_captured - 1], '\n');
        assert_int_equal(captured[n_captured - 2], '"');
        assert_int_equal(captured[n_captured - 3], 'b');
}

static void a_number_that_does_not_fit_takes_its_key_with_it(void **state)
{
        /* "TIME info t.ev " is 31 bytes, "k=" 2: the value leaves room for " z=" and 3 of
         * the number's 10 digits, so neither " z=" nor a cut "z=123" may appear */
        static char value[2008];

        memset(value, 'a', 2007);
        LOGGED("k=%s z=%lld", value, 1234567890LL);
        assert_int_equal(n_captured, 31 + 2 + 2007 + 1);
        assert_int_equal(captured[n_captured - 2], 'a');
        assert_null(strstr(captured, "z="));
}

/* ---- what the walker does not know ---- */

static void an_unsupported_conversion_ends_the_line_with_a_marker(void **state)
{
        assert_string_equal(LOGGED("a=%d b=%ls c=%d", 1, L"wide", 2), "a=1 b=!badformat\n");
}

/* ---- the journal's priority prefix ---- */

/* Says that stderr (the capture's pipe, now) is the journal's stream, as systemd does. */
static void journal_is_stderr(void)
{
        struct stat st;
        char v[64];

        assert_int_equal(fstat(STDERR_FILENO, &st), 0);
        snprintf(v, sizeof(v), "%ju:%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
        setenv("JOURNAL_STREAM", v, 1);
}

/* One event at `level` written to the journal's stream; returns the captured line. */
static const char *logged_to_journal(enum log_level level)
{
        bool found;

        capture_begin();
        journal_is_stderr();
        found = log_detect_journal();
        log_event(level, "t.ev", "k=%d", 1);
        capture_end();
        unsetenv("JOURNAL_STREAM");
        log_detect_journal();
        assert_true(found);
        return captured;
}

static void on_the_journal_stream_each_level_carries_its_sd_daemon_priority(void **state)
{
        log_set_level(LOG_DEBUG);
        assert_memory_equal(logged_to_journal(LOG_ERR), "<3>", 3);
        assert_memory_equal(logged_to_journal(LOG_WARN), "<4>", 3);
        assert_memory_equal(logged_to_journal(LOG_INFO), "<6>", 3);
        assert_memory_equal(logged_to_journal(LOG_DEBUG), "<7>", 3);
        log_set_level(LOG_INFO);
        /* the rest of the line is the plain one: time, level, event, fields */
        logged_to_journal(LOG_WARN);
        assert_int_equal(captured[3 + 19], 'Z');
        assert_string_equal(captured + 3 + 20, " warn t.ev k=1\n");
}

static void without_journal_stream_the_line_has_no_prefix(void **state)
{
        unsetenv("JOURNAL_STREAM");
        assert_false(log_detect_journal());
        assert_string_equal(LOGGED("k=%d", 1), "k=1\n");
}

static void a_journal_stream_that_is_not_stderr_gives_no_prefix(void **state)
{
        struct stat st;
        char v[64];

        capture_begin();
        assert_int_equal(fstat(saved_stderr, &st), 0); /* the real stderr, not the pipe */
        snprintf(v, sizeof(v), "%ju:%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino + 1);
        setenv("JOURNAL_STREAM", v, 1);
        assert_false(log_detect_journal());
        setenv("JOURNAL_STREAM", "12:34:56", 1); /* not DEVICE:INODE */
        assert_false(log_detect_journal());
        log_warn("t.ev", "k=%d", 1);
        capture_end();
        unsetenv("JOURNAL_STREAM");
        log_detect_journal();
        assert_int_equal(captured[19], 'Z');
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(a_quote_inside_a_quoted_value_is_escaped),
            cmocka_unit_test(a_backslash_inside_a_quoted_value_is_escaped),
            cmocka_unit_test(control_characters_inside_a_quoted_value_are_escaped),
            cmocka_unit_test(a_value_inside_quoted_text_is_escaped_and_the_quotes_stay_balanced),
            cmocka_unit_test(an_empty_quoted_value_stays_an_empty_pair_of_quotes),
            cmocka_unit_test(utf8_passes_unchanged),
            cmocka_unit_test(a_plain_bare_value_is_written_as_it_is),
            cmocka_unit_test(a_bare_value_with_an_equals_sign_is_quoted),
            cmocka_unit_test(a_bare_value_with_a_quote_is_quoted_and_escaped),
            cmocka_unit_test(a_bare_value_with_a_space_is_quoted),
            cmocka_unit_test(a_bare_value_with_a_backslash_is_quoted_and_escaped),
            cmocka_unit_test(a_bare_value_with_a_newline_is_quoted_and_escaped),
            cmocka_unit_test(an_empty_bare_value_is_written_as_empty_quotes),
            cmocka_unit_test(a_null_string_is_written_as_null),
            cmocka_unit_test(a_bare_message_without_a_key_follows_the_same_rule),
            cmocka_unit_test(a_star_precision_limits_the_string_before_escaping),
            cmocka_unit_test(a_width_on_a_string_pads_and_the_padding_is_quoted),
            cmocka_unit_test(every_length_modifier_formats_its_type),
            cmocka_unit_test(flags_widths_and_bases_are_kept),
            cmocka_unit_test(floating_point_and_characters_and_percent),
            cmocka_unit_test(a_pointer_is_formatted_as_printf_does),
            cmocka_unit_test(a_very_long_bare_value_is_cut_to_the_line_cap_and_the_line_ends),
            cmocka_unit_test(a_long_value_of_escapes_is_cut_between_escapes_and_its_quote_closed),
            cmocka_unit_test(a_long_value_inside_format_quotes_is_closed_too),
            cmocka_unit_test(a_number_that_does_not_fit_takes_its_key_with_it),
            cmocka_unit_test(an_unsupported_conversion_ends_the_line_with_a_marker),
            cmocka_unit_test(on_the_journal_stream_each_level_carries_its_sd_daemon_priority),
            cmocka_unit_test(without_journal_stream_the_line_has_no_prefix),
            cmocka_unit_test(a_journal_stream_that_is_not_stderr_gives_no_prefix),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
