/*
 * site_sync_deal_seen, two-way sync's decision: against a real SQLite store and a real
 * configuration, what happens when the CRM shows a site order's deal at a stage — nothing
 * (the echo of orderbridge's own update), the site follows (a "site" request with the
 * wish in the order's site.want link), or the deal goes back (a "bitrix24" request) —
 * and the way back from a stage to a site state (site_map_state).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "sinks/site_map.h"
#include "sinks/site_sync.h"
#include "store/store.h"

#define CONF                                                                                       \
        "[site]\nid = shop.example.ru\nstatus_url = https://shop.example.ru/status.php\n"          \
        "[bitrix24]\ncategory_id = 0\n"
#define T0 1760000000000LL /* ms */

struct fixture {
        char dir[64], path[96];
        struct store *s;
        struct config *cfg;
};

static struct config *load(const char *text)
{
        struct config *c = NULL;
        char *errors = NULL;

        if (config_load_string(text, "test.conf", &c, &errors) != 0)
                fail_msg("configuration refused:\n%s", errors);
        return c;
}

static int setup_with(void **state, const char *conf)
{
        struct fixture *f = calloc(1, sizeof(*f));
        static const char *const sinks[] = {"bitrix24", "site"};

        setenv("ORDERBRIDGE_BITRIX24_WEBHOOK_URL", "https://portal.example.ru/rest/1/c0de/", 1);
        setenv("ORDERBRIDGE_SITE_STATUS_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1);
        snprintf(f->dir, sizeof(f->dir), "/tmp/ob-site-sync-XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        snprintf(f->path, sizeof(f->path), "%s/store.db", f->dir);
        if (store_open(f->path, &f->s) != 0)
                return -1;
        store_set_sinks(f->s, sinks, 2);
        f->cfg = load(conf);
        *state = f;
        return 0;
}

static int setup(void **state)
{
        return setup_with(state, CONF);
}

static int setup_pipeline(void **state)
{
        return setup_with(state, CONF "[bitrix24.map]\n@paid = EXECUTING\n[site.map]\nLOSE = C\n");
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        char lock[128];

        store_close(f->s);
        config_free(f->cfg);
        unlink(f->path);
        snprintf(lock, sizeof(lock), "%s-wal", f->path);
        unlink(lock);
        snprintf(lock, sizeof(lock), "%s-shm", f->path);
        unlink(lock);
        rmdir(f->dir);
        free(f);
        return 0;
}

/* Order `id` at `status` (flags in `extra`), updated_at `updated` (Unix s). */
static void put(struct fixture *f, const char *id, int version, const char *status,
                const char *extra, long long updated)
{
        char json[512], when[32];
        time_t tt = (time_t)updated;
        struct store_put p = {.order_id = id, .site = "shop.example.ru", .has_version = true,
                              .version = version, .has_updated_at = true, .updated_at = updated,
                              .source = "test", .json = json};

        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&tt));
        snprintf(json, sizeof(json),
                 "{\"site\":\"shop.example.ru\",\"order\":{\"id\":\"%s\",\"version\":%d,"
                 "\"status\":\"%s\",%s\"created_at\":\"2026-03-13T10:00:00Z\","
                 "\"updated_at\":\"%s\",\"price\":\"100.00\",\"currency\":\"RUB\"}}",
                 id, version, status, extra, when);
        assert_int_equal(store_put(f->s, &p, 1, T0), 0);
        assert_int_equal(p.outcome, STORE_PUT_ACCEPTED);
}

static enum site_sync_verdict seen(struct fixture *f, const char *id, const char *stage,
                                   long long modified)
{
        struct site_deal_seen d = {.order_id = id, .deal_id = "55", .stage = stage,
                                   .modified = modified};
        enum site_sync_verdict v = SITE_SYNC_OFF;

        assert_int_equal(site_sync_deal_seen(f->s, f->cfg, &d, T0 + 1, &v), 0);
        return v;
}

static struct store_counts counts(struct fixture *f, const char *sink)
{
        struct store_counts c;

        assert_int_equal(store_counts(f->s, sink, &c), 0);
        return c;
}

static int64_t pending(struct fixture *f, const char *sink)
{
        return counts(f, sink).pending;
}

/* Marks every delivery of both sinks done, as after a quiet queue. */
static void settle(struct fixture *f)
{
        static const char *const sinks[] = {"bitrix24", "site"};

        for (size_t i = 0; i < 2; i++) {
                struct store_work *w = NULL;
                size_t n = 0;
                assert_int_equal(store_take_due(f->s, sinks[i], "t", T0 + 2, 60000, 100, &w, &n), 0);
                for (size_t j = 0; j < n; j++) {
                        struct store_result r = {.order_id = w[j].order_id, .rev = w[j].rev,
                                                 .kind = STORE_OK};
                        assert_int_equal(store_record(f->s, sinks[i], "t", &r, 1, NULL, T0 + 3,
                                                      1000000), 0);
                }
                store_work_free(w, n);
        }
}

static char *want_of(struct fixture *f, const char *id)
{
        char *v = NULL;

        return store_link_get(f->s, id, SITE_WANT_LINK, &v) == 0 ? v : NULL;
}

