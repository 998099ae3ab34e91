/*
 * The retention state machine over a real SQLite store, with the clocks passed in: a
 * pass is due at once, goes in steps no larger than its batch, prunes the old versions,
 * gives the freed pages back, and is then not due again for an interval; off means never.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include "queue/retention.h"
#include "store/store.h"

#include "sqlite_peek.h"

#define T0 1773385200000LL
#define DAY (24LL * 3600 * 1000)
#define HOUR (3600LL * 1000)
#define N_ORDERS 60

struct fixture {
        char dir[64];
        char path[128];
        struct store *s;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        snprintf(f->dir, sizeof(f->dir), "/tmp/orderbridge-retention-XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        snprintf(f->path, sizeof(f->path), "%s/orderbridge.db", f->dir);
        if (store_open(f->path, &f->s) != 0)
                return -1;
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        static const char *const suffixes[] = {"", "-wal", "-shm", ".lock"};
        struct fixture *f = *state;
        char p[160];

        store_close(f->s);
        for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
                snprintf(p, sizeof(p), "%s%s", f->path, suffixes[i]);
                unlink(p);
        }
        rmdir(f->dir);
        free(f);
        return 0;
}

/* N_ORDERS orders, each in two versions of about 2 KiB received at T0 (no sinks: nothing
 * is owed, so every superseded version may go). */
static void fill(struct store *s)
{
        char json[2100], id[32];

        memset(json, 'x', sizeof(json) - 1);
        json[sizeof(json) - 1] = '\0';
        for (int v = 1; v <= 2; v++)
                for (int i = 0; i < N_ORDERS; i++) {
                        struct store_put p = {.site = "s", .json = json, .has_version = true,
                                              .version = v, .source = "import"};
                        snprintf(id, sizeof(id), "o%d", i);
                        p.order_id = id;
                        assert_int_equal(store_put(s, &p, 1, T0), 0);
                }
}

/* Steps at `mono` until the pass is over (the next step is due an interval later). */
static int run_pass(struct retention *r, struct store *s, int64_t wall, int64_t mono)
{
        int steps = 0;

        while (retention_due_at(r) <= mono + 1000) {
                mono = retention_due_at(r) > mono ? retention_due_at(r) : mono;
                assert_int_equal(retention_step(r, s, wall, mono), 1);
                assert_true(++steps < 1000);
        }
        return steps;
}

static void off_is_never_due(void **state)
{
        struct fixture *f = *state;
        struct retention *r = retention_new(0, HOUR, 1000);

        fill(f->s);
        assert_true(retention_due_at(r) == INT64_MAX);
        assert_int_equal(retention_step(r, f->s, T0 + 365 * DAY, 0), 0);
        assert_int_equal(sqlite_peek_int(f->path, "SELECT count(*) FROM snapshots"), 2 * N_ORDERS);
        retention_free(r);
}

static void a_pass_is_due_at_once_prunes_in_batches_and_gives_the_pages_back(void **state)
{
        struct fixture *f = *state;
        struct retention *r = retention_new(DAY, HOUR, 10);
        int64_t pages;
        int steps;

        fill(f->s);
        pages = sqlite_peek_int(f->path, "PRAGMA page_count");
        assert_int_equal(retention_due_at(r), 0);
        steps = run_pass(r, f->s, T0 + DAY + 1, 5000);
        /* 120 history rows in windows of 10, the end, no attempts; then pages 10 a step */
        assert_true(steps >= 12 + 1 + 1 + N_ORDERS / 10);
        assert_int_equal(sqlite_peek_int(f->path, "SELECT count(*) FROM snapshots"), N_ORDERS);
        assert_int_equal(sqlite_peek_int(f->path, "SELECT min(version) FROM snapshots"), 2);
        assert_int_equal(sqlite_peek_int(f->path, "PRAGMA freelist_count"), 0);
        /* each of the 60 versions gone took at least one page */
        assert_true(sqlite_peek_int(f->path, "PRAGMA page_count") <= pages - N_ORDERS);
        retention_free(r);
}

static void after_a_pass_the_next_is_due_an_interval_later(void **state)
{
        struct fixture *f = *state;
        struct retention *r = retention_new(DAY, HOUR, 1000);
        int64_t end;

        run_pass(r, f->s, T0, 5000);
        end = retention_due_at(r);
        assert_true(end >= 5000 + HOUR && end <= 5000 + HOUR + 1000);
        assert_int_equal(retention_step(r, f->s, T0, end - 1), 0);
        /* what is old by then goes at the next pass, not before */
        fill(f->s);
        assert_int_equal(sqlite_peek_int(f->path, "SELECT count(*) FROM snapshots"), 2 * N_ORDERS);
        run_pass(r, f->s, T0 + DAY + 1, end);
        assert_int_equal(sqlite_peek_int(f->path, "SELECT count(*) FROM snapshots"), N_ORDERS);
        retention_free(r);
}

static void versions_younger_than_the_cut_stay(void **state)
{
        struct fixture *f = *state;
        struct retention *r = retention_new(DAY, HOUR, 1000);

        fill(f->s);
        run_pass(r, f->s, T0 + DAY, 0); /* received exactly a day ago: not older */
        assert_int_equal(sqlite_peek_int(f->path, "SELECT count(*) FROM snapshots"), 2 * N_ORDERS);
        retention_free(r);
}

/* Day after day every order gets a new version and the pass runs with two days kept: the
 * store holds two versions an order and its pages stop growing once the first old ones go
 * (the file does not grow without bound; no-retention would hold a version a day). */
static void day_after_day_the_store_stays_the_same_size(void **state)
{
        struct fixture *f = *state;
        struct retention *r = retention_new(2 * DAY, HOUR, 1000);
        char json[2100], id[32];
        int64_t pages[10];

        memset(json, 'y', sizeof(json) - 1);
        json[sizeof(json) - 1] = '\0';
        for (int day = 0; day < 10; day++) {
                for (int i = 0; i < N_ORDERS; i++) {
                        struct store_put p = {.site = "s", .json = json, .has_version = true,
                                              .version = day + 1, .source = "import"};
                        snprintf(id, sizeof(id), "o%d", i);
                        p.order_id = id;
                        assert_int_equal(store_put(f->s, &p, 1, T0 + day * DAY), 0);
                }
                run_pass(r, f->s, T0 + day * DAY + 1, (int64_t)(day + 1) * 2 * HOUR);
                assert_int_equal(sqlite_peek_int(f->path, "SELECT count(*) FROM snapshots"),
                                 (day < 1 ? 1 : 2) * N_ORDERS);
                assert_int_equal(sqlite_peek_int(f->path, "SELECT min(version) FROM snapshots"),
                                 day < 1 ? 1 : day);
                assert_int_equal(sqlite_peek_int(f->path, "PRAGMA freelist_count"), 0);
                pages[day] = sqlite_peek_int(f->path, "PRAGMA page_count");
        }
        for (int day = 4; day < 10; day++)
                assert_true(pages[day] <= pages[3] + 4);
        /* two versions of 60 orders at ~2 KiB (a page each at least), not ten */
        assert_true(pages[9] < 4 * N_ORDERS);
        retention_free(r);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(off_is_never_due, setup, teardown),
            cmocka_unit_test_setup_teardown(
                a_pass_is_due_at_once_prunes_in_batches_and_gives_the_pages_back, setup, teardown),
            cmocka_unit_test_setup_teardown(after_a_pass_the_next_is_due_an_interval_later,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(versions_younger_than_the_cut_stay, setup, teardown),
            cmocka_unit_test_setup_teardown(day_after_day_the_store_stays_the_same_size, setup,
                                            teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
