/*
 * The store suite: every case runs against a fresh store of the backend under test, each
 * in its own temporary directory. Time is passed in (ms), so "not due before next_at, due
 * at it" is checked to the millisecond. Delivery state is read back the way an operator
 * sees it: through store_counts, store_take_due and the store_order_report JSON.
 */
#include "store_suite.h"

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

#include "model/snapshot.h"
#include "store/store_backend.h"

static const struct store_suite_backend *backend;

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

static void open_store(struct store_fixture *f)
{
        static const char *const sinks[] = {SINK};

        if (store_open(f->location, &f->s) != 0)
                fail_msg("store_open(%s) failed", f->location);
        store_set_sinks(f->s, sinks, 1);
}

void store_suite_use(const struct store_suite_backend *b)
{
        backend = b;
}

void store_fixture_reopen(struct store_fixture *f)
{
        f->s = store_close(f->s);
        open_store(f);
}

int store_fixture_setup(void **state)
{
        struct store_fixture *f = calloc(1, sizeof(*f));

        snprintf(f->dir, sizeof(f->dir), "/tmp/orderbridge-store-XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        backend->location(f->dir, f->location, sizeof(f->location));
        open_store(f);
        *state = f;
        return 0;
}

int store_fixture_teardown(void **state)
{
        struct store_fixture *f = *state;

        while (n_works > 0) {
                n_works--;
                store_work_free(works[n_works].w, works[n_works].n);
        }
        while (n_docs > 0)
                json_decref(docs[--n_docs]);
        f->s = store_close(f->s);
        backend->remove(f->location);
        rmdir(f->dir);
        free(f);
        return 0;
}

static struct store *store_of(void **state)
{
        return ((struct store_fixture *)*state)->s;
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

/* Takes due work of SINK for `owner` until now + lease, and checks how many came back. */
static struct store_work *take_leased(struct store *s, const char *owner, int64_t now,
                                      int64_t lease, size_t limit, size_t want_n)
{
        struct store_work *w = NULL;
        size_t n = 0;

        assert_int_equal(store_take_due(s, SINK, owner, now, lease, limit, &w, &n), 0);
        keep_work(w, n);
        if (n != want_n)
                fail_msg("store_take_due by %s at T0%+lld: want %zu works, got %zu", owner,
                         (long long)(now - T0), want_n, n);
        return w;
}

struct store_work *store_fixture_take(struct store *s, int64_t now, size_t limit, size_t want_n)
{
        return take_leased(s, OWNER, now, LEASE_MS, limit, want_n);
}

static struct store_work *take(struct store *s, int64_t now, size_t limit, size_t want_n)
{
        return store_fixture_take(s, now, limit, want_n);
}

static void expect_nothing_due(struct store *s, int64_t now)
{
        take(s, now, 10, 0);
}

void store_fixture_record(struct store *s, const char *order_id, int64_t rev,
                          enum store_result_kind kind, int64_t next_at, const char *detail,
                          int64_t now)
{
        struct store_result r = {
            .order_id = order_id, .rev = rev, .kind = kind, .next_at = next_at, .detail = detail};

        if (store_record(s, SINK, OWNER, &r, 1, NULL, now, LIFETIME_MS) != 0)
                fail_msg("store_record(%s rev %lld) failed: %s", order_id, (long long)rev,
                         store_errmsg(s));
}

static void record(struct store *s, const char *order_id, int64_t rev, enum store_result_kind kind,
                   int64_t next_at, const char *detail, int64_t now)
{
        store_fixture_record(s, order_id, rev, kind, next_at, detail, now);
}

struct store_counts store_fixture_counts(struct store *s)
{
        struct store_counts c;

        memset(&c, 0xff, sizeof(c));
        assert_int_equal(store_counts(s, SINK, &c), 0);
        return c;
}

static struct store_counts counts(struct store *s)
{
        return store_fixture_counts(s);
}

json_t *store_fixture_report(struct store *s, const char *order_id)
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

static json_t *report(struct store *s, const char *order_id)
{
        return store_fixture_report(s, order_id);
}

/* The SINK delivery of the report's order, and one of its fields. */
json_t *store_fixture_delivery(json_t *doc, const char *key)
{
        json_t *d = json_array_get(json_object_get(doc, "deliveries"), 0);

        return json_object_get(d, key);
}

const char *store_fixture_state(json_t *doc)
{
        return json_string_value(store_fixture_delivery(doc, "state"));
}

static const char *delivery_state(json_t *doc)
{
        return store_fixture_state(doc);
}

static int64_t delivery_int(json_t *doc, const char *key)
{
        return json_integer_value(store_fixture_delivery(doc, key));
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
        assert_int_equal(store_take_due(s, "bitrix24", OWNER, T0, LEASE_MS, 10, &w, &n), 0);
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

static void requeue_expired_makes_left_over_work_pending_and_due(void **state)
{
        struct store *s = store_of(state);

        put_version(s, "1", 1, T0);
        put_version(s, "2", 1, T0);
        take_leased(s, OWNER, T0, 10, 10, 2);
        assert_int_equal(store_requeue_expired(s, SINK, T0 + 50), 2);
        assert_int_equal(counts(s).pending, 2);
        take_leased(s, OWNER, T0 + 50, 10, 10, 2);
        assert_int_equal(store_requeue_expired(s, SINK, T0 + 60), 2);
        assert_int_equal(store_requeue_expired(s, SINK, T0 + 70), 0);
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

static void a_request_makes_a_done_delivery_due_again_at_the_same_rev(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);
        struct store_work *w;

        take(s, T0, 10, 1);
        record(s, "123", p.rev, STORE_OK, 0, NULL, T0 + 1);
        take(s, T0 + 2, 10, 0);
        assert_int_equal(store_request(s, SINK, "123", NULL, T0 + 5), 0);
        expect_state(s, "123", "pending");
        {
                char *json = NULL;
                int64_t at = 0;
                assert_int_equal(store_order_snapshot(s, "123", &json, &at), 0);
                assert_non_null(strstr(json, "\"version\":4"));
                assert_int_equal(at, T0);
                free(json);
                assert_int_equal(store_order_snapshot(s, "999", &json, &at), -ENOENT);
        }
        w = take(s, T0 + 5, 10, 1);
        assert_int_equal(w[0].rev, p.rev);
        assert_int_equal(w[0].received_at, T0); /* when that rev was accepted */
}

static void a_request_during_a_pass_makes_it_due_again_whatever_the_verdict(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);
        struct store_put q = put_version(s, "456", 1, T0);

        take(s, T0, 10, 2);
        assert_int_equal(store_request(s, SINK, "123", NULL, T0 + 1), 0);
        assert_int_equal(store_request(s, SINK, "456", NULL, T0 + 1), 0);
        expect_state(s, "123", "inflight"); /* the pass keeps its lease */
        record(s, "123", p.rev, STORE_OK, 0, NULL, T0 + 2);
        record(s, "456", q.rev, STORE_TEMPFAIL, T0 + 999999, "HTTP 503", T0 + 2);
        expect_state(s, "123", "pending");
        take(s, T0 + 2, 10, 2);
        record(s, "123", p.rev, STORE_OK, 0, NULL, T0 + 3);
        expect_state(s, "123", "done"); /* once: the request was used up by that pass */
}

static void a_request_revives_a_dead_delivery_and_records_its_writes(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);
        struct store_writes wr = {0};
        struct store_work *w;
        char *v = NULL;

        take(s, T0, 10, 1);
        record(s, "123", p.rev, STORE_PERMFAIL, 0, "HTTP 400", T0 + 1);
        store_writes_link(&wr, "123", "site.want", "F");
        assert_int_equal(store_request(s, SINK, "123", &wr, T0 + 2), 0);
        w = take(s, T0 + 2, 10, 1);
        assert_int_equal(w[0].attempts, 0);
        assert_int_equal(store_link_get(s, "123", "site.want", &v), 0);
        assert_string_equal(v, "F");
        free(v);
        store_writes_clear(&wr);
}

static void a_request_for_an_unknown_order_is_enoent_and_records_nothing(void **state)
{
        struct store *s = store_of(state);
        struct store_writes wr = {0};
        char *v = NULL;

        store_writes_link(&wr, "999", "site.want", "F");
        assert_int_equal(store_request(s, SINK, "999", &wr, T0), -ENOENT);
        assert_int_equal(store_link_get(s, "999", "site.want", &v), -ENOENT);
        assert_int_equal(counts(s).pending, 0);
        store_writes_clear(&wr);
}

static void a_request_makes_a_row_for_a_sink_that_had_none(void **state)
{
        struct store *s = store_of(state);
        struct store_counts c;

        put_version(s, "123", 4, T0);
        assert_int_equal(store_request(s, "other", "123", NULL, T0 + 1), 0);
        assert_int_equal(store_counts(s, "other", &c), 0);
        assert_int_equal(c.pending, 1);
}

static void a_request_among_side_writes_wakes_the_other_sink_with_the_verdict(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);
        struct store_result res = {.order_id = "123", .rev = p.rev, .kind = STORE_OK};
        struct store_writes wr = {0};
        struct store_counts c;

        assert_int_equal(store_request(s, "site", "123", NULL, T0), 0);
        assert_int_equal(store_counts(s, "site", &c), 0);
        assert_int_equal(c.pending, 1);
        take(s, T0, 10, 1);
        store_writes_link(&wr, "123", "b24.deal", "55");
        store_writes_request(&wr, "123", "site");
        store_writes_request(&wr, "999", "site"); /* no such order: nothing to ask, no failure */
        assert_null(store_writes_find_meta(&wr, "site"));
        assert_int_equal(store_record(s, SINK, OWNER, &res, 1, &wr, T0 + 1, 1000000), 0);
        assert_int_equal(store_counts(s, "site", &c), 0);
        assert_int_equal(c.pending, 1);
        assert_int_equal(c.done, 0);
        expect_state(s, "123", "done");
        store_writes_clear(&wr);
}

