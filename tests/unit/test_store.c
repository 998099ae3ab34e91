/*
 * The SQLite store, each test in its own temporary directory. Time is passed in (ms), so
 * "not due before next_at, due at it" is checked to the millisecond. Delivery state is read
 * back the way an operator sees it: through store_counts, store_take_due and the
 * store_order_report JSON.
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
#include <jansson.h>
#include <sqlite3.h>

#include "store/store.h"

#define T0 1773385200000LL
#define LIFETIME_MS (5LL * 24 * 3600 * 1000)
#define SINK "roistat"

struct fixture {
        char dir[64];
        char path[128];
        struct store *s;
};

/* ---- helpers ---- */

/* Work lists and report documents are released in teardown, so that a failing assertion
 * (which leaves the test early) is reported as a failure and not also as a leak. */
static struct {
        struct store_work *w;
        size_t n;
} works[32];
static json_t *docs[32];
static size_t n_works, n_docs;

static struct store_work *keep_work(struct store_work *w, size_t n)
{
        assert_true(n_works < 32);
        works[n_works].w = w;
        works[n_works++].n = n;
        return w;
}

static json_t *keep_doc(json_t *doc)
{
        assert_true(n_docs < 32);
        return docs[n_docs++] = doc;
}

static void remove_db_files(struct fixture *f)
{
        static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
        char p[160];

        for (size_t i = 0; i < 4; i++) {
                snprintf(p, sizeof(p), "%s%s", f->path, suffixes[i]);
                unlink(p);
        }
}

static void open_store(struct fixture *f)
{
        static const char *const sinks[] = {SINK};

        if (store_open(f->path, &f->s) != 0)
                fail_msg("store_open(%s) failed", f->path);
        store_set_sinks(f->s, sinks, 1);
}

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        snprintf(f->dir, sizeof(f->dir), "/tmp/orderbridge-store-XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        snprintf(f->path, sizeof(f->path), "%s/orderbridge.db", f->dir);
        open_store(f);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;

        while (n_works > 0) {
                n_works--;
                store_work_free(works[n_works].w, works[n_works].n);
        }
        while (n_docs > 0)
                json_decref(docs[--n_docs]);
        f->s = store_close(f->s);
        remove_db_files(f);
        rmdir(f->dir);
        free(f);
        return 0;
}

static struct store *store_of(void **state)
{
        return ((struct fixture *)*state)->s;
}

/* One snapshot of `order_id` at `version` (version < 0: no version, updated_at instead). */
static struct store_put put_full(struct store *s, const char *order_id, int64_t version,
                                 int64_t updated_at, const char *webhook_id,
                                 unsigned char body_byte, int64_t now)
{
        struct store_put p;
        char json[256];

        snprintf(json, sizeof(json),
                 "{\"order\":{\"id\":\"%s\",\"version\":%lld,\"updated_at\":%lld},"
                 "\"site\":\"shop.example.ru\"}",
                 order_id, (long long)version, (long long)updated_at);
        memset(&p, 0, sizeof(p));
        p.order_id = order_id;
        p.site = "shop.example.ru";
        p.json = json;
        p.has_version = version >= 0;
        p.version = version;
        p.has_updated_at = updated_at > 0;
        p.updated_at = updated_at;
        p.webhook_id = webhook_id;
        memset(p.body_sha256, body_byte, sizeof(p.body_sha256));
        p.source = "ingest";
        if (store_put(s, &p, 1, now) != 0)
                fail_msg("store_put(%s v%lld) failed: %s", order_id, (long long)version,
                         store_errmsg(s));
        p.json = NULL; /* it pointed at this frame */
        return p;
}

static struct store_put put_version(struct store *s, const char *order_id, int64_t version,
                                    int64_t now)
{
        return put_full(s, order_id, version, 0, NULL, 0, now);
}

/* Takes due work and checks how many came back. The list is freed in teardown. */
static struct store_work *take(struct store *s, int64_t now, size_t limit, size_t want_n)
{
        struct store_work *w = NULL;
        size_t n = 0;

        assert_int_equal(store_take_due(s, SINK, now, limit, &w, &n), 0);
        keep_work(w, n);
        if (n != want_n)
                fail_msg("store_take_due at T0%+lld: want %zu works, got %zu",
                         (long long)(now - T0), want_n, n);
        return w;
}

static void expect_nothing_due(struct store *s, int64_t now)
{
        take(s, now, 10, 0);
}

