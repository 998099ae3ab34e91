/*
 * The JSON Lines source (`orderbridge import`), fed into a real intake on a store in a
 * temporary directory. Each test writes a file, runs the source to its end, and checks
 * the totals it reports and what the store holds: valid lines stored, bad ones counted
 * and never stored, blank lines and line endings as `getline` plus stripping read them,
 * a line over [server] max_body_bytes refused without being read into memory.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "queue/intake.h"
#include "sources/source_file.h"
#include "store/store.h"

#define MAX_BODY 1024 /* the smallest [server] max_body_bytes allowed */

struct fixture {
        char dir[64];
        char db[128], file[128];
        struct config *cfg;
        struct intake *in;
        struct source *src;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        char text[300], *errors = NULL;

        snprintf(f->dir, sizeof(f->dir), "/tmp/orderbridge-import-XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        snprintf(f->db, sizeof(f->db), "%s/orderbridge.db", f->dir);
        snprintf(f->file, sizeof(f->file), "%s/backfill.jsonl", f->dir);
        snprintf(text, sizeof(text),
                 "[server]\nmax_body_bytes = %d\n[store]\npath = %s\n[site]\nid = "
                 "shop.example.ru\n",
                 MAX_BODY, f->db);
        if (config_load_string(text, "test", &f->cfg, &errors) != 0)
                return -1;
        free(errors);
        if (intake_new(f->cfg, &f->in) != 0)
                return -1;
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
        struct fixture *f = *state;
        char p[160];

        f->src = source_free(f->src);
        f->in = intake_free(f->in);
        for (size_t i = 0; i < 4; i++) {
                snprintf(p, sizeof(p), "%s%s", f->db, suffixes[i]);
                unlink(p);
        }
        unlink(f->file);
        rmdir(f->dir);
        config_free(f->cfg);
        free(f);
        return 0;
}

static void write_file(struct fixture *f, const char *text, size_t len)
{
        FILE *fp = fopen(f->file, "w");

        assert_non_null(fp);
        assert_int_equal(fwrite(text, 1, len, fp), len);
        assert_int_equal(fclose(fp), 0);
}

/* A valid snapshot line of `site` (no newline). */
static void line(char *buf, size_t size, const char *site, const char *id, int version)
{
        snprintf(buf, size,
                 "{\"site\":\"%s\",\"order\":{\"id\":\"%s\",\"status\":\"N\","
                 "\"created_at\":\"2026-03-13T10:00:00+03:00\",\"version\":%d,"
                 "\"price\":\"4990.00\",\"currency\":\"RUB\"}}",
                 site, id, version);
}

static int run(struct fixture *f, struct source_file_stats *ret)
{
        assert_int_equal(source_file_new(f->cfg, f->file, &f->src), 0);
        assert_int_equal(source_start(f->src, f->in), 0);
        return source_file_wait(f->src, ret);
}

static bool is_stored(struct fixture *f, const char *id)
{
        struct store *st;
        char *json = NULL;
        int r;

        assert_int_equal(store_open(f->db, &st), 0);
        r = store_order_report(st, id, &json);
        free(json);
        store_close(st);
        return r == 0;
}

static void valid_lines_are_stored_and_bad_ones_counted_never_stored(void **state)
{
        struct fixture *f = *state;
        struct source_file_stats st;
        char a[300], b[300], c[300], other[300], s5[300], text[4096], longl[MAX_BODY + 2];
        size_t n;

        line(a, sizeof(a), "shop.example.ru", "S1", 1);
        line(b, sizeof(b), "shop.example.ru", "S2", 1);
        line(c, sizeof(c), "shop.example.ru", "S3", 1);
        line(other, sizeof(other), "other.example.ru", "S4", 1);
        /* a line of MAX_BODY + 1 bytes: the valid S5 padded with leading spaces */
        line(s5, sizeof(s5), "shop.example.ru", "S5", 1);
        n = strlen(s5);
        memset(longl, ' ', MAX_BODY + 1 - n);
        memcpy(longl + MAX_BODY + 1 - n, s5, n + 1);
        assert_int_equal(strlen(longl), MAX_BODY + 1);
        snprintf(text, sizeof(text),
                 "%s\n"               /* 1 accepted */
                 "\n"                 /* 2 blank */
                 "{\"site\":\"x\"}\n" /* 3 invalid: no order */
                 "%s\n"               /* 4 invalid: another site */
                 "%s\r\n"             /* 5 accepted, CRLF */
                 "%s\n"               /* 6 stale: S1 again */
                 "%s\n"               /* 7 invalid: too long */
                 "\r\n"               /* 8 blank */
                 "%s",                /* 9 accepted, no final newline */
                 a, other, b, a, longl, c);
        write_file(f, text, strlen(text));

        assert_int_equal(run(f, &st), 0);
        assert_int_equal(st.lines, 9);
        assert_int_equal(st.accepted, 3);
        assert_int_equal(st.stale, 1);
        assert_int_equal(st.invalid, 3);
        assert_int_equal(st.failed, 0);
        assert_true(is_stored(f, "S1"));
        assert_true(is_stored(f, "S2"));
        assert_true(is_stored(f, "S3"));
        assert_false(is_stored(f, "S4"));
        assert_false(is_stored(f, "S5"));
}

static void a_line_exactly_at_max_body_bytes_is_read_whole(void **state)
{
        struct fixture *f = *state;
        struct source_file_stats st;
        char text[MAX_BODY + 8], body[300];
        size_t len;

        line(body, sizeof(body), "shop.example.ru", "AT", 1);
        len = strlen(body);
        memset(text, ' ', MAX_BODY - len);
        memcpy(text + MAX_BODY - len, body, len);
        memcpy(text + MAX_BODY, "\r\r\n", 3); /* the \r's are not part of the line */
        write_file(f, text, MAX_BODY + 3);

        assert_int_equal(run(f, &st), 0);
        assert_int_equal(st.lines, 1);
        assert_int_equal(st.accepted, 1);
        assert_int_equal(st.invalid, 0);
        assert_true(is_stored(f, "AT"));
}

static void a_carriage_return_inside_a_line_is_kept(void **state)
{
        struct fixture *f = *state;
        struct source_file_stats st;
        char body[300], text[400];

        /* "\r" between tokens is JSON white space: the line is valid only if it is kept
         * where it is, not taken for a line end */
        line(body, sizeof(body), "shop.example.ru", "CR", 1);
        snprintf(text, sizeof(text), "{\r\r%s\n", body + 1);
        write_file(f, text, strlen(text));

        assert_int_equal(run(f, &st), 0);
        assert_int_equal(st.accepted, 1);
        assert_true(is_stored(f, "CR"));
}

static void a_file_that_cannot_be_opened_is_an_error(void **state)
{
        struct fixture *f = *state;

        assert_int_equal(source_file_new(f->cfg, "/nonexistent/x.jsonl", &f->src), -ENOENT);
        assert_null(f->src);
}

static void a_stopped_intake_stops_the_reading_with_its_error(void **state)
{
        struct fixture *f = *state;
        struct source_file_stats st = {.lines = -1};
        char a[300], text[700];

        line(a, sizeof(a), "shop.example.ru", "Z1", 1);
        snprintf(text, sizeof(text), "%s\n%s\n", a, a);
        write_file(f, text, strlen(text));
        intake_drain(f->in);

        assert_int_equal(run(f, &st), -ESHUTDOWN);
        assert_int_equal(st.lines, -1); /* untouched on failure */
        assert_false(is_stored(f, "Z1"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(
                valid_lines_are_stored_and_bad_ones_counted_never_stored, setup, teardown),
            cmocka_unit_test_setup_teardown(a_line_exactly_at_max_body_bytes_is_read_whole, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(a_carriage_return_inside_a_line_is_kept, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(a_file_that_cannot_be_opened_is_an_error, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(a_stopped_intake_stops_the_reading_with_its_error,
                                            setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