static void a_put_for_one_sink_only_makes_no_row_for_the_others(void **state)
{
        struct store *s = store_of(state);
        static const char *const two[] = {SINK, "other"};
        struct store_put p = {.order_id = "b24-deal-5", .site = "shop.example.ru",
                              .json = "{}", .has_version = true, .version = 1,
                              .source = "bitrix24", .sink_only = "other"};
        struct store_counts c;

        store_set_sinks(s, two, 2);
        assert_int_equal(store_put(s, &p, 1, T0), 0);
        assert_int_equal(p.outcome, STORE_PUT_ACCEPTED);
        assert_int_equal(store_counts(s, "other", &c), 0);
        assert_int_equal(c.pending, 1);
        assert_int_equal(counts(s).pending, 0);
        put_version(s, "123", 1, T0);
        assert_int_equal(counts(s).pending, 1);
        assert_int_equal(store_counts(s, "other", &c), 0);
        assert_int_equal(c.pending, 2);
}

struct listed {
        char ids[8][16];
        size_t n;
};

static int list_one(void *arg, const struct store_order_view *o)
{
        struct listed *l = arg;

        assert_true(l->n < 8);
        assert_non_null(strstr(o->json, o->order_id));
        snprintf(l->ids[l->n++], sizeof(l->ids[0]), "%s", o->order_id);
        return 0;
}

