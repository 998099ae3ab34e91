/*
 * What orderbridge sends to Roistat: one add-orders object per snapshot, and the
 * set-statuses dictionary. Inputs are real snapshots (snapshot_parse of the design.md
 * example, changed one field at a time) and configurations loaded with
 * config_load_string, so the mapping under test is the one an operator configures.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "config/config.h"
#include "sinks/sink_roistat.h"
#include "model/snapshot.h"

#define CREATED_AT 1773385200LL /* 2026-03-13T10:00:00+03:00 */

/* design.md's example with a few placeholders: status, canceled, paid, visit member,
 * buyer members, extra order members */
#define SNAPSHOT_FMT                                                                               \
        "{\"site\":\"shop.example.ru\",\"order\":{\"id\":\"123\",\"account_number\":\"%s\","       \
        "\"version\":4,\"status\":\"%s\",\"canceled\":%s,\"paid\":%s,"                             \
        "\"created_at\":\"2026-03-13T10:00:00+03:00\","                                            \
        "\"updated_at\":\"2026-03-13T10:05:00+03:00\",\"price\":\"4990.00\","                      \
        "\"currency\":\"RUB\"%s,\"buyer\":{%s},"                                                   \
        "\"items\":[{\"product_id\":\"55\",\"name\":\"Kettle\",\"price\":\"2495.00\","             \
        "\"quantity\":\"2\"}]%s}}"

#define VISIT ",\"roistat_visit\":\"4521890\""
#define INDIVIDUAL                                                                                 \
        "\"type\":\"individual\",\"name\":\"Ivan Petrov\",\"phone\":\"+7 900 123-45-67\","         \
        "\"email\":\"ivan@example.ru\",\"company\":null,\"inn\":null"

struct order_spec {
        const char *account_number;
        const char *status;
        bool canceled, paid;
        const char *visit; /* VISIT, "" or another member */
        const char *buyer;
        const char *extra; /* more order members, each starting with ',' */
};

/* ---- helpers ---- */

/* Everything a test builds is released in teardown, so a failing assertion (which leaves
 * the test early) does not show up as a leak under LeakSanitizer. */
static struct config *configs[4];
static struct snapshot *snapshots[8];
static json_t *jsons[16];
static size_t n_configs, n_snapshots, n_jsons;

static json_t *keep_json(json_t *j)
{
        assert_true(n_jsons < 16);
        return jsons[n_jsons++] = j;
}

static int teardown(void **state)
{
        while (n_jsons > 0)
                json_decref(jsons[--n_jsons]);
        while (n_snapshots > 0)
                snapshot_free(snapshots[--n_snapshots]);
        while (n_configs > 0)
                config_free(configs[--n_configs]);
        unsetenv("ORDERBRIDGE_ROISTAT_API_KEY");
        return 0;
}

static int setup(void **state)
{
        unsetenv("ORDERBRIDGE_ROISTAT_API_KEY");
        unsetenv("ORDERBRIDGE_SIGNING_SECRET");
        unsetenv("ORDERBRIDGE_ADMIN_TOKEN");
        unsetenv("ORDERBRIDGE_BITRIX24_WEBHOOK_URL");
        return 0;
}

static struct config *config_from(const char *text)
{
        struct config *c = NULL;
        char *errors = NULL;

        setenv("ORDERBRIDGE_ROISTAT_API_KEY", "test-api-key", 1);
        if (config_load_string(text, "test.conf", &c, &errors) != 0)
                fail_msg("configuration refused:\n%s--- from:\n%s", errors, text);
        unsetenv("ORDERBRIDGE_ROISTAT_API_KEY");
        assert_true(n_configs < 4);
        return configs[n_configs++] = c;
}

/* The [roistat] settings of `cfg`, whether the sink is enabled or not. */
static const struct roistat_conf *roistat_of(const struct config *cfg)
{
        const struct roistat_conf *rc = config_section_data(cfg, "roistat");

        assert_non_null(rc);
        return rc;
}

/* A complete [roistat] section with the defaults: the sink is enabled. */
static struct config *default_config(void)
{
        struct config *c = config_from("[roistat]\nproject = 12345\n");

        assert_ptr_equal(config_section(c, "roistat"), roistat_of(c));
        return c;
}

static struct snapshot *snapshot_of(struct order_spec o)
{
        char text[2048];
        struct snapshot_error err;
        struct snapshot *s = NULL;

