/*
 * html_text and the admin check (http_auth_check): what reaches a page is escaped, and
 * only the admin token, as a bearer token or a Basic password, is the admin.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/auth.h"
#include "http/html.h"

static char *escaped(const char *text, size_t max)
{
        struct buf b;

        buf_init(&b, max);
        html_text(&b, text);
        if (b.toobig) {
                buf_free(&b);
                return NULL;
        }
        return buf_steal(&b);
}

static void markup_characters_become_entities(void **state)
{
        char *s = escaped("<script>alert('x' & \"y\")</script>", 4096);

        assert_string_equal(s, "&lt;script&gt;alert(&#39;x&#39; &amp; &quot;y&quot;)&lt;/script&gt;");
        free(s);
}

static void plain_text_and_utf8_pass_unchanged(void **state)
{
        char *s = escaped("Ivan Petrov, \xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd\ttab\nline", 4096);

        assert_string_equal(s, "Ivan Petrov, \xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd\ttab\nline");
        free(s);
}

static void control_characters_become_replacement_characters(void **state)
{
        char *s = escaped("a\x01" "b\x1b[31m\x7f", 4096);

        assert_string_equal(s, "a\xef\xbf\xbd" "b\xef\xbf\xbd[31m\xef\xbf\xbd");
        free(s);
}

static void a_long_text_is_escaped_whole_across_chunks(void **state)
{
        char in[1001], *s;

        memset(in, '<', 1000);
        in[1000] = '\0';
        s = escaped(in, 8192);
        assert_int_equal(strlen(s), 4000);
        for (size_t i = 0; i < 1000; i++)
                assert_memory_equal(s + 4 * i, "&lt;", 4);
        free(s);
}

static void a_text_past_the_cap_marks_the_buffer(void **state)
{
        assert_null(escaped("<<<<<<<<", 10));
}

/* html_textf formats first, on the stack or (past 256 bytes) the heap, then escapes. */
static void a_formatted_text_is_escaped_short_or_long(void **state)
{
        char long_name[600];
        struct buf b;

        (void)state;
        memset(long_name, '<', sizeof(long_name) - 1);
        long_name[sizeof(long_name) - 1] = '\0';
        buf_init(&b, 1 << 16);
        assert_int_equal(html_textf(&b, "%s=%d", "a&b", 7), 0);
        assert_string_equal(b.data, "a&amp;b=7");
        buf_reset(&b);
        assert_int_equal(html_textf(&b, "[%s]", long_name), 0);
        assert_int_equal(b.len, 2 + 4 * (sizeof(long_name) - 1));
        assert_int_equal(b.data[0], '[');
        assert_memory_equal(b.data + 1, "&lt;&lt;", 8);
        assert_int_equal(b.data[b.len - 1], ']');
        buf_free(&b);
}

static void a_null_text_appends_nothing(void **state)
{
        char *s = escaped(NULL, 100);

        assert_string_equal(s, "");
        free(s);
}

static void only_the_token_is_the_admin(void **state)
{
        const char *t = "adm-secret";

        assert_int_equal(http_auth_check(t, "Bearer adm-secret"), HTTP_AUTH_OK);
        assert_int_equal(http_auth_check(t, "bearer adm-secret"), HTTP_AUTH_OK);
        /* "op:adm-secret" and ":adm-secret" */
        assert_int_equal(http_auth_check(t, "Basic b3A6YWRtLXNlY3JldA=="), HTTP_AUTH_OK);
        assert_int_equal(http_auth_check(t, "Basic OmFkbS1zZWNyZXQ="), HTTP_AUTH_OK);
        assert_int_equal(http_auth_check(t, "Bearer adm-secreT"), HTTP_AUTH_WRONG);
        assert_int_equal(http_auth_check(t, "Bearer adm-secre"), HTTP_AUTH_WRONG);
        assert_int_equal(http_auth_check(t, "Bearer adm-secretx"), HTTP_AUTH_WRONG);
        /* "adm-secret:x": the token as the user name is not the password */
        assert_int_equal(http_auth_check(t, "Basic YWRtLXNlY3JldDp4"), HTTP_AUTH_WRONG);
        assert_int_equal(http_auth_check(t, NULL), HTTP_AUTH_MISSING);
        assert_int_equal(http_auth_check(t, ""), HTTP_AUTH_MISSING);
        assert_int_equal(http_auth_check(t, "Bearer "), HTTP_AUTH_MISSING);
        assert_int_equal(http_auth_check(t, "Token adm-secret"), HTTP_AUTH_MISSING);
        assert_int_equal(http_auth_check(t, "Basic !!!"), HTTP_AUTH_MISSING);
        assert_int_equal(http_auth_check(t, "Basic YWRtLXNlY3JldA=="), HTTP_AUTH_MISSING);
        assert_int_equal(http_auth_check(NULL, "Bearer adm-secret"), HTTP_AUTH_DISABLED);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(markup_characters_become_entities),
            cmocka_unit_test(plain_text_and_utf8_pass_unchanged),
            cmocka_unit_test(control_characters_become_replacement_characters),
            cmocka_unit_test(a_long_text_is_escaped_whole_across_chunks),
            cmocka_unit_test(a_text_past_the_cap_marks_the_buffer),
            cmocka_unit_test(a_null_text_appends_nothing),
            cmocka_unit_test(a_formatted_text_is_escaped_short_or_long),
            cmocka_unit_test(only_the_token_is_the_admin),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