static void orders_are_listed_by_when_they_last_changed_in_pages(void **state)
{
        struct store *s = store_of(state);
        struct listed l = {0};
        int64_t total = -1;

        put_version(s, "a", 1, T0);
        put_version(s, "b", 1, T0 + 10);
        put_version(s, "c", 1, T0 + 20);
        put_version(s, "a", 2, T0 + 30); /* a changed last */
        put_version(s, "b", 1, T0 + 40); /* stale: b did not change */
        assert_int_equal(store_orders_changed(s, T0, STORE_BY_CHANGE, 0, 10, list_one, &l, &total), 0);
        assert_int_equal(total, 3);
        assert_int_equal(l.n, 3);
        assert_string_equal(l.ids[0], "b");
        assert_string_equal(l.ids[1], "c");
        assert_string_equal(l.ids[2], "a");
        l.n = 0;
        assert_int_equal(store_orders_changed(s, T0 + 10, STORE_BY_CHANGE, 1, 1, list_one, &l, &total), 0);
        assert_int_equal(total, 2); /* changed after T0+10: c and a */
        assert_int_equal(l.n, 1);
        assert_string_equal(l.ids[0], "a");
        /* by first acceptance, a's change keeps its place: a, b, c */
        l.n = 0;
        assert_int_equal(store_orders_changed(s, T0 - 1, STORE_BY_FIRST, 0, 10, list_one, &l,
                                              &total), 0);
        assert_int_equal(l.n, 3);
        assert_string_equal(l.ids[0], "a");
        assert_string_equal(l.ids[1], "b");
        assert_string_equal(l.ids[2], "c");
        l.n = 0;
        assert_int_equal(store_orders_changed(s, T0 + 10, STORE_BY_FIRST, 0, 10, list_one, &l,
                                              &total), 0);
        assert_int_equal(total, 2);
        assert_string_equal(l.ids[0], "a");
        assert_string_equal(l.ids[1], "c");
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
        struct store_fixture *f = *state;
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
        struct store_fixture *f = *state;

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
        assert_int_equal(store_take_due(s, "bitrix24", OWNER, T0, LEASE_MS, 10, &w, &n), 0);
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

static void the_report_shows_no_next_time_for_a_finished_delivery(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);
        json_t *doc;

        take(s, T0, 10, 1);
        record(s, "123", p.rev, STORE_OK, 0, NULL, T0 + 1);
        doc = report(s, "123");
        assert_true(json_is_null(store_fixture_delivery(doc, "next_at")));
        assert_true(json_is_null(store_fixture_delivery(doc, "lease_owner")));
        assert_true(store_next_due(s, SINK) == INT64_MAX);
}

/* ---- the ordering rule ---- */

static struct store_put put_key(struct store *s, const char *order_id,
                                const struct snapshot_order_key *k, int64_t now)
{
        struct store_put p;

        memset(&p, 0, sizeof(p));
        p.order_id = order_id;
        p.site = "shop.example.ru";
        p.json = "{\"order\":{}}";
        p.has_version = k->has_version;
        p.version = k->version;
        p.has_updated_at = k->has_updated_at;
        p.updated_at = k->updated_at;
        p.source = "ingest";
        if (store_put(s, &p, 1, now) != 0)
                fail_msg("store_put(%s) failed: %s", order_id, store_errmsg(s));
        return p;
}

static void the_store_judges_snapshots_by_the_one_ordering_rule(void **state)
{
        /* what is stored, what arrives, and whether what arrives is newer */
        static const struct {
                struct snapshot_order_key stored, arrives;
                bool newer;
        } cases[] = {
            {{true, 4, true, 2000}, {true, 5, true, 1000}, true},    /* version beats time */
            {{true, 4, true, 1000}, {true, 4, true, 2000}, false},   /* equal version */
            {{true, 5, false, 0}, {true, 4, false, 0}, false},       /* lower version */
            {{false, 0, true, 1000}, {false, 0, true, 1001}, true},  /* no versions: time */
            {{false, 0, true, 1001}, {false, 0, true, 1001}, false}, /* the same time */
            {{true, 9, true, 1000}, {false, 0, true, 1001}, true},   /* one version: time */
            {{false, 0, true, 1001}, {true, 9, true, 1000}, false},
            {{true, 9, false, 0}, {false, 0, true, 1001}, true}, /* no common key: arrival */
            {{false, 0, true, 1001}, {true, 9, false, 0}, true},
        };
        struct store *s = store_of(state);

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char id[16];
                struct store_put p;
                snprintf(id, sizeof(id), "o%zu", i);
                put_key(s, id, &cases[i].stored, T0);
                p = put_key(s, id, &cases[i].arrives, T0 + 1);
                if (snapshot_order_is_newer(&cases[i].arrives, &cases[i].stored) !=
                    cases[i].newer)
                        fail_msg("case %zu: snapshot_order_is_newer disagrees", i);
                if ((p.outcome == STORE_PUT_ACCEPTED) != cases[i].newer)
                        fail_msg("case %zu: the store says %s", i,
                                 p.outcome == STORE_PUT_ACCEPTED ? "accepted" : "stale");
        }
}

/* ---- leases ---- */

static void a_row_leased_to_one_owner_is_not_taken_by_another_before_the_lease_ends(void **state)
{
        struct store *s = store_of(state);

        put_version(s, "123", 4, T0);
        take_leased(s, "A", T0, 1000, 10, 1);
        take_leased(s, "B", T0 + 999, 1000, 10, 0);
        assert_int_equal(store_requeue_expired(s, SINK, T0 + 999), 0);
        expect_state(s, "123", "inflight");
        assert_string_equal(
            json_string_value(store_fixture_delivery(report(s, "123"), "lease_owner")), "A");
}

static void a_lease_that_ends_unrenewed_is_requeued_marked_uncertain(void **state)
{
        struct store *s = store_of(state);
        struct store_work *w;

        put_version(s, "123", 4, T0);
        take_leased(s, "A", T0, 1000, 10, 1);
        assert_int_equal(store_next_due(s, SINK), T0 + 1000);
        assert_int_equal(store_requeue_expired(s, SINK, T0 + 1000), 1);
        expect_state(s, "123", "pending");
        w = take_leased(s, "B", T0 + 1000, 1000, 10, 1);
        assert_int_equal(w[0].uncertain_at, T0 + 1000);
}

static void renewing_a_lease_keeps_the_row_from_being_requeued(void **state)
{
        struct store *s = store_of(state);

        put_version(s, "123", 4, T0);
        take_leased(s, "A", T0, 1000, 10, 1);
        assert_int_equal(store_renew(s, SINK, "A", T0 + 900, 1000), 1);
        assert_int_equal(store_renew(s, SINK, "B", T0 + 900, 1000), 0);
        assert_int_equal(store_requeue_expired(s, SINK, T0 + 1500), 0);
        take_leased(s, "B", T0 + 1500, 1000, 10, 0);
        assert_int_equal(store_requeue_expired(s, SINK, T0 + 1900), 1);
}