        snprintf(text, sizeof(text), SNAPSHOT_FMT, o.account_number ? o.account_number : "123",
                 o.status ? o.status : "N", o.canceled ? "true" : "false",
                 o.paid ? "true" : "false", o.visit ? o.visit : VISIT,
                 o.buyer ? o.buyer : INDIVIDUAL, o.extra ? o.extra : "");
        if (snapshot_parse(text, strlen(text), &s, &err) != 0)
                fail_msg("test snapshot refused: %s %s\n%s", err.field, err.message, text);
        assert_true(n_snapshots < 8);
        return snapshots[n_snapshots++] = s;
}

/* roistat_order_json for `o` under the [roistat] settings of `cfg`; must succeed. */
static json_t *order_json(const struct config *cfg, struct order_spec o)
{
        struct snapshot *s = snapshot_of(o);
        char why[256] = "";
        json_t *j = roistat_order_json(roistat_of(cfg), s, why, sizeof(why));

        if (!j)
                fail_msg("roistat_order_json refused status %s: %s", s->status, why);
        return keep_json(j);
}

static const char *str(json_t *obj, const char *key)
{
        json_t *v = json_object_get(obj, key);

        if (!json_is_string(v))
                fail_msg("\"%s\" is %s, want a string", key, v ? "not a string" : "absent");
        return json_string_value(v);
}

/* Roistat reads date_create as UNIX seconds given either as a number or as digits. */
static int64_t date_create_of(json_t *o)
{
        json_t *v = json_object_get(o, "date_create");

        if (json_is_integer(v))
                return json_integer_value(v);
        if (json_is_string(v) &&
            strspn(json_string_value(v), "0123456789") == strlen(json_string_value(v)))
                return strtoll(json_string_value(v), NULL, 10);
        fail_msg("date_create is neither UNIX seconds nor a digit string");
        return -1;
}

static void expect_status_and_price(const struct config *cfg, struct order_spec o,
                                    const char *want_status, const char *want_price)
{
        json_t *j = order_json(cfg, o);

        if (strcmp(str(j, "status"), want_status) != 0 || strcmp(str(j, "price"), want_price) != 0)
                fail_msg("site status %s canceled=%d paid=%d: want %s at %s, got %s at %s",
                         o.status ? o.status : "N", o.canceled, o.paid, want_status, want_price,
                         str(j, "status"), str(j, "price"));
}

/* ---- the order object ---- */

static void a_new_order_is_sent_with_id_name_date_status_price_and_visit(void **state)
{
        struct config *cfg = default_config();
        json_t *o = order_json(cfg, (struct order_spec){0});

        assert_string_equal(str(o, "id"), "123");
        assert_string_equal(str(o, "name"), "Order 123");
        assert_int_equal(date_create_of(o), CREATED_AT);
        assert_string_equal(str(o, "status"), "new");
        assert_string_equal(str(o, "price"), "4990.00");
        assert_string_equal(str(o, "roistat"), "4521890");
}

static void the_order_object_has_only_the_members_roistat_knows(void **state)
{
        static const char *const known[] = {"id",   "name",    "date_create", "status",   "price",
                                            "cost", "roistat", "fields",      "client_id"};
        struct config *cfg = default_config();
        json_t *o = order_json(cfg, (struct order_spec){.extra = ",\"cost\":\"1.00\""});
        const char *key;
        json_t *v;

        json_object_foreach(o, key, v)
        {
                bool ok = false;
                for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
                        ok = ok || strcmp(key, known[i]) == 0;
                if (!ok)
                        fail_msg("unexpected member \"%s\" in the add-orders object", key);
        }
}

static void the_name_uses_the_account_number_and_the_id_stays_the_order_id(void **state)
{
        struct config *cfg = default_config();
        json_t *o = order_json(cfg, (struct order_spec){.account_number = "2026-0042"});

        assert_string_equal(str(o, "id"), "123");
        assert_string_equal(str(o, "name"), "Order 2026-0042");
        assert_string_equal(str(json_object_get(o, "fields"), "account_number"), "2026-0042");
}