static void record(struct store *s, const char *order_id, int64_t rev, enum store_result_kind kind,
                   int64_t next_at, const char *detail, int64_t now)
{
        struct store_result r = {
            .order_id = order_id, .rev = rev, .kind = kind, .next_at = next_at, .detail = detail};

        if (store_record(s, SINK, &r, 1, NULL, now, LIFETIME_MS) != 0)
                fail_msg("store_record(%s rev %lld) failed: %s", order_id, (long long)rev,
                         store_errmsg(s));
}

static struct store_counts counts(struct store *s)
{
        struct store_counts c;

        memset(&c, 0xff, sizeof(c));
        assert_int_equal(store_counts(s, SINK, &c), 0);
        return c;
}

/* store_order_report as a JSON object (freed in teardown). */
static json_t *report(struct store *s, const char *order_id)
{
        char *text = NULL;
        json_error_t jerr;
        json_t *doc;

        assert_int_equal(store_order_report(s, order_id, &text), 0);
        doc = json_loads(text, 0, &jerr);
        free(text);
        if (!doc)
                fail_msg("the report of %s is not JSON: %s", order_id, jerr.text);
        return keep_doc(doc);
}

/* The state of `order_id`'s delivery to SINK, from the report. */
static const char *delivery_state(json_t *doc)
{
        json_t *d = json_array_get(json_object_get(doc, "deliveries"), 0);

        return json_string_value(json_object_get(d, "state"));
}

static int64_t delivery_int(json_t *doc, const char *key)
{
        json_t *d = json_array_get(json_object_get(doc, "deliveries"), 0);

        return json_integer_value(json_object_get(d, key));
}

static void expect_state(struct store *s, const char *order_id, const char *want)
{
        json_t *doc = report(s, order_id);
        const char *got = delivery_state(doc);

        if (!got || strcmp(got, want) != 0)
                fail_msg("order %s: want delivery state %s, got %s", order_id, want,
                         got ? got : "(none)");
}

/* ---- opening ---- */

static void opening_a_new_file_creates_the_schema_at_the_latest_user_version(void **state)
{
        struct fixture *f = *state;
        sqlite3 *db;
        sqlite3_stmt *st;

        assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), 3); /* 3: webhook_ids_received */
        sqlite3_finalize(st);
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT uncertain_at FROM deliveries", -1, &st,
                                            NULL),
                         SQLITE_OK);
        sqlite3_finalize(st);
        assert_int_equal(
            sqlite3_prepare_v2(db,
                               "SELECT count(*) FROM sqlite_master WHERE type='table' "
                               "AND name IN ('orders','snapshots','webhook_ids',"
                               "'deliveries','attempts','dead_letters','links','meta')",
                               -1, &st, NULL),
            SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), 8);
        sqlite3_finalize(st);
        sqlite3_close(db);
}

static void opening_uses_the_wal_journal(void **state)
{
        struct fixture *f = *state;
        sqlite3 *db;
        sqlite3_stmt *st;

        assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
        sqlite3_finalize(st);
        sqlite3_close(db);
}

static void opening_a_file_from_a_newer_orderbridge_is_refused(void **state)
{
        struct fixture *f = *state;
        struct store *other = (struct store *)0x1;
        char path[160];
        sqlite3 *db;

        snprintf(path, sizeof(path), "%s/newer.db", f->dir);
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=4", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        assert_int_equal(store_open(path, &other), -EPROTO);
        assert_true(other == (struct store *)0x1);
        unlink(path);
}

static void opening_in_a_missing_directory_fails_with_an_errno(void **state)
{
        struct store *other = (struct store *)0x1;

        assert_true(store_open("/nonexistent/orderbridge/store.db", &other) < 0);
        assert_true(other == (struct store *)0x1);
}

static void close_accepts_null_and_returns_null(void **state)
{
        assert_null(store_close(NULL));
}

/* ---- putting snapshots ---- */

static void a_new_order_is_accepted_with_a_positive_rev(void **state)
{
        struct store_put p = put_version(store_of(state), "123", 4, T0);

        assert_int_equal(p.outcome, STORE_PUT_ACCEPTED);
        assert_true(p.rev > 0);
}

static void the_same_version_again_is_stale_and_gets_no_rev(void **state)
{
        struct store *s = store_of(state);

        put_version(s, "123", 4, T0);
        struct store_put p = put_version(s, "123", 4, T0 + 1);
        assert_int_equal(p.outcome, STORE_PUT_STALE);
        assert_int_equal(p.rev, 0);
}

