/*
 * The intake (group committer), each test on its own store in a temporary directory.
 * What a source relies on: one `done` per submission, after its commit, with the store's
 * verdict (accepted, stale, duplicate with the first verdict, conflict); hooks that hear
 * every transaction after its `done`s; callbacks made without the intake's lock (a
 * callback may submit again); bulk submitters held back by the queue bound; nothing
 * taken after a drain. Outcomes are read back from the store itself where it matters.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "config/config.h"
#include "queue/intake.h"
#include "store/store.h"

struct fixture {
        char dir[64];
        char path[128];
        struct config *cfg;
        struct intake *in;
};

/* What the callbacks saw. */
struct seen {
        atomic_int done;
        atomic_int hooks, hook_items, hook_accepted;
        atomic_int done_before_hook_ok; /* every hook came after its items' dones, and
                                         * told of a commit that worked (the committer's
                                         * thread cannot fail a cmocka test itself) */
        struct intake_result last[8];   /* the first 8 results, in callback order */
        char last_order[8][16];
};

static struct seen seen;

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        char text[256], *errors = NULL;

        snprintf(f->dir, sizeof(f->dir), "/tmp/orderbridge-intake-XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        snprintf(f->path, sizeof(f->path), "%s/orderbridge.db", f->dir);
        snprintf(text, sizeof(text), "[store]\npath = %s\n[site]\nid = shop.example.ru\n", f->path);
        if (config_load_string(text, "test", &f->cfg, &errors) != 0)
                return -1;
        free(errors);
        if (intake_new(f->cfg, &f->in) != 0)
                return -1;
        memset(&seen, 0, sizeof(seen));
        atomic_store(&seen.done_before_hook_ok, 1);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
        struct fixture *f = *state;
        char p[160];

        f->in = intake_free(f->in);
        for (size_t i = 0; i < 4; i++) {
                snprintf(p, sizeof(p), "%s%s", f->path, suffixes[i]);
                unlink(p);
        }
        rmdir(f->dir);
        config_free(f->cfg);
        free(f);
        return 0;
}

static struct snapshot *snap(const char *id, int version)
{
        struct snapshot_error err;
        struct snapshot *s;
        char text[300];

        snprintf(text, sizeof(text),
                 "{\"site\":\"shop.example.ru\",\"order\":{\"id\":\"%s\",\"status\":\"N\","
                 "\"created_at\":\"2026-03-13T10:00:00+03:00\",\"version\":%d,"
                 "\"price\":\"4990.00\",\"currency\":\"RUB\"}}",
                 id, version);
        if (snapshot_parse(text, strlen(text), &s, &err) != 0)
                fail_msg("snapshot_parse: %s %s", err.field, err.message);
        return s;
}

static void record(void *userdata, const struct intake_result *r)
{
        int i = atomic_fetch_add(&seen.done, 1);

        if (i < 8) {
                seen.last[i] = *r;
                seen.last[i].snap = NULL;
                seen.last[i].webhook_id = NULL;
                seen.last[i].errmsg = NULL;
                snprintf(seen.last_order[i], sizeof(seen.last_order[i]), "%s", r->snap->order_id);
        }
}

static void submit_ok(struct intake *in, const char *id, int version, const char *webhook_id,
                      unsigned char body_byte, bool bulk)
{
        struct intake_item item = {
            .snap = snap(id, version),
            .webhook_id = webhook_id,
            .source = "test",
            .bulk = bulk,
        };

        memset(item.body_sha256, body_byte, sizeof(item.body_sha256));
        assert_int_equal(intake_submit(in, &item, record, NULL), 0);
        assert_null(item.snap); /* taken */
}

/* Waits for everything submitted so far: a drain commits all that is queued. */
static void settle(struct fixture *f)
{
        intake_drain(f->in);
}