static void a_late_verdict_from_an_owner_whose_lease_was_taken_over_is_ignored(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);
        struct store_result ok = {.order_id = "123", .rev = p.rev, .kind = STORE_OK};
        json_t *doc;

        take_leased(s, "A", T0, 1000, 10, 1);
        assert_int_equal(store_requeue_expired(s, SINK, T0 + 1000), 1);
        take_leased(s, "B", T0 + 1000, 1000, 10, 1);
        assert_int_equal(store_record(s, SINK, "A", &ok, 1, NULL, T0 + 1100, LIFETIME_MS), 1);
        doc = report(s, "123");
        assert_string_equal(delivery_state(doc), "inflight");
        assert_string_equal(json_string_value(store_fixture_delivery(doc, "lease_owner")), "B");
        assert_int_equal(json_array_size(json_object_get(doc, "attempts")), 0);
        assert_int_equal(store_record(s, SINK, "B", &ok, 1, NULL, T0 + 1200, LIFETIME_MS), 0);
        expect_state(s, "123", "done");
}

static void a_verdict_on_work_nobody_took_is_ignored(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);
        struct store_result ok = {.order_id = "123", .rev = p.rev, .kind = STORE_OK};
        struct store_result unknown = {.order_id = "999", .rev = p.rev, .kind = STORE_OK};

        assert_int_equal(store_record(s, SINK, OWNER, &ok, 1, NULL, T0 + 1, LIFETIME_MS), 1);
        assert_int_equal(store_record(s, SINK, OWNER, &unknown, 1, NULL, T0 + 1, LIFETIME_MS), 1);
        expect_state(s, "123", "pending");
}

static void a_newer_snapshot_during_a_lease_keeps_the_row_leased(void **state)
{
        struct store *s = store_of(state);

        put_version(s, "123", 4, T0);
        take_leased(s, "A", T0, 1000, 10, 1);
        put_version(s, "123", 5, T0 + 10);
        take_leased(s, "B", T0 + 500, 1000, 10, 0);
        assert_int_equal(store_requeue_expired(s, SINK, T0 + 999), 0);
        assert_int_equal(store_next_due(s, SINK), T0 + 1000);
        expect_state(s, "123", "inflight");
}

static void requeueing_one_sink_never_touches_another_sinks_work(void **state)
{
        static const char *const both[] = {"roistat", "bitrix24"};
        struct store *s = store_of(state);
        struct store_work *w = NULL;
        struct store_counts c;
        size_t n = 0;

        store_set_sinks(s, both, 2);
        put_version(s, "123", 4, T0);
        take_leased(s, "A", T0, 1000, 10, 1);
        assert_int_equal(store_take_due(s, "bitrix24", "A", T0, 100000, 10, &w, &n), 0);
        keep_work(w, n);
        assert_int_equal(n, 1);
        assert_int_equal(store_requeue_expired(s, "bitrix24", T0 + 5000), 0);
        assert_int_equal(store_requeue_expired(s, SINK, T0 + 5000), 1);
        assert_int_equal(store_counts(s, "bitrix24", &c), 0);
        assert_int_equal(c.inflight, 1);
}

/* A store of one server needs its lock; in a shared one the proof is the sink's claim,
 * which the caller holds (store_recover). */
static void recovery_needs_the_lock_unless_the_store_is_shared(void **state)
{
        struct store *s = store_of(state);

        put_version(s, "123", 4, T0);
        take(s, T0, 10, 1);
        if (store_shared(s)) {
                assert_int_equal(store_recover(s, SINK, T0 + 1), 1);
                expect_state(s, "123", "pending");
                return;
        }
        assert_int_equal(store_recover(s, SINK, T0 + 1), -ENOLCK);
        expect_state(s, "123", "inflight");
}

static void recovery_under_the_lock_puts_back_every_lease_of_its_sink_only(void **state)
{
        static const char *const both[] = {"roistat", "bitrix24"};
        struct store *s = store_of(state);
        struct store_work *w = NULL;
        struct store_counts c;
        size_t n = 0;
        long pid = 0;

        store_set_sinks(s, both, 2);
        put_version(s, "1", 1, T0);
        put_version(s, "2", 1, T0);
        take_leased(s, "earlier-run", T0, LEASE_MS, 10, 2);
        assert_int_equal(store_take_due(s, "bitrix24", "earlier-run", T0, LEASE_MS, 10, &w, &n), 0);
        keep_work(w, n);
        assert_int_equal(store_lock(s, &pid), 0);
        /* the leases have not ended, but the run that held them has */
        assert_int_equal(store_recover(s, SINK, T0 + 10), 2);
        assert_int_equal(counts(s).pending, 2);
        assert_int_equal(store_counts(s, "bitrix24", &c), 0);
        assert_int_equal(c.inflight, 2);
        w = take(s, T0 + 10, 10, 2);
        assert_int_equal(w[0].uncertain_at, T0 + 10);
        assert_int_equal(store_recover(s, SINK, T0 + 20), 2); /* and this run's own, too */
}

static void the_sinks_with_rows_are_listed_once_each(void **state)
{
        static const char *const both[] = {"roistat", "bitrix24"};
        struct store *s = store_of(state);
        char **names = NULL;
        size_t n = 0;

        assert_int_equal(store_sinks(s, &names, &n), 0);
        assert_int_equal(n, 0);
        store_names_free(names, n);
        store_set_sinks(s, both, 2);
        put_version(s, "1", 1, T0);
        put_version(s, "2", 1, T0);
        assert_int_equal(store_sinks(s, &names, &n), 0);
        assert_int_equal(n, 2);
        assert_true((!strcmp(names[0], "roistat") && !strcmp(names[1], "bitrix24")) ||
                    (!strcmp(names[1], "roistat") && !strcmp(names[0], "bitrix24")));
        store_names_free(names, n);
}

/* ---- the server lock ---- */

static void a_second_lock_on_the_same_store_is_ebusy_and_names_the_holder(void **state)
{
        struct store_fixture *f = *state;
        struct store *other = NULL;
        long pid = 0;

        assert_int_equal(store_lock(f->s, &pid), 0);
        assert_int_equal(store_open(f->location, &other), 0);
        if (store_shared(f->s)) {
                /* servers share it: the lock excludes nobody (roles go by store_claim) */
                assert_int_equal(store_lock(other, &pid), 0);
                store_close(other);
                return;
        }
        assert_int_equal(store_lock(other, &pid), -EBUSY);
        assert_int_equal(pid, (long)getpid());
        store_close(other);
}