static void a_lower_version_is_stale_and_the_stored_snapshot_stays(void **state)
{
        struct store *s = store_of(state);
        struct store_put v5 = put_version(s, "123", 5, T0);
        struct store_put v3 = put_version(s, "123", 3, T0 + 1);
        json_t *doc;

        assert_int_equal(v3.outcome, STORE_PUT_STALE);
        doc = report(s, "123");
        assert_int_equal(json_integer_value(json_object_get(doc, "rev")), v5.rev);
        assert_int_equal(
            json_integer_value(json_object_get(
                json_object_get(json_object_get(doc, "snapshot"), "order"), "version")),
            5);
}

static void a_higher_version_is_accepted_with_a_larger_rev(void **state)
{
        struct store *s = store_of(state);
        struct store_put v4 = put_version(s, "123", 4, T0);
        struct store_put v5 = put_version(s, "123", 5, T0 + 1);

        assert_int_equal(v5.outcome, STORE_PUT_ACCEPTED);
        assert_true(v5.rev > v4.rev);
}

static void without_versions_a_later_updated_at_wins_and_an_earlier_one_is_stale(void **state)
{
        struct store *s = store_of(state);

        assert_int_equal(put_full(s, "7", -1, 1000, NULL, 0, T0).outcome, STORE_PUT_ACCEPTED);
        assert_int_equal(put_full(s, "7", -1, 1001, NULL, 0, T0).outcome, STORE_PUT_ACCEPTED);
        assert_int_equal(put_full(s, "7", -1, 1001, NULL, 0, T0).outcome, STORE_PUT_STALE);
        assert_int_equal(put_full(s, "7", -1, 999, NULL, 0, T0).outcome, STORE_PUT_STALE);
}

static void orders_are_independent_of_each_other(void **state)
{
        struct store *s = store_of(state);

        put_version(s, "1", 9, T0);
        assert_int_equal(put_version(s, "2", 1, T0).outcome, STORE_PUT_ACCEPTED);
}

static void a_replayed_webhook_id_with_the_same_body_is_a_duplicate_of_the_accepted(void **state)
{
        struct store *s = store_of(state);
        struct store_put first = put_full(s, "123", 4, 0, "msg_1", 0xab, T0);
        struct store_put again = put_full(s, "123", 4, 0, "msg_1", 0xab, T0 + 1000);

        assert_int_equal(first.outcome, STORE_PUT_ACCEPTED);
        assert_int_equal(again.outcome, STORE_PUT_DUPLICATE);
        assert_int_equal(again.first_outcome, STORE_PUT_ACCEPTED);
        assert_int_equal(again.rev, 0);
}

static void pruning_forgets_only_webhook_ids_older_than_the_cut(void **state)
{
        struct store *s = store_of(state);

        put_full(s, "1", 1, 0, "msg_old", 0x01, T0);
        put_full(s, "2", 1, 0, "msg_new", 0x02, T0 + 5000);
        assert_int_equal(store_prune_webhook_ids(s, T0 + 1000), 1);
        /* the pruned id is no longer a duplicate: the snapshot is judged by its version */
        assert_int_equal(put_full(s, "1", 1, 0, "msg_old", 0x01, T0 + 6000).outcome,
                         STORE_PUT_STALE);
        /* the kept one still is */
        assert_int_equal(put_full(s, "2", 1, 0, "msg_new", 0x02, T0 + 6000).outcome,
                         STORE_PUT_DUPLICATE);
        assert_int_equal(store_prune_webhook_ids(s, T0 + 1000), 0);
}

static void a_replayed_webhook_id_of_a_stale_snapshot_is_a_duplicate_of_the_stale(void **state)
{
        struct store *s = store_of(state);

        put_version(s, "123", 9, T0);
        assert_int_equal(put_full(s, "123", 4, 0, "msg_old", 0x01, T0).outcome, STORE_PUT_STALE);
        struct store_put again = put_full(s, "123", 4, 0, "msg_old", 0x01, T0);
        assert_int_equal(again.outcome, STORE_PUT_DUPLICATE);
        assert_int_equal(again.first_outcome, STORE_PUT_STALE);
}

static void a_webhook_id_reused_with_another_body_is_a_conflict_and_changes_nothing(void **state)
{
        struct store *s = store_of(state);
        struct store_put first = put_full(s, "123", 4, 0, "msg_1", 0xab, T0);
        struct store_put other = put_full(s, "123", 5, 0, "msg_1", 0xcd, T0 + 1);
        json_t *doc;

        assert_int_equal(other.outcome, STORE_PUT_CONFLICT);
        assert_int_equal(other.rev, 0);
        doc = report(s, "123");
        assert_int_equal(json_integer_value(json_object_get(doc, "rev")), first.rev);
        assert_int_equal(json_array_size(json_object_get(doc, "history")), 1);
}