/* Order `id`'s report holds `want` and not `unwanted` (may be NULL). */
static void stored_in_the_store(struct fixture *f, const char *id, const char *want,
                                const char *unwanted)
{
        struct store *st;
        char *json = NULL;

        assert_int_equal(store_open(f->path, &st), 0);
        assert_int_equal(store_order_report(st, id, &json), 0);
        if (!strstr(json, want))
                fail_msg("order %s: \"%s\" not in %s", id, want, json);
        if (unwanted && strstr(json, unwanted))
                fail_msg("order %s: \"%s\" in %s", id, unwanted, json);
        free(json);
        store_close(st);
}

/* ---- outcomes ---- */

static void an_accepted_snapshot_is_reported_once_after_its_commit_with_its_revision(void **state)
{
        struct fixture *f = *state;

        assert_true(intake_healthy(f->in));
        submit_ok(f->in, "A1", 1, NULL, 0, false);
        settle(f);
        assert_int_equal(atomic_load(&seen.done), 1);
        assert_int_equal(seen.last[0].outcome, STORE_PUT_ACCEPTED);
        assert_true(seen.last[0].rev > 0);
        assert_int_equal(seen.last[0].error, 0);
        assert_string_equal(seen.last_order[0], "A1");
        assert_true(intake_healthy(f->in));
        stored_in_the_store(f, "A1", "\"source\": \"test\"", NULL);
}

static void an_older_version_is_stale_and_a_replayed_webhook_id_is_a_duplicate(void **state)
{
        struct fixture *f = *state;

        submit_ok(f->in, "B1", 2, "msg_b", 0xaa, false);
        submit_ok(f->in, "B1", 1, NULL, 0, false);
        submit_ok(f->in, "B1", 2, "msg_b", 0xaa, false); /* the sender's retry */
        submit_ok(f->in, "B1", 3, "msg_b", 0xbb, false); /* same id, another body */
        settle(f);
        assert_int_equal(atomic_load(&seen.done), 4);
        assert_int_equal(seen.last[0].outcome, STORE_PUT_ACCEPTED);
        assert_int_equal(seen.last[1].outcome, STORE_PUT_STALE);
        assert_int_equal(seen.last[2].outcome, STORE_PUT_DUPLICATE);
        assert_int_equal(seen.last[2].first_outcome, STORE_PUT_ACCEPTED);
        assert_int_equal(seen.last[3].outcome, STORE_PUT_CONFLICT);
        /* the conflicting version 3 was not stored, not even in the history */
        stored_in_the_store(f, "B1", "\"version\": 2", "\"version\": 3");
}

/* Puts order `id` version 1 with `webhook_id` into the store at `path` as if it had been
 * received `age_ms` ago (the store takes its clock from the caller). */
static void put_received_ago(const char *path, const char *id, const char *webhook_id,
                             unsigned char body_byte, int64_t age_ms)
{
        struct snapshot *s = snap(id, 1);
        struct store *st;
        struct store_put p = {
            .order_id = s->order_id,
            .site = s->site,
            .json = s->json,
            .has_version = true,
            .version = 1,
            .webhook_id = webhook_id,
            .source = "test",
        };

        memset(p.body_sha256, body_byte, sizeof(p.body_sha256));
        assert_int_equal(store_open(path, &st), 0);
        assert_int_equal(store_put(st, &p, 1, clock_wall_ms() - age_ms), 0);
        assert_int_equal(p.outcome, STORE_PUT_ACCEPTED);
        store_close(st);
        snapshot_free(s);
}

/* The site module's spool re-sends for days, so a webhook id is remembered for 7 days
 * (README: a retry with the same webhook-id and body is answered as the first time). The
 * intake prunes after its first commit: an id received 6 days ago must still make its
 * replay a duplicate, and one received 8 days ago must be forgotten — its replay is a new
 * submission, stale against the version stored. Ages are spec figures, not the code's. */