static void the_lock_is_free_again_once_its_holder_closes(void **state)
{
        struct store_fixture *f = *state;
        struct store *other = NULL;
        long pid = 0;

        assert_int_equal(store_lock(f->s, &pid), 0);
        store_fixture_reopen(f);
        assert_int_equal(store_open(f->location, &other), 0);
        assert_int_equal(store_lock(other, &pid), 0);
        assert_int_equal(store_lock(f->s, &pid), store_shared(f->s) ? 0 : -EBUSY);
        store_close(other);
        assert_int_equal(store_lock(f->s, &pid), 0);
}

static void readers_and_writers_work_beside_the_lock_holder(void **state)
{
        static const char *const sinks[] = {SINK};
        struct store_fixture *f = *state;
        struct store *other = NULL;
        struct store_counts c;
        long pid = 0;

        assert_int_equal(store_lock(f->s, &pid), 0);
        assert_int_equal(store_open(f->location, &other), 0);
        store_set_sinks(other, sinks, 1);
        assert_int_equal(put_version(other, "123", 4, T0).outcome, STORE_PUT_ACCEPTED);
        assert_int_equal(store_counts(other, SINK, &c), 0);
        assert_int_equal(c.pending, 1);
        assert_int_equal(store_retry(other, NULL, NULL, T0), 0);
        report(other, "123");
        store_close(other);
        take(f->s, T0, 10, 1);
}

/* ---- side writes ---- */

static void side_writes_are_recorded_with_the_verdicts(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);
        struct store_result ok = {.order_id = "123", .rev = p.rev, .kind = STORE_OK};
        struct store_writes w = {0};
        char *v = NULL;

        take(s, T0, 10, 1);
        store_writes_link(&w, "123", "b24.deal", "77");
        store_writes_meta(&w, "b24.contact.phone:+79001234567", "5", true);
        assert_int_equal(store_record(s, SINK, OWNER, &ok, 1, &w, T0 + 1, LIFETIME_MS), 0);
        store_writes_clear(&w);
        expect_state(s, "123", "done");
        assert_int_equal(store_link_get(s, "123", "b24.deal", &v), 0);
        assert_string_equal(v, "77");
        free(v);
        assert_int_equal(store_meta_get(s, "b24.contact.phone:+79001234567", &v), 0);
        assert_string_equal(v, "5");
        free(v);
}

static void side_writes_are_kept_when_the_verdict_is_not(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);
        struct store_result ok = {.order_id = "123", .rev = p.rev, .kind = STORE_OK};
        struct store_writes w = {0};
        char *v = NULL;

        take_leased(s, "A", T0, 1000, 10, 1);
        assert_int_equal(store_requeue_expired(s, SINK, T0 + 1000), 1);
        store_writes_link(&w, "123", "b24.deal", "77");
        assert_int_equal(store_record(s, SINK, "A", &ok, 1, &w, T0 + 1100, LIFETIME_MS), 1);
        store_writes_clear(&w);
        expect_state(s, "123", "pending");
        /* the deal exists whoever delivers next: forgetting it would create another */
        assert_int_equal(store_link_get(s, "123", "b24.deal", &v), 0);
        assert_string_equal(v, "77");
        free(v);
}

/* A backend wrapped so that one kind of write fails on demand. */
static const struct store_backend_ops *real;
static struct store_backend_ops faulty;
static enum { FAIL_NONE, FAIL_META, FAIL_ATTEMPT, FAIL_COMMIT } fail_what;

static int faulty_meta_set(struct store_backend *be, const char *key, const char *value,
                           bool only_if_absent)
{
        return fail_what == FAIL_META ? -ENOSPC : real->meta_set(be, key, value, only_if_absent);
}

static int faulty_attempt_add(struct store_backend *be, const struct store_attempt *a)
{
        return fail_what == FAIL_ATTEMPT ? -ENOSPC : real->attempt_add(be, a);
}

static int faulty_commit(struct store_backend *be)
{
        if (fail_what == FAIL_COMMIT)
                return -EIO; /* the caller rolls back */
        return real->commit(be);
}

static struct store *open_faulty(struct store_fixture *f)
{
        struct store *s = NULL;

        real = store_backend_for(f->location);
        faulty = *real;
        faulty.meta_set = faulty_meta_set;
        faulty.attempt_add = faulty_attempt_add;
        faulty.commit = faulty_commit;
        fail_what = FAIL_NONE;
        assert_int_equal(store_open_with(&faulty, f->location, &s), 0);
        return s;
}

/* A record that fails at `what` changes nothing: not the verdict, not a side write. */
static void expect_record_all_or_nothing(void **state, int what)
{
        struct store_fixture *f = *state;
        struct store_put p = put_version(f->s, "123", 4, T0);
        struct store_result ok = {.order_id = "123", .rev = p.rev, .kind = STORE_OK};
        struct store_writes w = {0};
        struct store *s = open_faulty(f);
        char *v = NULL;
        json_t *doc;
        int r;

        take(f->s, T0, 10, 1);
        store_writes_link(&w, "123", "b24.deal", "77");
        store_writes_meta(&w, "b24.contact.phone:+79001234567", "5", false);
        fail_what = what;
        r = store_record(s, SINK, OWNER, &ok, 1, &w, T0 + 1, LIFETIME_MS);
        fail_what = FAIL_NONE;
        assert_true(r < 0);
        doc = report(f->s, "123");
        assert_string_equal(delivery_state(doc), "inflight");
        assert_int_equal(json_array_size(json_object_get(doc, "attempts")), 0);
        assert_int_equal(json_array_size(json_object_get(doc, "links")), 0);
        assert_int_equal(store_meta_get(f->s, "b24.contact.phone:+79001234567", &v), -ENOENT);
        /* the same verdicts, kept by the caller, go in whole once the store is back */
        assert_int_equal(store_record(s, SINK, OWNER, &ok, 1, &w, T0 + 2, LIFETIME_MS), 0);
        store_writes_clear(&w);
        store_close(s);
        expect_state(f->s, "123", "done");
        assert_int_equal(store_link_get(f->s, "123", "b24.deal", &v), 0);
        free(v);
}