static void each_site_status_maps_as_the_design_table_says(void **state)
{
        static const struct {
                const char *code, *want;
        } table[] = {{"N", "new"},       {"P", "new"},       {"A", "confirmed"},
                     {"D", "confirmed"}, {"F", "confirmed"}, {"C", "canceled"}};
        struct config *cfg = default_config();

        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
                json_t *o = order_json(cfg, (struct order_spec){.status = table[i].code});
                if (strcmp(str(o, "status"), table[i].want) != 0)
                        fail_msg("site status %s: want %s, got %s", table[i].code, table[i].want,
                                 str(o, "status"));
        }
}

static void a_paid_new_order_is_sent_as_confirmed_with_its_price(void **state)
{
        struct config *cfg = default_config();

        expect_status_and_price(cfg, (struct order_spec){.status = "N", .paid = true}, "confirmed",
                                "4990.00");
}

static void a_canceled_order_is_sent_as_canceled_with_price_0(void **state)
{
        struct config *cfg = default_config();

        expect_status_and_price(cfg, (struct order_spec){.status = "N", .canceled = true},
                                "canceled", "0");
}

static void a_canceled_order_that_was_paid_is_still_canceled_with_price_0(void **state)
{
        struct config *cfg = default_config();

        expect_status_and_price(cfg,
                                (struct order_spec){.status = "F", .canceled = true, .paid = true},
                                "canceled", "0");
}

static void an_order_in_status_c_is_canceled_with_price_0_even_without_the_flag(void **state)
{
        struct config *cfg = default_config();

        /* design.md: "cancelled (C, or canceled: true) → canceled (canceled), revenue 0" */
        expect_status_and_price(cfg, (struct order_spec){.status = "C"}, "canceled", "0");
}

static void a_canceled_order_keeps_its_price_when_canceled_price_zero_is_off(void **state)
{
        struct config *cfg = config_from("[roistat]\nproject = 12345\ncanceled_price_zero = no\n");

        assert_false(roistat_of(cfg)->canceled_price_zero);
        expect_status_and_price(cfg, (struct order_spec){.status = "N", .canceled = true},
                                "canceled", "4990.00");
}

static void the_price_keeps_its_kopecks(void **state)
{
        struct config *cfg = default_config();
        struct snapshot *s = snapshot_of((struct order_spec){0});
        char why[64];
        json_t *o;

        s->price_minor = 50;
        o = keep_json(roistat_order_json(roistat_of(cfg), s, why, sizeof(why)));
        assert_string_equal(str(o, "price"), "0.50");
}

static void without_a_visit_there_is_no_roistat_member(void **state)
{
        struct config *cfg = default_config();
        json_t *o = order_json(cfg, (struct order_spec){.visit = ""});

        assert_null(json_object_get(o, "roistat"));
        o = order_json(cfg, (struct order_spec){.visit = ",\"roistat_visit\":\"12;DROP\""});
        assert_null(json_object_get(o, "roistat"));
}

static void a_cost_is_sent_as_money_and_only_when_known(void **state)
{
        struct config *cfg = default_config();
        json_t *o = order_json(cfg, (struct order_spec){.extra = ",\"cost\":\"1200.5\""});

        assert_string_equal(str(o, "cost"), "1200.50");
        o = order_json(cfg, (struct order_spec){0});
        assert_null(json_object_get(o, "cost"));
}

static void fields_carry_currency_account_number_and_the_buyer(void **state)
{
        struct config *cfg = default_config();
        json_t *o = order_json(cfg, (struct order_spec){0});
        json_t *f = json_object_get(o, "fields");

        assert_true(json_is_object(f));
        assert_string_equal(str(f, "currency"), "RUB");
        assert_string_equal(str(f, "account_number"), "123");
        assert_string_equal(str(f, "buyer_name"), "Ivan Petrov");
        assert_string_equal(str(f, "buyer_phone"), "+7 900 123-45-67");
        assert_string_equal(str(f, "buyer_email"), "ivan@example.ru");
        assert_null(json_object_get(f, "company"));
        assert_null(json_object_get(f, "inn"));
}

static void fields_of_a_legal_buyer_carry_company_and_inn(void **state)
{
        struct config *cfg = default_config();
        json_t *o =
            order_json(cfg, (struct order_spec){.buyer = "\"type\":\"legal\",\"company\":\"OOO "
                                                         "Romashka\",\"inn\":\"7707083893\""});
        json_t *f = json_object_get(o, "fields");

        assert_string_equal(str(f, "company"), "OOO Romashka");
        assert_string_equal(str(f, "inn"), "7707083893");
        assert_null(json_object_get(f, "buyer_name"));
        assert_null(json_object_get(f, "buyer_email"));
}