static void webhook_ids_are_kept_seven_days_and_pruned_after(void **state)
{
        struct fixture *f = *state;
        const int64_t day = 24LL * 3600 * 1000;

        f->in = intake_free(f->in); /* the store is written first, at other times */
        put_received_ago(f->path, "W6", "msg_6_days", 0x66, 6 * day);
        put_received_ago(f->path, "W8", "msg_8_days", 0x88, 8 * day);
        put_received_ago(f->path, "W1", "msg_1_hour", 0x11, 3600 * 1000);
        assert_int_equal(intake_new(f->cfg, &f->in), 0);
        submit_ok(f->in, "N1", 1, NULL, 0, false); /* the first commit prunes */
        settle(f);
        assert_int_equal(intake_free(f->in), NULL);
        assert_int_equal(intake_new(f->cfg, &f->in), 0);
        submit_ok(f->in, "W6", 1, "msg_6_days", 0x66, false);
        submit_ok(f->in, "W8", 1, "msg_8_days", 0x88, false);
        submit_ok(f->in, "W1", 1, "msg_1_hour", 0x12, false); /* another body */
        settle(f);
        assert_int_equal(atomic_load(&seen.done), 4);
        assert_int_equal(seen.last[0].outcome, STORE_PUT_ACCEPTED);
        assert_int_equal(seen.last[1].outcome, STORE_PUT_DUPLICATE); /* 6 days: kept */
        assert_int_equal(seen.last[1].first_outcome, STORE_PUT_ACCEPTED);
        assert_int_equal(seen.last[2].outcome, STORE_PUT_STALE); /* 8 days: forgotten */
        assert_int_equal(seen.last[3].outcome, STORE_PUT_CONFLICT);
}

static void outcomes_have_names_for_the_log(void **state)
{
        assert_string_equal(store_outcome_name(STORE_PUT_ACCEPTED), "accepted");
        assert_string_equal(store_outcome_name(STORE_PUT_STALE), "stale");
        assert_string_equal(store_outcome_name(STORE_PUT_DUPLICATE), "duplicate");
        assert_string_equal(store_outcome_name(STORE_PUT_CONFLICT), "conflict");
        assert_string_equal(store_outcome_name(STORE_PUT_FAILED), "failed");
        assert_string_equal(store_outcome_name((enum store_put_outcome)99), "unknown");
}

/* ---- hooks and callbacks ---- */

static void count_commit(void *arg, const struct intake_commit *c)
{
        atomic_fetch_add(&seen.hooks, 1);
        atomic_fetch_add(&seen.hook_items, (int)c->items);
        atomic_fetch_add(&seen.hook_accepted, (int)c->accepted);
        /* the dones of this transaction were all called before its hook */
        if (atomic_load(&seen.done) < atomic_load(&seen.hook_items) || c->error != 0)
                atomic_store(&seen.done_before_hook_ok, 0);
}

static void a_commit_hook_hears_every_transaction_after_its_dones(void **state)
{
        struct fixture *f = *state;

        assert_int_equal(intake_on_commit(f->in, count_commit, NULL), 0);
        submit_ok(f->in, "C1", 1, NULL, 0, false);
        submit_ok(f->in, "C2", 1, NULL, 0, false);
        submit_ok(f->in, "C3", 1, NULL, 0, false);
        submit_ok(f->in, "C3", 1, NULL, 0, false); /* not newer: stale */
        settle(f);
        assert_true(atomic_load(&seen.hooks) >= 1);
        assert_int_equal(atomic_load(&seen.hook_items), 4);
        assert_int_equal(atomic_load(&seen.hook_accepted), 3);
        assert_int_equal(atomic_load(&seen.done_before_hook_ok), 1);
}

static void at_most_four_hooks_are_kept(void **state)
{
        struct fixture *f = *state;

        for (int i = 0; i < 4; i++)
                assert_int_equal(intake_on_commit(f->in, count_commit, NULL), 0);
        assert_int_equal(intake_on_commit(f->in, count_commit, NULL), -ENOSPC);
}

static struct intake *resubmit_to;