static void a_record_whose_side_write_fails_records_no_verdict(void **state)
{
        expect_record_all_or_nothing(state, FAIL_META);
}

static void a_record_whose_verdict_fails_records_no_side_write(void **state)
{
        expect_record_all_or_nothing(state, FAIL_ATTEMPT);
}

static void a_record_whose_commit_fails_records_nothing(void **state)
{
        expect_record_all_or_nothing(state, FAIL_COMMIT);
}

/* ---- the operator's views: oldest owed, dead letters, size ---- */

static void the_oldest_owed_time_is_kept_through_retries_and_cleared_when_done(void **state)
{
        struct store *s = store_of(state);

        assert_int_equal(store_fixture_counts(s).oldest_pending_at, 0);
        put_version(s, "a", 1, T0);
        put_version(s, "b", 1, T0 + 500);
        assert_int_equal(store_fixture_counts(s).oldest_pending_at, T0);
        store_fixture_take(s, T0 + 1000, 1, 1);
        store_fixture_record(s, "a", 1, STORE_TEMPFAIL, T0 + 5000, "down", T0 + 1001);
        /* retrying: still owed since it was first made */
        assert_int_equal(store_fixture_counts(s).oldest_pending_at, T0);
        /* a newer snapshot of an owed order does not make it younger */
        put_version(s, "a", 2, T0 + 2000);
        assert_int_equal(store_fixture_counts(s).oldest_pending_at, T0);
        /* revs are the store's: a v1 = 1, b v1 = 2, a v2 = 3 */
        store_fixture_take(s, T0 + 5000, 10, 2);
        store_fixture_record(s, "a", 3, STORE_OK, 0, NULL, T0 + 5001);
        assert_int_equal(store_fixture_counts(s).oldest_pending_at, T0 + 500);
        store_fixture_record(s, "b", 2, STORE_OK, 0, NULL, T0 + 5002);
        assert_int_equal(store_fixture_counts(s).oldest_pending_at, 0);
        /* done, then changed again: owed from the change, not from the first time */
        put_version(s, "a", 3, T0 + 9000);
        assert_int_equal(store_fixture_counts(s).oldest_pending_at, T0 + 9000);
}

static void a_waiting_delivery_is_not_counted_as_owed(void **state)
{
        struct store *s = store_of(state);

        put_version(s, "a", 1, T0);
        store_fixture_take(s, T0, 1, 1);
        store_fixture_record(s, "a", 1, STORE_WAITING, T0 + 60000, "visit not seen", T0 + 1);
        assert_int_equal(store_fixture_counts(s).oldest_pending_at, 0);
        store_fixture_take(s, T0 + 60000, 1, 1);
        /* back in flight: owed since it was first made, the wait included */
        assert_int_equal(store_fixture_counts(s).oldest_pending_at, T0);
}

struct dead_seen {
        char ids[8][16];
        char reasons[8][64];
        int64_t attempts[8];
        size_t n;
};

static int see_dead(void *arg, const struct store_dead_view *d)
{
        struct dead_seen *seen = arg;

        assert_true(seen->n < 8);
        snprintf(seen->ids[seen->n], sizeof(seen->ids[0]), "%s", d->order_id);
        snprintf(seen->reasons[seen->n], sizeof(seen->reasons[0]), "%s", d->reason);
        seen->attempts[seen->n] = d->attempts;
        assert_string_equal(d->sink, SINK);
        seen->n++;
        return 0;
}

static void dead_letters_are_listed_newest_first_with_their_reasons(void **state)
{
        struct store *s = store_of(state);
        struct dead_seen seen = {0};
        int64_t total = -1;

        put_version(s, "old", 1, T0);
        put_version(s, "new", 1, T0);
        put_version(s, "fine", 1, T0);
        store_fixture_take(s, T0, 10, 3);
        store_fixture_record(s, "old", 1, STORE_PERMFAIL, 0, "422 price is not a number", T0 + 1);
        store_fixture_record(s, "new", 2, STORE_PERMFAIL, 0, "409 order exists", T0 + 2);
        store_fixture_record(s, "fine", 3, STORE_OK, 0, NULL, T0 + 3);
        assert_int_equal(store_dead_list(s, SINK, 10, see_dead, &seen, &total), 0);
        assert_int_equal(total, 2);
        assert_int_equal(seen.n, 2);
        assert_string_equal(seen.ids[0], "new");
        assert_string_equal(seen.reasons[0], "409 order exists");
        assert_string_equal(seen.ids[1], "old");
        assert_string_equal(seen.reasons[1], "422 price is not a number");
        assert_int_equal(seen.attempts[1], 1);
        /* the limit cuts the list, not the total; another sink has none */
        memset(&seen, 0, sizeof(seen));
        assert_int_equal(store_dead_list(s, NULL, 1, see_dead, &seen, &total), 0);
        assert_int_equal(seen.n, 1);
        assert_int_equal(total, 2);
        memset(&seen, 0, sizeof(seen));
        assert_int_equal(store_dead_list(s, "bitrix24", 10, see_dead, &seen, &total), 0);
        assert_int_equal(seen.n, 0);
        assert_int_equal(total, 0);
        /* a retry takes it off the list */
        assert_int_equal(store_retry(s, SINK, "new", T0 + 10), 1);
        memset(&seen, 0, sizeof(seen));
        assert_int_equal(store_dead_list(s, SINK, 10, see_dead, &seen, &total), 0);
        assert_int_equal(total, 1);
        assert_string_equal(seen.ids[0], "old");
}

static void the_store_size_grows_with_what_it_holds(void **state)
{
        struct store *s = store_of(state);
        int64_t before = -1, after = -1;
        char id[32];

        assert_int_equal(store_size(s, &before), 0);
        assert_true(before > 0);
        for (int i = 0; i < 300; i++) {
                snprintf(id, sizeof(id), "o%d", i);
                put_version(s, id, 1, T0 + i);
        }
        assert_int_equal(store_size(s, &after), 0);
        assert_true(after > before);
}