static void an_unmapped_status_gives_no_order_and_a_reason_naming_it(void **state)
{
        struct config *cfg = default_config();
        struct snapshot *s = snapshot_of((struct order_spec){.status = "ZX"});
        char why[256] = "";

        assert_null(roistat_order_json(roistat_of(cfg), s, why, sizeof(why)));
        if (!strstr(why, "\"ZX\""))
                fail_msg("the reason does not name status \"ZX\": %s", why);
}

static void a_short_reason_buffer_is_truncated_and_terminated(void **state)
{
        struct config *cfg = default_config();
        struct snapshot *s = snapshot_of((struct order_spec){.status = "ZX"});
        char why[12];

        memset(why, 'x', sizeof(why));
        assert_null(roistat_order_json(roistat_of(cfg), s, why, sizeof(why)));
        assert_int_equal(strlen(why), sizeof(why) - 1);
}

static void a_configured_map_entry_is_used_for_its_code(void **state)
{
        struct config *cfg = config_from("[roistat]\nproject = 12345\n[roistat.map]\n"
                                         "ZX = confirmed\nP = confirmed\n");

        expect_status_and_price(cfg, (struct order_spec){.status = "ZX"}, "confirmed", "4990.00");
        expect_status_and_price(cfg, (struct order_spec){.status = "P"}, "confirmed", "4990.00");
        expect_status_and_price(cfg, (struct order_spec){.status = "N"}, "new", "4990.00");
}

static void the_payload_is_built_from_the_defaults_when_roistat_is_not_configured(void **state)
{
        struct config *cfg = config_from("");
        json_t *o = order_json(cfg, (struct order_spec){.status = "A"});

        assert_null(config_section(cfg, "roistat"));
        assert_false(roistat_of(cfg)->enabled);
        assert_string_equal(str(o, "status"), "confirmed");
}

/* ---- set-statuses ---- */

static void the_default_statuses_body_lists_new_confirmed_canceled(void **state)
{
        struct config *cfg = default_config();
        json_t *arr = keep_json(roistat_statuses_json(roistat_of(cfg)));
        char text[512];
        size_t n = json_dumpb(arr, text, sizeof(text) - 1, JSON_COMPACT | JSON_SORT_KEYS);

        assert_in_range(n, 1, sizeof(text) - 1);
        text[n] = '\0';
        assert_string_equal(text, "[{\"id\":\"new\",\"name\":\"New\",\"type\":\"progress\"},"
                                  "{\"id\":\"confirmed\",\"name\":\"Confirmed\",\"type\":\"paid\"},"
                                  "{\"id\":\"canceled\",\"name\":\"Canceled\",\"type\":"
                                  "\"canceled\"}]");
}

static void the_statuses_body_matches_the_configured_dictionary(void **state)
{
        struct config *cfg = config_from("[roistat]\nproject = 12345\n[roistat.statuses]\n"
                                         "open = progress, Open deal\n"
                                         "won = paid, Won\n"
                                         "lost = canceled, Lost\n"
                                         "old = unused, Archive\n"
                                         "[roistat.map]\n@canceled = lost\n@paid = won\n"
                                         "N = open\nP = open\nA = won\nD = won\nF = won\n"
                                         "C = lost\n");
        json_t *arr = keep_json(roistat_statuses_json(roistat_of(cfg)));

        assert_int_equal(json_array_size(arr), roistat_of(cfg)->n_statuses);
        assert_int_equal(json_array_size(arr), 4);
        for (size_t i = 0; i < roistat_of(cfg)->n_statuses; i++) {
                json_t *st = json_array_get(arr, i);
                assert_string_equal(str(st, "id"), roistat_of(cfg)->statuses[i].id);
                assert_string_equal(str(st, "name"), roistat_of(cfg)->statuses[i].name);
                assert_string_equal(str(st, "type"), roistat_of(cfg)->statuses[i].type);
                assert_int_equal(json_object_size(st), 3);
        }
        assert_string_equal(str(json_array_get(arr, 0), "name"), "Open deal");
        assert_string_equal(str(json_array_get(arr, 3), "type"), "unused");
        expect_status_and_price(cfg, (struct order_spec){.status = "F"}, "won", "4990.00");
        expect_status_and_price(cfg, (struct order_spec){.canceled = true}, "lost", "0");
}