static void several_puts_in_one_call_each_get_their_outcome(void **state)
{
        struct store *s = store_of(state);
        struct store_put p[3];
        const char *json = "{\"order\":{}}";

        memset(p, 0, sizeof(p));
        for (int i = 0; i < 3; i++) {
                p[i].order_id = i == 2 ? "B" : "A";
                p[i].site = "s";
                p[i].json = json;
                p[i].has_version = true;
                p[i].source = "import";
        }
        p[0].version = 1;
        p[1].version = 2;
        p[2].version = 1;
        assert_int_equal(store_put(s, p, 3, T0), 0);
        assert_int_equal(p[0].outcome, STORE_PUT_ACCEPTED);
        assert_int_equal(p[1].outcome, STORE_PUT_ACCEPTED);
        assert_int_equal(p[2].outcome, STORE_PUT_ACCEPTED);
        assert_true(p[1].rev > p[0].rev);
        assert_true(p[2].rev > p[1].rev);
}

/* ---- taking work ---- */

static void two_quick_versions_give_one_delivery_of_the_newer_rev(void **state)
{
        struct store *s = store_of(state);
        struct store_work *w;

        put_version(s, "123", 4, T0);
        struct store_put v5 = put_version(s, "123", 5, T0 + 1);
        w = take(s, T0 + 2, 10, 1);
        assert_string_equal(w[0].order_id, "123");
        assert_int_equal(w[0].rev, v5.rev);
        assert_non_null(strstr(w[0].json, "\"version\":5"));
        assert_int_equal(w[0].attempts, 0);
}

static void taken_work_is_in_flight_and_not_handed_out_twice(void **state)
{
        struct store *s = store_of(state);
        struct store_counts c;

        put_version(s, "123", 4, T0);
        take(s, T0, 10, 1);
        expect_nothing_due(s, T0 + 3600000);
        c = counts(s);
        assert_int_equal(c.inflight, 1);
        assert_int_equal(c.pending, 0);
}

static void a_snapshot_is_not_due_before_it_was_received(void **state)
{
        struct store *s = store_of(state);

        put_version(s, "123", 4, T0);
        expect_nothing_due(s, T0 - 1);
}

static void nothing_is_due_for_a_sink_the_store_was_not_told_about(void **state)
{
        struct store *s = store_of(state);
        struct store_work *w = NULL;
        size_t n = 99;

        put_version(s, "123", 4, T0);
        assert_int_equal(store_take_due(s, "bitrix24", T0, 10, &w, &n), 0);
        keep_work(w, n);
        assert_int_equal(n, 0);
}

static void take_due_honours_its_limit_and_hands_out_the_oldest_first(void **state)
{
        struct store *s = store_of(state);
        struct store_work *w;

        put_version(s, "c", 1, T0 + 2);
        put_version(s, "a", 1, T0);
        put_version(s, "b", 1, T0 + 1);
        w = take(s, T0 + 10, 2, 2);
        assert_string_equal(w[0].order_id, "a");
        assert_string_equal(w[1].order_id, "b");
        w = take(s, T0 + 10, 2, 1);
        assert_string_equal(w[0].order_id, "c");
}

/* ---- recording results ---- */

static void ok_marks_the_delivery_done(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);
        struct store_counts c;
        json_t *doc;

        take(s, T0, 10, 1);
        record(s, "123", p.rev, STORE_OK, 0, NULL, T0 + 100);
        c = counts(s);
        assert_int_equal(c.done, 1);
        assert_int_equal(c.inflight + c.pending + c.retrying + c.waiting + c.dead, 0);
        doc = report(s, "123");
        assert_int_equal(delivery_int(doc, "done_rev"), p.rev);
        expect_nothing_due(s, T0 + 3600000);
}

static void tempfail_retries_not_before_next_at_and_at_it(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);
        struct store_work *w;

        take(s, T0, 10, 1);
        record(s, "123", p.rev, STORE_TEMPFAIL, T0 + 5000, "HTTP 503", T0 + 100);
        assert_int_equal(counts(s).retrying, 1);
        expect_state(s, "123", "retrying");
        expect_nothing_due(s, T0 + 4999);
        assert_int_equal(store_next_due(s, SINK), T0 + 5000);
        w = take(s, T0 + 5000, 10, 1);
        assert_int_equal(w[0].attempts, 1);
        assert_int_equal(w[0].first_failed_at, T0 + 100);
}