static void the_stage_the_snapshot_maps_to_is_an_echo_and_changes_nothing(void **state)
{
        struct fixture *f = *state;

        put(f, "1", 1, "P", "", 1000);
        settle(f);
        assert_int_equal(seen(f, "1", "PREPARATION", 5000), SITE_SYNC_IN_STEP);
        assert_int_equal(pending(f, "site") + pending(f, "bitrix24"), 0);
        assert_null(want_of(f, "1"));
}

static void a_later_crm_move_asks_the_site_to_follow_with_the_mapped_status(void **state)
{
        struct fixture *f = *state;
        char *want;

        put(f, "1", 1, "P", "", 1000);
        settle(f);
        assert_int_equal(seen(f, "1", "WON", 1001), SITE_SYNC_SITE_FOLLOWS);
        assert_int_equal(pending(f, "site"), 1);
        assert_int_equal(pending(f, "bitrix24"), 0);
        want = want_of(f, "1");
        assert_non_null(want);
        assert_non_null(strstr(want, "\"status\":\"F\""));
        assert_non_null(strstr(want, "\"at\":1001"));
        assert_non_null(strstr(want, "\"stage\":\"WON\""));
        free(want);
}

static void lose_means_cancel_the_order(void **state)
{
        struct fixture *f = *state;
        char *want;

        put(f, "1", 1, "N", "", 1000);
        settle(f);
        assert_int_equal(seen(f, "1", "LOSE", 2000), SITE_SYNC_SITE_FOLLOWS);
        want = want_of(f, "1");
        assert_non_null(strstr(want, "\"canceled\":true"));
        assert_null(strstr(want, "\"status\""));
        free(want);
        /* the same move once the site shows it cancelled: in step */
        put(f, "1", 2, "N", "\"canceled\":true,", 2001);
        settle(f);
        assert_int_equal(seen(f, "1", "LOSE", 2000), SITE_SYNC_IN_STEP);
}

static void a_tie_or_a_later_site_change_puts_the_deal_back(void **state)
{
        struct fixture *f = *state;

        put(f, "1", 1, "P", "", 1000);
        settle(f);
        assert_int_equal(seen(f, "1", "WON", 1000), SITE_SYNC_DEAL_BACK); /* a tie: the site */
        assert_int_equal(pending(f, "bitrix24"), 1);
        {
                /* the sink forgets what it sent, so the stage goes out again */
                char *sent = NULL;
                assert_int_equal(store_link_get(f->s, "1", "b24.sent", &sent), 0);
                assert_string_equal(sent, "{}");
                free(sent);
        }
        assert_int_equal(pending(f, "site"), 0);
        settle(f);
        assert_int_equal(seen(f, "1", "WON", 999), SITE_SYNC_DEAL_BACK);
        assert_null(want_of(f, "1"));
}

static void a_stage_no_status_leads_to_changes_nothing(void **state)
{
        struct fixture *f = *state;

        put(f, "1", 1, "P", "", 1000);
        settle(f);
        assert_int_equal(seen(f, "1", "C7:NEW", 2000), SITE_SYNC_UNMAPPED);
        assert_int_equal(seen(f, "1", "APOLOGY", 2000), SITE_SYNC_UNMAPPED);
        assert_int_equal(pending(f, "site") + pending(f, "bitrix24"), 0);
}

static void an_unknown_order_is_enoent(void **state)
{
        struct fixture *f = *state;
        struct site_deal_seen d = {.order_id = "404", .deal_id = "5", .stage = "WON",
                                   .modified = 1};
        enum site_sync_verdict v;

        assert_int_equal(site_sync_deal_seen(f->s, f->cfg, &d, T0, &v), -ENOENT);
}

static int64_t dead(struct fixture *f, const char *sink)
{
        return counts(f, sink).dead;
}

/* The site refuses the move for good: the site delivery is dead with one dead letter. */
static void refuse(struct fixture *f)
{
        struct store_work *w = NULL;
        size_t n = 0;

        assert_int_equal(store_take_due(f->s, "site", "t", T0 + 2, 60000, 100, &w, &n), 0);
        assert_int_equal(n, 1);
        struct store_result r = {.order_id = w[0].order_id, .rev = w[0].rev,
                                 .kind = STORE_PERMFAIL, .detail = "HTTP 409 refused"};
        assert_int_equal(store_record(f->s, "site", "t", &r, 1, NULL, T0 + 3, 1000000), 0);
        store_work_free(w, n);
}

/* The event and the poll both see a move, and a refused move is seen again on every poll:
 * the site is asked once per move, and a refusal stays one dead letter. */