/* ---- deals made in Bitrix24 (call, chat, manager), read by the Bitrix24 source ---- */

/* A deal snapshot as orderbridge's Bitrix24 source builds it (snapshot.h): order id
 * "b24-deal-<ID>", the stage id as its status, the stage's semantics as its flags. */
#define DEAL_FMT                                                                                   \
        "{\"site\":\"shop.example.ru\",\"order\":{\"id\":\"b24-deal-55\",\"version\":7,"      \
        "\"status\":\"%s\",\"canceled\":%s,\"paid\":%s,"                                         \
        "\"created_at\":\"2026-03-13T10:00:00+03:00\",\"price\":\"12500.50\","                  \
        "\"currency\":\"RUB\",\"roistat_visit\":\"777001\","                                    \
        "\"buyer\":{\"type\":\"individual\",\"name\":\"Olga\",\"phone\":\"+79001112233\"},"   \
        "\"deal\":{\"id\":\"55\"%s}}}"

struct deal_spec {
        const char *stage;
        bool failure, success; /* the stage's semantics: canceled, paid */
        const char *title;     /* NULL: none */
};

static struct snapshot *deal_of(struct deal_spec d)
{
        char text[1024], title[300] = "";
        struct snapshot_error err;
        struct snapshot *s = NULL;

        if (d.title)
                snprintf(title, sizeof(title), ",\"title\":\"%s\"", d.title);
        snprintf(text, sizeof(text), DEAL_FMT, d.stage ? d.stage : "NEW",
                 d.failure ? "true" : "false", d.success ? "true" : "false", title);
        if (snapshot_parse(text, strlen(text), &s, &err) != 0)
                fail_msg("test deal refused: %s %s\n%s", err.field, err.message, text);
        assert_non_null(s->deal_id);
        assert_true(n_snapshots < 8);
        return snapshots[n_snapshots++] = s;
}

static json_t *deal_json(const struct config *cfg, struct deal_spec d)
{
        struct snapshot *s = deal_of(d);
        char why[256] = "";
        json_t *j = roistat_order_json(roistat_of(cfg), s, why, sizeof(why));

        if (!j)
                fail_msg("roistat_order_json refused deal stage %s: %s", s->status, why);
        return keep_json(j);
}

static void expect_deal(const struct config *cfg, struct deal_spec d, const char *want_status,
                        const char *want_price)
{
        json_t *j = deal_json(cfg, d);

        if (strcmp(str(j, "status"), want_status) != 0 || strcmp(str(j, "price"), want_price) != 0)
                fail_msg("deal stage %s failure=%d success=%d: want %s at %s, got %s at %s",
                         d.stage ? d.stage : "NEW", d.failure, d.success, want_status,
                         want_price, str(j, "status"), str(j, "price"));
}

/* A dictionary with two statuses of each type, the first of each not first overall. */
#define TWO_OF_EACH                                                                                \
        "[roistat]\nproject = 12345\n[roistat.statuses]\nold = unused, Archive\n"                  \
        "lost = canceled, Lost\nopen = progress, Open\nwork = progress, In work\n"               \
        "won = paid, Won\nwon2 = paid, Won again\nlost2 = canceled, Lost again\n"                \
        "[roistat.map]\n@canceled = lost\n@paid = won\nN = open\nP = open\nA = won\n"          \
        "D = won\nF = won\nC = lost\n"

static void a_deal_is_named_by_its_id_and_title_and_marked_as_from_bitrix24(void **state)
{
        struct config *cfg = default_config();
        json_t *o = deal_json(cfg, (struct deal_spec){.title = "Call from +79001112233"});
        json_t *f = json_object_get(o, "fields");

        assert_string_equal(str(o, "id"), "b24-deal-55");
        assert_string_equal(str(o, "name"), "Deal 55: Call from +79001112233");
        assert_int_equal(date_create_of(o), CREATED_AT);
        assert_string_equal(str(o, "price"), "12500.50");
        assert_string_equal(str(o, "roistat"), "777001");
        assert_string_equal(str(f, "source"), "bitrix24");
        assert_string_equal(str(f, "deal_id"), "55");
        assert_string_equal(str(f, "currency"), "RUB");
        assert_string_equal(str(f, "buyer_name"), "Olga");
        /* its order id is not an account number of the site's */
        assert_null(json_object_get(f, "account_number"));
}