static void each_tempfail_counts_an_attempt_and_keeps_the_first_failure_time(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);
        struct store_work *w;

        take(s, T0, 10, 1);
        record(s, "123", p.rev, STORE_TEMPFAIL, T0 + 1000, "HTTP 503", T0 + 10);
        take(s, T0 + 1000, 10, 1);
        record(s, "123", p.rev, STORE_TEMPFAIL, T0 + 3000, "HTTP 502", T0 + 1010);
        w = take(s, T0 + 3000, 10, 1);
        assert_int_equal(w[0].attempts, 2);
        assert_int_equal(w[0].first_failed_at, T0 + 10);
}

static void a_new_snapshot_while_retrying_keeps_the_backoff(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);
        struct store_work *w;

        take(s, T0, 10, 1);
        record(s, "123", p.rev, STORE_TEMPFAIL, T0 + 60000, "HTTP 503", T0 + 100);
        struct store_put v5 = put_version(s, "123", 5, T0 + 200);
        assert_int_equal(v5.outcome, STORE_PUT_ACCEPTED);
        expect_state(s, "123", "retrying");
        expect_nothing_due(s, T0 + 59999);
        assert_int_equal(store_next_due(s, SINK), T0 + 60000);
        w = take(s, T0 + 60000, 10, 1);
        assert_int_equal(w[0].rev, v5.rev);
}

static void permfail_makes_a_dead_letter_with_its_reason(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);
        json_t *doc, *dl;

        take(s, T0, 10, 1);
        record(s, "123", p.rev, STORE_PERMFAIL, 0, "HTTP 400 request_data_validation_error",
               T0 + 100);
        assert_int_equal(counts(s).dead, 1);
        expect_nothing_due(s, T0 + 3600000);
        doc = report(s, "123");
        assert_string_equal(delivery_state(doc), "dead");
        dl = json_array_get(json_object_get(doc, "dead_letters"), 0);
        assert_non_null(dl);
        assert_string_equal(json_string_value(json_object_get(dl, "sink")), SINK);
        assert_int_equal(json_integer_value(json_object_get(dl, "rev")), p.rev);
        assert_string_equal(json_string_value(json_object_get(dl, "reason")),
                            "HTTP 400 request_data_validation_error");
}

static void tempfail_just_inside_the_lifetime_still_retries(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);

        take(s, T0, 10, 1);
        record(s, "123", p.rev, STORE_TEMPFAIL, T0 + 1000, "HTTP 503", T0);
        take(s, T0 + LIFETIME_MS - 1, 10, 1);
        record(s, "123", p.rev, STORE_TEMPFAIL, T0 + LIFETIME_MS + 5000, "HTTP 503",
               T0 + LIFETIME_MS - 1);
        expect_state(s, "123", "retrying");
}

static void tempfail_at_the_end_of_the_lifetime_becomes_a_dead_letter(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);
        json_t *doc;

        take(s, T0, 10, 1);
        record(s, "123", p.rev, STORE_TEMPFAIL, T0 + 1000, "HTTP 503", T0);
        take(s, T0 + LIFETIME_MS, 10, 1);
        record(s, "123", p.rev, STORE_TEMPFAIL, T0 + LIFETIME_MS + 5000, "HTTP 503",
               T0 + LIFETIME_MS);
        assert_int_equal(counts(s).dead, 1);
        doc = report(s, "123");
        assert_string_equal(delivery_state(doc), "dead");
        assert_int_equal(json_array_size(json_object_get(doc, "dead_letters")), 1);
        expect_nothing_due(s, T0 + LIFETIME_MS + 5000);
}

static void a_newer_snapshot_during_flight_is_due_once_the_older_one_succeeds(void **state)
{
        struct store *s = store_of(state);
        struct store_put v4 = put_version(s, "123", 4, T0);
        struct store_work *w;
        json_t *doc;

        take(s, T0, 10, 1);
        struct store_put v5 = put_version(s, "123", 5, T0 + 10);
        expect_state(s, "123", "inflight");
        record(s, "123", v4.rev, STORE_OK, 0, NULL, T0 + 20);
        doc = report(s, "123");
        assert_string_equal(delivery_state(doc), "pending");
        assert_int_equal(delivery_int(doc, "done_rev"), v4.rev);
        w = take(s, T0 + 20, 10, 1);
        assert_int_equal(w[0].rev, v5.rev);
        record(s, "123", v5.rev, STORE_OK, 0, NULL, T0 + 30);
        assert_int_equal(counts(s).done, 1);
}