/* ---- retention ---- */

#define DAY (24LL * 3600 * 1000)

/* Runs a whole pruning pass, step by step, checking that no step removes more than it may
 * look at. Returns the pass (its totals) and, in *ret_steps, how many steps it took. */
static struct store_prune prune_all(struct store *s, int64_t before_ms, size_t limit,
                                    int *ret_steps)
{
        struct store_prune p = {0};
        int r, steps = 0;

        do {
                int64_t removed = p.versions + p.attempts;
                r = store_prune_step(s, &p, before_ms, limit);
                if (r < 0)
                        fail_msg("store_prune_step: %d (%s)", r, store_errmsg(s));
                if (p.versions + p.attempts - removed > (int64_t)limit)
                        fail_msg("one step removed %lld rows, over its limit of %zu",
                                 (long long)(p.versions + p.attempts - removed), limit);
                assert_true(++steps < 10000);
        } while (r > 0);
        if (ret_steps)
                *ret_steps = steps;
        return p;
}

/* The versions of an order's history, newest first, as "5,3,2". */
static const char *history_versions(struct store *s, const char *order_id)
{
        static char buf[128];
        json_t *history = json_object_get(report(s, order_id), "history");
        size_t len = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < json_array_size(history) && len < sizeof(buf) - 16; i++)
                len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%lld", i ? "," : "",
                                        (long long)json_integer_value(json_object_get(
                                            json_array_get(history, i), "version")));
        return buf;
}

/* Puts `order_id` at `version` and delivers it (taken and recorded OK at `now`). */
static int64_t put_delivered(struct store *s, const char *order_id, int64_t version, int64_t now)
{
        struct store_put p = put_version(s, order_id, version, now);
        struct store_work *w = NULL;
        size_t n = 0;

        /* not through take(): the tests below deliver more than it keeps */
        assert_int_equal(store_take_due(s, SINK, OWNER, now, LEASE_MS, 10, &w, &n), 0);
        store_work_free(w, n);
        assert_int_equal(n, 1);
        record(s, order_id, p.rev, STORE_OK, 0, NULL, now);
        return p.rev;
}

static void pruning_keeps_only_the_latest_of_old_delivered_versions(void **state)
{
        struct store *s = store_of(state);
        struct store_prune p;

        put_delivered(s, "123", 1, T0);
        put_delivered(s, "123", 2, T0 + 1);
        put_delivered(s, "123", 3, T0 + 2);
        put_version(s, "123", 2, T0 + 3); /* stale */
        put_delivered(s, "other", 7, T0 + 4);
        assert_string_equal(history_versions(s, "123"), "2,3,2,1");
        p = prune_all(s, T0 + DAY, 1000, NULL);
        assert_int_equal(p.versions, 3);
        assert_string_equal(history_versions(s, "123"), "3");
        assert_string_equal(history_versions(s, "other"), "7");
        /* the latest snapshot is still the one the sinks get */
        put_version(s, "123", 4, T0 + DAY + 1);
        assert_int_equal(take(s, T0 + DAY + 1, 10, 1)[0].rev,
                         json_integer_value(json_object_get(report(s, "123"), "rev")));
        /* a second pass has nothing more to remove */
        assert_int_equal(prune_all(s, T0 + DAY, 1000, NULL).versions, 0);
}

static void pruning_keeps_versions_received_after_the_cut(void **state)
{
        struct store *s = store_of(state);

        put_delivered(s, "123", 1, T0);
        put_delivered(s, "123", 2, T0 + DAY);
        put_delivered(s, "123", 3, T0 + DAY + 1);
        /* only v1 is older than the cut; v2 is exactly at it, so not older */
        assert_int_equal(prune_all(s, T0 + DAY, 1000, NULL).versions, 1);
        assert_string_equal(history_versions(s, "123"), "3,2");
}

static void pruning_keeps_what_an_unfinished_delivery_may_still_need(void **state)
{
        struct store *s = store_of(state);
        struct store_put owed, dead;

        /* the remote holds v2 (done_rev) and v3 is owed: v1 goes, v2 and v3 stay */
        put_delivered(s, "owed", 1, T0);
        put_delivered(s, "owed", 2, T0 + 1);
        owed = put_version(s, "owed", 3, T0 + 2);
        /* never delivered, and dead: every version may still be needed */
        put_version(s, "dead", 1, T0 + 3);
        dead = put_version(s, "dead", 2, T0 + 4);
        take(s, T0 + 5, 10, 2);
        record(s, "dead", dead.rev, STORE_PERMFAIL, 0, "400 bad", T0 + 6);
        assert_int_equal(prune_all(s, T0 + DAY, 1000, NULL).versions, 1);
        assert_string_equal(history_versions(s, "owed"), "3,2");
        assert_string_equal(history_versions(s, "dead"), "2,1");
        /* once v3 is delivered, v2 is needed no more */
        record(s, "owed", owed.rev, STORE_OK, 0, NULL, T0 + 7);
        assert_int_equal(prune_all(s, T0 + DAY, 1000, NULL).versions, 1);
        assert_string_equal(history_versions(s, "owed"), "3");
        assert_string_equal(history_versions(s, "dead"), "2,1");
}

static void pruning_keeps_the_last_attempt_of_each_delivery(void **state)
{
        struct store *s = store_of(state);
        struct store_put p = put_version(s, "123", 4, T0);
        json_t *attempts;

        take(s, T0, 10, 1);
        record(s, "123", p.rev, STORE_TEMPFAIL, T0 + 1000, "HTTP 503", T0 + 1);
        take(s, T0 + 1000, 10, 1);
        record(s, "123", p.rev, STORE_TEMPFAIL, T0 + 2000, "HTTP 502", T0 + 1001);
        take(s, T0 + 2000, 10, 1);
        record(s, "123", p.rev, STORE_PERMFAIL, 0, "422 price is not a number", T0 + 2001);
        p = put_version(s, "new", 1, T0 + DAY);
        take(s, T0 + DAY, 10, 1);
        record(s, "new", p.rev, STORE_TEMPFAIL, T0 + DAY + 1000, "HTTP 503", T0 + DAY);
        take(s, T0 + DAY + 1000, 10, 1);
        record(s, "new", p.rev, STORE_OK, 0, NULL, T0 + DAY + 1000);

        assert_int_equal(prune_all(s, T0 + DAY, 1000, NULL).attempts, 2);
        attempts = json_object_get(report(s, "123"), "attempts");
        assert_int_equal(json_array_size(attempts), 1);
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(attempts, 0), "detail")),
            "422 price is not a number");
        assert_string_equal(store_fixture_state(report(s, "123")), "dead");
        /* attempts after the cut are all kept */
        assert_int_equal(json_array_size(json_object_get(report(s, "new"), "attempts")), 2);
}