static void a_deal_without_a_title_is_named_by_its_id(void **state)
{
        struct config *cfg = default_config();

        assert_string_equal(str(deal_json(cfg, (struct deal_spec){0}), "name"), "Deal 55");
}

static void a_deals_stage_semantics_give_the_first_status_of_each_type(void **state)
{
        struct config *cfg = config_from(TWO_OF_EACH);

        expect_deal(cfg, (struct deal_spec){.stage = "PREPARATION"}, "open", "12500.50");
        expect_deal(cfg, (struct deal_spec){.stage = "C1:WON", .success = true}, "won",
                    "12500.50");
        expect_deal(cfg, (struct deal_spec){.stage = "C1:LOSE", .failure = true}, "lost", "0");
}

static void the_default_dictionary_gives_new_confirmed_and_canceled_to_deals(void **state)
{
        struct config *cfg = default_config();

        expect_deal(cfg, (struct deal_spec){.stage = "NEW"}, "new", "12500.50");
        expect_deal(cfg, (struct deal_spec){.stage = "WON", .success = true}, "confirmed",
                    "12500.50");
        expect_deal(cfg, (struct deal_spec){.stage = "LOSE", .failure = true}, "canceled", "0");
}

static void the_stage_map_wins_over_the_stage_semantics(void **state)
{
        struct config *cfg = config_from(TWO_OF_EACH "[roistat.stage_map]\nC1:WON = won2\n"
                                                     "C1:LOSE = lost2\nC1:NEW = work\n"
                                                     "C1:JUNK = old\n");

        expect_deal(cfg, (struct deal_spec){.stage = "C1:WON", .success = true}, "won2",
                    "12500.50");
        expect_deal(cfg, (struct deal_spec){.stage = "C1:LOSE", .failure = true}, "lost2", "0");
        expect_deal(cfg, (struct deal_spec){.stage = "C1:NEW"}, "work", "12500.50");
        /* a failure stage mapped to a status that is not of type canceled keeps its stage
         * map status, and is still revenue 0: the deal failed */
        expect_deal(cfg, (struct deal_spec){.stage = "C1:JUNK", .failure = true}, "old", "0");
        /* a stage the map does not name goes by its semantics */
        expect_deal(cfg, (struct deal_spec){.stage = "C2:WON", .success = true}, "won",
                    "12500.50");
}

static void a_stage_mapped_to_a_canceled_status_is_sent_with_price_0(void **state)
{
        struct config *cfg = config_from(TWO_OF_EACH "[roistat.stage_map]\nC1:APOLOGY = lost2\n");

        expect_deal(cfg, (struct deal_spec){.stage = "C1:APOLOGY"}, "lost2", "0");
}

static void a_failed_deal_keeps_its_price_when_canceled_price_zero_is_off(void **state)
{
        struct config *cfg = config_from("[roistat]\nproject = 12345\ncanceled_price_zero = no\n");

        expect_deal(cfg, (struct deal_spec){.stage = "LOSE", .failure = true}, "canceled",
                    "12500.50");
}

static void a_deal_whose_stage_finds_no_status_is_refused_naming_stage_and_type(void **state)
{
        struct config *cfg = config_from("[roistat]\nproject = 12345\n[roistat.statuses]\n"
                                         "open = progress\nwon = paid\n[roistat.map]\n"
                                         "@canceled = open\n@paid = won\nN = open\nP = open\n"
                                         "A = won\nD = won\nF = won\nC = open\n");
        struct snapshot *s = deal_of((struct deal_spec){.stage = "C3:LOSE", .failure = true});
        char why[256] = "";

        assert_null(roistat_order_json(roistat_of(cfg), s, why, sizeof(why)));
        if (!strstr(why, "deal stage \"C3:LOSE\"") || !strstr(why, "[roistat.stage_map]") ||
            !strstr(why, "type canceled"))
                fail_msg("the reason does not name the stage, the map and the type: %s", why);
}