static void a_newer_snapshot_during_flight_is_due_even_if_the_older_one_died(void **state)
{
        struct store *s = store_of(state);
        struct store_put v4 = put_version(s, "123", 4, T0);

        take(s, T0, 10, 1);
        put_version(s, "123", 5, T0 + 10);
        record(s, "123", v4.rev, STORE_PERMFAIL, 0, "bad data in v4", T0 + 20);
        expect_state(s, "123", "pending");
        take(s, T0 + 20, 10, 1);
}

static void waiting_is_looked_at_again_after_next_at(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);
        struct store_work *w;

        take(s, T0, 10, 1);
        record(s, "123", p.rev, STORE_WAITING, T0 + 600000, "visit not seen yet", T0 + 100);
        assert_int_equal(counts(s).waiting, 1);
        expect_state(s, "123", "waiting");
        expect_nothing_due(s, T0 + 599999);
        w = take(s, T0 + 600000, 10, 1);
        assert_int_equal(w[0].waits, 1);
        assert_int_equal(w[0].attempts, 0);
}

static void an_ok_after_failures_clears_attempts_for_the_next_snapshot(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);
        struct store_work *w;

        take(s, T0, 10, 1);
        record(s, "123", p.rev, STORE_TEMPFAIL, T0 + 1000, "HTTP 503", T0 + 1);
        take(s, T0 + 1000, 10, 1);
        record(s, "123", p.rev, STORE_OK, 0, NULL, T0 + 1001);
        put_version(s, "123", 5, T0 + 2000);
        w = take(s, T0 + 2000, 10, 1);
        assert_int_equal(w[0].attempts, 0);
        assert_int_equal(w[0].first_failed_at, 0);
}

static void every_result_is_kept_as_an_attempt(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);
        json_t *doc, *attempts;

        take(s, T0, 10, 1);
        record(s, "123", p.rev, STORE_TEMPFAIL, T0 + 1000, "HTTP 503", T0 + 1);
        take(s, T0 + 1000, 10, 1);
        record(s, "123", p.rev, STORE_OK, 0, NULL, T0 + 1001);
        doc = report(s, "123");
        attempts = json_object_get(doc, "attempts");
        assert_int_equal(json_array_size(attempts), 2);
        /* newest first */
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(attempts, 0), "outcome")), "ok");
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(attempts, 1), "detail")), "HTTP 503");
}

/* ---- recovery and operator actions ---- */

static void requeue_inflight_makes_left_over_work_pending_and_due(void **state)
{
        struct store *s = store_of(state);

        put_version(s, "1", 1, T0);
        put_version(s, "2", 1, T0);
        take(s, T0, 10, 2);
        assert_int_equal(store_requeue_inflight(s, T0 + 50), 2);
        assert_int_equal(counts(s).pending, 2);
        take(s, T0 + 50, 10, 2);
        assert_int_equal(store_requeue_inflight(s, T0 + 60), 2);
        assert_int_equal(store_requeue_inflight(s, T0 + 70), 0);
}

static void retry_revives_a_dead_delivery_with_fresh_attempts(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);
        struct store_work *w;

        take(s, T0, 10, 1);
        record(s, "123", p.rev, STORE_PERMFAIL, 0, "HTTP 400", T0 + 1);
        assert_int_equal(store_retry(s, SINK, "123", T0 + 100), 1);
        expect_state(s, "123", "pending");
        w = take(s, T0 + 100, 10, 1);
        assert_int_equal(w[0].rev, p.rev);
        assert_int_equal(w[0].attempts, 0);
}

static void retry_of_an_unknown_order_or_a_done_one_changes_nothing(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);

        take(s, T0, 10, 1);
        record(s, "123", p.rev, STORE_OK, 0, NULL, T0 + 1);
        assert_int_equal(store_retry(s, SINK, "999", T0 + 2), 0);
        assert_int_equal(store_retry(s, SINK, "123", T0 + 2), 0);
        assert_int_equal(counts(s).done, 1);
}

static void retry_without_an_order_revives_every_dead_and_retrying_one(void **state)
{
        struct store *s = store_of(state);
        struct store_put a = put_version(s, "a", 1, T0);
        struct store_put b = put_version(s, "b", 1, T0);

        take(s, T0, 10, 2);
        record(s, "a", a.rev, STORE_PERMFAIL, 0, "x", T0 + 1);
        record(s, "b", b.rev, STORE_TEMPFAIL, T0 + 999999, "y", T0 + 1);
        assert_int_equal(store_retry(s, NULL, NULL, T0 + 2), 2);
        take(s, T0 + 2, 10, 2);
}