static void a_pruning_step_looks_at_no_more_rows_than_its_limit(void **state)
{
        struct store *s = store_of(state);
        struct store_prune p;
        char id[32];
        int steps = 0;

        for (int i = 0; i < 30; i++) {
                snprintf(id, sizeof(id), "o%d", i);
                put_delivered(s, id, 1, T0 + i);
                put_delivered(s, id, 2, T0 + 100 + i);
        }
        /* 60 history rows and 60 attempts: 6 steps each, and one each to see the end */
        p = prune_all(s, T0 + DAY, 10, &steps);
        assert_int_equal(p.versions, 30);
        assert_int_equal(p.attempts, 30);
        assert_int_equal(steps, 14);
        assert_string_equal(history_versions(s, "o17"), "2");
}

static void compacting_after_a_prune_keeps_every_order(void **state)
{
        struct store *s = store_of(state);
        int64_t freed = -1;
        char id[32];

        for (int i = 0; i < 50; i++) {
                snprintf(id, sizeof(id), "o%d", i);
                put_delivered(s, id, 1, T0);
                put_delivered(s, id, 2, T0 + 1);
        }
        assert_int_equal(prune_all(s, T0 + DAY, 1000, NULL).versions, 50);
        assert_int_equal(store_compact(s, 1000, &freed), 0);
        assert_true(freed >= 0);
        for (int i = 0; i < 50; i += 7) {
                snprintf(id, sizeof(id), "o%d", i);
                assert_string_equal(history_versions(s, id), "2");
        }
        /* nothing left to free */
        assert_int_equal(store_compact(s, 1000, &freed), 0);
        assert_int_equal(freed, 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, store_fixture_setup, store_fixture_teardown)

int store_suite_run(const struct store_suite_backend *b)
{
        const struct CMUnitTest tests[] = {
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
            T(requeue_expired_makes_left_over_work_pending_and_due),
            T(retry_revives_a_dead_delivery_with_fresh_attempts),
            T(retry_of_an_unknown_order_or_a_done_one_changes_nothing),
            T(retry_without_an_order_revives_every_dead_and_retrying_one),
            T(a_new_snapshot_revives_a_dead_delivery),
            T(a_request_makes_a_done_delivery_due_again_at_the_same_rev),
            T(a_request_during_a_pass_makes_it_due_again_whatever_the_verdict),
            T(a_request_revives_a_dead_delivery_and_records_its_writes),
            T(a_request_for_an_unknown_order_is_enoent_and_records_nothing),
            T(a_request_makes_a_row_for_a_sink_that_had_none),
            T(a_request_among_side_writes_wakes_the_other_sink_with_the_verdict),
            T(a_put_for_one_sink_only_makes_no_row_for_the_others),
            T(orders_are_listed_by_when_they_last_changed_in_pages),
            T(next_due_is_the_earliest_next_at_or_int64_max),
            T(everything_survives_closing_and_reopening),
            T(a_replay_after_reopening_is_still_a_duplicate),
            T(the_sink_list_can_be_replaced),
            T(links_are_set_read_and_overwritten),
            T(meta_is_set_read_and_overwritten),
            T(the_report_of_an_unknown_order_is_enoent),
            T(the_report_lists_history_newest_first_with_outcomes_and_links),
            T(the_report_shows_no_next_time_for_a_finished_delivery),
            T(the_store_judges_snapshots_by_the_one_ordering_rule),
            T(a_row_leased_to_one_owner_is_not_taken_by_another_before_the_lease_ends),
            T(a_lease_that_ends_unrenewed_is_requeued_marked_uncertain),
            T(renewing_a_lease_keeps_the_row_from_being_requeued),
            T(a_late_verdict_from_an_owner_whose_lease_was_taken_over_is_ignored),
            T(a_verdict_on_work_nobody_took_is_ignored),
            T(a_newer_snapshot_during_a_lease_keeps_the_row_leased),
            T(requeueing_one_sink_never_touches_another_sinks_work),
            T(recovery_needs_the_lock_unless_the_store_is_shared),
            T(recovery_under_the_lock_puts_back_every_lease_of_its_sink_only),
            T(the_sinks_with_rows_are_listed_once_each),
            T(a_second_lock_on_the_same_store_is_ebusy_and_names_the_holder),
            T(the_lock_is_free_again_once_its_holder_closes),
            T(readers_and_writers_work_beside_the_lock_holder),
            T(side_writes_are_recorded_with_the_verdicts),
            T(side_writes_are_kept_when_the_verdict_is_not),
            T(a_record_whose_side_write_fails_records_no_verdict),
            T(a_record_whose_verdict_fails_records_no_side_write),
            T(a_record_whose_commit_fails_records_nothing),
            T(the_oldest_owed_time_is_kept_through_retries_and_cleared_when_done),
            T(a_waiting_delivery_is_not_counted_as_owed),
            T(dead_letters_are_listed_newest_first_with_their_reasons),
            T(the_store_size_grows_with_what_it_holds),
            T(pruning_keeps_only_the_latest_of_old_delivered_versions),
            T(pruning_keeps_versions_received_after_the_cut),
            T(pruning_keeps_what_an_unfinished_delivery_may_still_need),
            T(pruning_keeps_the_last_attempt_of_each_delivery),
            T(a_pruning_step_looks_at_no_more_rows_than_its_limit),
            T(compacting_after_a_prune_keeps_every_order),
        };

        store_suite_use(b);
        return cmocka_run_group_tests_name(b->name, tests, NULL, NULL);
}