static void a_site_order_is_unchanged_by_the_stage_map_and_deals(void **state)
{
        /* a stage map whose keys are also site status codes: site orders go by
         * [roistat.map] all the same */
        struct config *cfg = config_from("[roistat]\nproject = 12345\n[roistat.stage_map]\n"
                                         "N = confirmed\nC = new\n");
        json_t *o = order_json(cfg, (struct order_spec){.account_number = "A-123"});
        char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        bool same;

        same = strcmp(text, "{\"date_create\":1773385200,\"fields\":{\"account_number\":"
                            "\"A-123\",\"buyer_email\":\"ivan@example.ru\",\"buyer_name\":"
                            "\"Ivan Petrov\",\"buyer_phone\":\"+7 900 123-45-67\","
                            "\"currency\":\"RUB\"},\"id\":\"123\",\"name\":\"Order A-123\","
                            "\"price\":\"4990.00\",\"roistat\":\"4521890\",\"status\":"
                            "\"new\"}") == 0;
        if (!same)
                fail_msg("the site order changed: %s", text);
        free(text);
        expect_status_and_price(cfg, (struct order_spec){.status = "C"}, "canceled", "0");
}

/* every key of an order's "fields" is one the pull export's import_scheme lists */
static void expect_fields_listed(json_t *o)
{
        size_t n;
        const struct roistat_field *table = roistat_fields(&n);
        const char *key;
        json_t *v;

        json_object_foreach(json_object_get(o, "fields"), key, v)
        {
                bool listed = false;
                for (size_t i = 0; i < n; i++)
                        listed = listed || strcmp(table[i].id, key) == 0;
                if (!listed)
                        fail_msg("field \"%s\" is not in roistat_fields()", key);
        }
}

static void every_field_an_order_carries_is_in_the_fields_table(void **state)
{
        struct config *cfg = default_config();
        size_t n;
        const struct roistat_field *table = roistat_fields(&n);

        expect_fields_listed(order_json(cfg, (struct order_spec){0}));
        expect_fields_listed(order_json(
            cfg, (struct order_spec){.buyer = "\"type\":\"legal\",\"company\":\"OOO R\","
                                              "\"inn\":\"7707083893\""}));
        expect_fields_listed(deal_json(cfg, (struct deal_spec){.title = "Chat"}));
        for (size_t i = 0; i < n; i++)
                assert_true(table[i].name && table[i].name[0]);
}

/* ---- texts that jansson refuses ---- */

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
            T(a_new_order_is_sent_with_id_name_date_status_price_and_visit),
            T(the_order_object_has_only_the_members_roistat_knows),
            T(the_name_uses_the_account_number_and_the_id_stays_the_order_id),
            T(each_site_status_maps_as_the_design_table_says),
            T(a_paid_new_order_is_sent_as_confirmed_with_its_price),
            T(a_canceled_order_is_sent_as_canceled_with_price_0),
            T(a_canceled_order_that_was_paid_is_still_canceled_with_price_0),
            T(an_order_in_status_c_is_canceled_with_price_0_even_without_the_flag),
            T(a_canceled_order_keeps_its_price_when_canceled_price_zero_is_off),
            T(the_price_keeps_its_kopecks),
            T(without_a_visit_there_is_no_roistat_member),
            T(a_cost_is_sent_as_money_and_only_when_known),
            T(fields_carry_currency_account_number_and_the_buyer),
            T(fields_of_a_legal_buyer_carry_company_and_inn),
            T(an_unmapped_status_gives_no_order_and_a_reason_naming_it),
            T(a_short_reason_buffer_is_truncated_and_terminated),
            T(a_configured_map_entry_is_used_for_its_code),
            T(the_payload_is_built_from_the_defaults_when_roistat_is_not_configured),
            T(the_default_statuses_body_lists_new_confirmed_canceled),
            T(the_statuses_body_matches_the_configured_dictionary),
            T(a_deal_is_named_by_its_id_and_title_and_marked_as_from_bitrix24),
            T(a_deal_without_a_title_is_named_by_its_id),
            T(a_deals_stage_semantics_give_the_first_status_of_each_type),
            T(the_default_dictionary_gives_new_confirmed_and_canceled_to_deals),
            T(the_stage_map_wins_over_the_stage_semantics),
            T(a_stage_mapped_to_a_canceled_status_is_sent_with_price_0),
            T(a_failed_deal_keeps_its_price_when_canceled_price_zero_is_off),
            T(a_deal_whose_stage_finds_no_status_is_refused_naming_stage_and_type),
            T(a_site_order_is_unchanged_by_the_stage_map_and_deals),
            T(every_field_an_order_carries_is_in_the_fields_table),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