static void a_new_snapshot_revives_a_dead_delivery(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);
        struct store_work *w;

        take(s, T0, 10, 1);
        record(s, "123", p.rev, STORE_PERMFAIL, 0, "HTTP 400", T0 + 1);
        struct store_put v5 = put_version(s, "123", 5, T0 + 100);
        w = take(s, T0 + 100, 10, 1);
        assert_int_equal(w[0].rev, v5.rev);
        assert_int_equal(w[0].attempts, 0);
}

static void next_due_is_the_earliest_next_at_or_int64_max(void **state)
{
        struct store *s = store_of(state);

        assert_true(store_next_due(s, SINK) == INT64_MAX);
        put_version(s, "a", 1, T0 + 500);
        put_version(s, "b", 1, T0 + 200);
        assert_int_equal(store_next_due(s, SINK), T0 + 200);
        assert_true(store_next_due(s, "bitrix24") == INT64_MAX);
}

static void everything_survives_closing_and_reopening(void **state)
{
        struct fixture *f = *state;
        struct store_put p = put_version(f->s, "123", 4, T0);
        struct store_counts c;
        char *v = NULL;
        json_t *doc;

        take(f->s, T0, 10, 1);
        record(f->s, "123", p.rev, STORE_TEMPFAIL, T0 + 5000, "HTTP 503", T0 + 1);
        put_version(f->s, "456", 1, T0 + 2);
        assert_int_equal(store_link_set(f->s, "123", "b24.deal", "9001"), 0);
        assert_int_equal(store_meta_set(f->s, "roistat.statuses_sha256", "abc"), 0);
        f->s = store_close(f->s);

        open_store(f);
        c = counts(f->s);
        assert_int_equal(c.retrying, 1);
        assert_int_equal(c.pending, 1);
        doc = report(f->s, "123");
        assert_int_equal(json_integer_value(json_object_get(doc, "rev")), p.rev);
        assert_string_equal(delivery_state(doc), "retrying");
        assert_int_equal(delivery_int(doc, "next_at"), T0 + 5000);
        assert_int_equal(store_link_get(f->s, "123", "b24.deal", &v), 0);
        assert_string_equal(v, "9001");
        free(v);
        assert_int_equal(store_meta_get(f->s, "roistat.statuses_sha256", &v), 0);
        assert_string_equal(v, "abc");
        free(v);
        /* and the same version is still stale after the restart */
        assert_int_equal(put_version(f->s, "123", 4, T0 + 3).outcome, STORE_PUT_STALE);
}

static void a_replay_after_reopening_is_still_a_duplicate(void **state)
{
        struct fixture *f = *state;

        put_full(f->s, "123", 4, 0, "msg_1", 0xab, T0);
        f->s = store_close(f->s);
        open_store(f);
        assert_int_equal(put_full(f->s, "123", 4, 0, "msg_1", 0xab, T0).outcome,
                         STORE_PUT_DUPLICATE);
}

static void the_sink_list_can_be_replaced(void **state)
{
        static const char *const both[] = {"roistat", "bitrix24"};
        struct store *s = store_of(state);
        struct store_work *w = NULL;
        size_t n = 0;

        store_set_sinks(s, both, 2);
        put_version(s, "123", 4, T0);
        assert_int_equal(store_take_due(s, "bitrix24", T0, 10, &w, &n), 0);
        keep_work(w, n);
        assert_int_equal(n, 1);
        take(s, T0, 10, 1);
}

/* ---- links, meta, reports ---- */

static void links_are_set_read_and_overwritten(void **state)
{
        struct store *s = store_of(state);
        char *v = (char *)0x1;

        assert_int_equal(store_link_get(s, "123", "b24.deal", &v), -ENOENT);
        assert_null(v);
        assert_int_equal(store_link_set(s, "123", "b24.deal", "77"), 0);
        assert_int_equal(store_link_set(s, "123", "b24.contact", "5"), 0);
        assert_int_equal(store_link_set(s, "123", "b24.deal", "78"), 0);
        assert_int_equal(store_link_get(s, "123", "b24.deal", &v), 0);
        assert_string_equal(v, "78");
        free(v);
        assert_int_equal(store_link_get(s, "123", "b24.contact", &v), 0);
        assert_string_equal(v, "5");
        free(v);
        assert_int_equal(store_link_get(s, "124", "b24.deal", &v), -ENOENT);
}