static void submit_again(void *userdata, const struct intake_result *r)
{
        struct intake_item item = {.snap = snap("D2", 1), .source = "test"};

        record(userdata, r);
        /* would deadlock if `done` were called with the intake's lock held */
        if (intake_submit(resubmit_to, &item, record, NULL) != 0)
                snapshot_free(item.snap); /* then D2 is never recorded: the test fails */
}

static void a_done_callback_may_submit_again(void **state)
{
        struct fixture *f = *state;
        struct intake_item item = {.snap = snap("D1", 1), .source = "test"};

        resubmit_to = f->in;
        assert_int_equal(intake_submit(f->in, &item, submit_again, NULL), 0);
        while (atomic_load(&seen.done) < 2)
                usleep(1000);
        settle(f);
        assert_int_equal(atomic_load(&seen.done), 2);
        assert_string_equal(seen.last_order[1], "D2");
        assert_int_equal(seen.last[1].outcome, STORE_PUT_ACCEPTED);
}

/* ---- back-pressure and drain ---- */

static atomic_int outstanding;

static void settle_one(void *userdata, const struct intake_result *r)
{
        atomic_fetch_sub(&outstanding, 1);
        record(userdata, r);
}

static void bulk_submissions_wait_for_room_and_all_commit(void **state)
{
        struct fixture *f = *state;
        int n = 4 * INTAKE_QUEUE_MAX, most = 0;
        struct snapshot **snaps = calloc((size_t)n, sizeof(*snaps));
        char id[16];

        /* parsed beforehand, so that submitting is far faster than committing */
        for (int i = 0; i < n; i++) {
                snprintf(id, sizeof(id), "E%d", i);
                snaps[i] = snap(id, 1);
        }
        atomic_store(&outstanding, 0);
        for (int i = 0; i < n; i++) {
                struct intake_item item = {.snap = snaps[i], .source = "test", .bulk = true};
                int now;
                atomic_fetch_add(&outstanding, 1);
                assert_int_equal(intake_submit(f->in, &item, settle_one, NULL), 0);
                now = atomic_load(&outstanding);
                most = now > most ? now : most;
        }
        free(snaps);
        settle(f);
        assert_int_equal(atomic_load(&seen.done), n);
        /* queued, plus at most one transaction being committed */
        if (most > INTAKE_QUEUE_MAX + INTAKE_COMMIT_MAX)
                fail_msg("%d submissions were waiting at once", most);
}

static void after_a_drain_nothing_is_taken_and_done_is_not_called(void **state)
{
        struct fixture *f = *state;
        struct intake_item item = {.snap = snap("F1", 1), .source = "test", .bulk = true};

        intake_drain(f->in);
        intake_drain(f->in); /* idempotent */
        assert_int_equal(intake_submit(f->in, &item, record, NULL), -ESHUTDOWN);
        assert_non_null(item.snap); /* still the caller's */
        snapshot_free(item.snap);
        assert_int_equal(atomic_load(&seen.done), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(
                an_accepted_snapshot_is_reported_once_after_its_commit_with_its_revision, setup,
                teardown),
            cmocka_unit_test_setup_teardown(
                an_older_version_is_stale_and_a_replayed_webhook_id_is_a_duplicate, setup,
                teardown),
            cmocka_unit_test_setup_teardown(webhook_ids_are_kept_seven_days_and_pruned_after,
                                            setup, teardown),
            cmocka_unit_test(outcomes_have_names_for_the_log),
            cmocka_unit_test_setup_teardown(a_commit_hook_hears_every_transaction_after_its_dones,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(at_most_four_hooks_are_kept, setup, teardown),
            cmocka_unit_test_setup_teardown(a_done_callback_may_submit_again, setup, teardown),
            cmocka_unit_test_setup_teardown(bulk_submissions_wait_for_room_and_all_commit, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(after_a_drain_nothing_is_taken_and_done_is_not_called,
                                            setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