static void the_same_move_seen_again_asks_the_site_once(void **state)
{
        struct fixture *f = *state;

        put(f, "1", 1, "N", "", 1000);
        settle(f);
        assert_int_equal(seen(f, "1", "LOSE", 2000), SITE_SYNC_SITE_FOLLOWS);
        assert_int_equal(seen(f, "1", "LOSE", 2000), SITE_SYNC_ASKED);
        assert_int_equal(pending(f, "site"), 1);
        refuse(f);
        assert_int_equal(dead(f, "site"), 1);
        assert_int_equal(seen(f, "1", "LOSE", 2000), SITE_SYNC_ASKED);
        assert_int_equal(pending(f, "site"), 0);
        assert_int_equal(dead(f, "site"), 1);
        /* the manager moves the deal again: a new move, asked again */
        assert_int_equal(seen(f, "1", "LOSE", 2500), SITE_SYNC_SITE_FOLLOWS);
        assert_int_equal(pending(f, "site"), 1);
        assert_int_equal(dead(f, "site"), 0);
}

static void without_a_status_url_the_decision_is_off(void **state)
{
        struct fixture *f = *state;
        struct config *c = load("[site]\nid = shop.example.ru\n[bitrix24]\ncategory_id = 0\n");
        struct site_deal_seen d = {.order_id = "1", .deal_id = "5", .stage = "WON",
                                   .modified = 5000};
        enum site_sync_verdict v = SITE_SYNC_IN_STEP;

        put(f, "1", 1, "P", "", 1000);
        settle(f);
        assert_int_equal(site_sync_deal_seen(f->s, c, &d, T0, &v), 0);
        assert_int_equal(v, SITE_SYNC_OFF);
        assert_int_equal(pending(f, "site"), 0);
        config_free(c);
}

/* With @paid = EXECUTING, a paid new order's deal may sit at EXECUTING (the sink put it
 * there): that is no move by a manager. [site.map] LOSE = C overrides "cancel". */
static void a_paid_orders_paid_stage_is_in_step_and_site_map_wins(void **state)
{
        struct fixture *f = *state;
        struct site_state st;

        put(f, "1", 1, "N", "\"paid\":true,", 1000);
        settle(f);
        assert_int_equal(seen(f, "1", "EXECUTING", 5000), SITE_SYNC_IN_STEP);
        assert_int_equal(seen(f, "1", "NEW", 5000), SITE_SYNC_IN_STEP);
        assert_int_equal(site_map_state(f->cfg, "LOSE", &st), 0);
        assert_false(st.cancel);
        assert_string_equal(st.status, "C");
        assert_int_equal(site_map_state(f->cfg, "FINAL_INVOICE", &st), 0);
        assert_string_equal(st.status, "D");
}

static void stages_outside_the_default_pipeline_carry_its_prefix(void **state)
{
        struct config *c = load("[site]\nid = shop.example.ru\n"
                                "status_url = https://shop.example.ru/status.php\n"
                                "[bitrix24]\ncategory_id = 3\n[site.map]\nWON = A\n");
        struct site_state st;

        assert_int_equal(site_map_state(c, "C3:WON", &st), 0);
        assert_string_equal(st.status, "A");
        assert_int_equal(site_map_state(c, "C3:PREPARATION", &st), 0);
        assert_string_equal(st.status, "P");
        assert_int_equal(site_map_state(c, "WON", &st), -ENOENT);
        assert_int_equal(site_map_state(c, "C4:WON", &st), -ENOENT);
        config_free(c);
}

/* Issue #13: a storefront's or person type's own pipeline is followed too; a pipeline no
 * rule uses is not. */
static void a_storefronts_pipeline_is_followed_back_like_the_configured_one(void **state)
{
        struct config *c = load("[site]\nid = shop.example.ru\n"
                                "status_url = https://shop.example.ru/status.php\n"
                                "[bitrix24]\ncategory_id = 0\n[bitrix24.site s2]\n"
                                "category_id = 1\n[bitrix24.person_type 5]\ncategory_id = 4\n"
                                "[site.map]\nWON = A\n");
        struct site_state st;

        assert_int_equal(site_map_state(c, "C1:WON", &st), 0);
        assert_string_equal(st.status, "A");
        assert_int_equal(site_map_state(c, "C4:PREPARATION", &st), 0);
        assert_string_equal(st.status, "P");
        assert_int_equal(site_map_state(c, "C1:LOSE", &st), 0);
        assert_true(st.cancel);
        assert_int_equal(site_map_state(c, "WON", &st), 0);
        assert_int_equal(site_map_state(c, "C2:WON", &st), -ENOENT);
        config_free(c);
}

#define F(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
            F(the_stage_the_snapshot_maps_to_is_an_echo_and_changes_nothing),
            F(a_later_crm_move_asks_the_site_to_follow_with_the_mapped_status),
            F(lose_means_cancel_the_order),
            F(a_tie_or_a_later_site_change_puts_the_deal_back),
            F(a_stage_no_status_leads_to_changes_nothing),
            F(an_unknown_order_is_enoent),
            F(the_same_move_seen_again_asks_the_site_once),
            F(without_a_status_url_the_decision_is_off),
            cmocka_unit_test_setup_teardown(a_paid_orders_paid_stage_is_in_step_and_site_map_wins,
                                            setup_pipeline, teardown),
            F(stages_outside_the_default_pipeline_carry_its_prefix),
            F(a_storefronts_pipeline_is_followed_back_like_the_configured_one),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