static void meta_is_set_read_and_overwritten(void **state)
{
        struct store *s = store_of(state);
        char *v = (char *)0x1;

        assert_int_equal(store_meta_get(s, "watermark", &v), -ENOENT);
        assert_null(v);
        assert_int_equal(store_meta_set(s, "watermark", "1"), 0);
        assert_int_equal(store_meta_set(s, "watermark", "2"), 0);
        assert_int_equal(store_meta_get(s, "watermark", &v), 0);
        assert_string_equal(v, "2");
        free(v);
}

static void the_report_of_an_unknown_order_is_enoent(void **state)
{
        char *text = (char *)0x1;

        assert_int_equal(store_order_report(store_of(state), "nope", &text), -ENOENT);
}

static void the_report_lists_history_newest_first_with_outcomes_and_links(void **state)
{
        struct store *s = store_of(state);
        json_t *doc, *history, *links;

        put_version(s, "123", 4, T0);
        put_version(s, "123", 3, T0 + 1);
        put_version(s, "123", 5, T0 + 2);
        store_link_set(s, "123", "b24.deal", "77");
        doc = report(s, "123");
        assert_string_equal(json_string_value(json_object_get(doc, "order_id")), "123");
        history = json_object_get(doc, "history");
        assert_int_equal(json_array_size(history), 3);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(history, 0), "version")),
                         5);
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(history, 1), "outcome")), "stale");
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(history, 2), "source")), "ingest");
        links = json_object_get(doc, "links");
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(links, 0), "remote_id")), "77");
        assert_string_equal(delivery_state(doc), "pending");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
            T(opening_a_new_file_creates_the_schema_at_the_latest_user_version),
            T(opening_uses_the_wal_journal),
            T(opening_a_file_from_a_newer_orderbridge_is_refused),
            T(opening_in_a_missing_directory_fails_with_an_errno),
            T(close_accepts_null_and_returns_null),
            T(a_new_order_is_accepted_with_a_positive_rev),
            T(the_same_version_again_is_stale_and_gets_no_rev),
            T(a_lower_version_is_stale_and_the_stored_snapshot_stays),
            T(a_higher_version_is_accepted_with_a_larger_rev),
            T(without_versions_a_later_updated_at_wins_and_an_earlier_one_is_stale),
            T(orders_are_independent_of_each_other),
            T(a_replayed_webhook_id_with_the_same_body_is_a_duplicate_of_the_accepted),
            T(a_replayed_webhook_id_of_a_stale_snapshot_is_a_duplicate_of_the_stale),
            T(pruning_forgets_only_webhook_ids_older_than_the_cut),
            T(a_webhook_id_reused_with_another_body_is_a_conflict_and_changes_nothing),
            T(several_puts_in_one_call_each_get_their_outcome),
            T(two_quick_versions_give_one_delivery_of_the_newer_rev),
            T(taken_work_is_in_flight_and_not_handed_out_twice),
            T(a_snapshot_is_not_due_before_it_was_received),
            T(nothing_is_due_for_a_sink_the_store_was_not_told_about),
            T(take_due_honours_its_limit_and_hands_out_the_oldest_first),
            T(ok_marks_the_delivery_done),
            T(tempfail_retries_not_before_next_at_and_at_it),
            T(each_tempfail_counts_an_attempt_and_keeps_the_first_failure_time),
            T(a_new_snapshot_while_retrying_keeps_the_backoff),
            T(permfail_makes_a_dead_letter_with_its_reason),
            T(tempfail_just_inside_the_lifetime_still_retries),
            T(tempfail_at_the_end_of_the_lifetime_becomes_a_dead_letter),
            T(a_newer_snapshot_during_flight_is_due_once_the_older_one_succeeds),
            T(a_newer_snapshot_during_flight_is_due_even_if_the_older_one_died),
            T(waiting_is_looked_at_again_after_next_at),
            T(an_ok_after_failures_clears_attempts_for_the_next_snapshot),
            T(every_result_is_kept_as_an_attempt),
            T(requeue_inflight_makes_left_over_work_pending_and_due),
            T(retry_revives_a_dead_delivery_with_fresh_attempts),
            T(retry_of_an_unknown_order_or_a_done_one_changes_nothing),
            T(retry_without_an_order_revives_every_dead_and_retrying_one),
            T(a_new_snapshot_revives_a_dead_delivery),
            T(next_due_is_the_earliest_next_at_or_int64_max),
            T(everything_survives_closing_and_reopening),
            T(a_replay_after_reopening_is_still_a_duplicate),
            T(the_sink_list_can_be_replaced),
            T(links_are_set_read_and_overwritten),
            T(meta_is_set_read_and_overwritten),
            T(the_report_of_an_unknown_order_is_enoent),
            T(the_report_lists_history_newest_first_with_outcomes_and_links),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
