/*
 * The table of sink kinds (sinks/registry.c): which sinks a configuration enables, the
 * names the store and `--sink` use, and that each kind's constructor builds a sink under
 * the table's own name (the dispatcher records deliveries under ops->name, ingest creates
 * them under the table's names: the two must agree). Configurations come from
 * config_load_string with the secrets in the environment.
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
#include <curl/curl.h>

#include "config/config.h"
#include "sinks/registry.h"

#define ROISTAT "[roistat]\nproject = 12345\n"
#define BITRIX24 "[site]\nid = shop.example.ru\n[bitrix24]\ncategory_id = 0\n"
#define ALL_THREE                                                                                  \
        ROISTAT "[site]\nid = shop.example.ru\nstatus_url = http://127.0.0.1:9/status.php\n"      \
                "[bitrix24]\ncategory_id = 0\n"

static struct config *configs[8];
static size_t n_configs;

static int setup(void **state)
{
        setenv("ORDERBRIDGE_ROISTAT_API_KEY", "test-api-key", 1);
        setenv("ORDERBRIDGE_BITRIX24_WEBHOOK_URL", "https://portal.example.ru/rest/1/c0de/", 1);
        /* the example secret of the Standard Webhooks specification */
        setenv("ORDERBRIDGE_SITE_STATUS_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1);
        return 0;
}

static int teardown(void **state)
{
        while (n_configs > 0)
                config_free(configs[--n_configs]);
        unsetenv("ORDERBRIDGE_ROISTAT_API_KEY");
        unsetenv("ORDERBRIDGE_BITRIX24_WEBHOOK_URL");
        unsetenv("ORDERBRIDGE_SITE_STATUS_SECRET");
        return 0;
}

static struct config *load(const char *text)
{
        struct config *c = NULL;
        char *errors = NULL;

        if (config_load_string(text, "test.conf", &c, &errors) != 0)
                fail_msg("configuration refused:\n%s--- from:\n%s", errors, text);
        assert_true(n_configs < 8);
        return configs[n_configs++] = c;
}

/* The enabled sinks' names, joined with ' ' ("" for none). */
static const char *enabled(const struct config *c, char *buf, size_t size)
{
        const char *names[SINK_KINDS_MAX];
        size_t n = sink_registry_enabled(c, names, SINK_KINDS_MAX), len = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < n; i++)
                len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? " " : "", names[i]);
        return buf;
}

/* ---- the table ---- */

static void the_table_holds_roistat_bitrix24_and_site(void **state)
{
        assert_int_equal(sink_registry_count(), 3);
        assert_string_equal(sink_registry_get(0)->name, "roistat");
        assert_string_equal(sink_registry_get(1)->name, "bitrix24");
        assert_string_equal(sink_registry_get(2)->name, "site");
        assert_null(sink_registry_get(3));
}

static void every_kind_has_a_section_the_engine_reads_and_a_constructor(void **state)
{
        struct config *c = load("");

        for (size_t i = 0; i < sink_registry_count(); i++) {
                const struct sink_kind *k = sink_registry_get(i);
                assert_non_null(k->section);
                assert_non_null(k->create);
                /* a sink's own section is optional; one that reads a core section (the
                 * site sink, [site]) says itself when it is on */
                assert_true(k->section->optional || k->enabled);
                if (!config_section_data(c, k->section->name))
                        fail_msg("[%s] is not a section of the configuration", k->section->name);
                for (size_t j = 0; j < i; j++)
                        assert_string_not_equal(sink_registry_get(j)->name, k->name);
        }
}

static void a_kind_is_found_by_its_exact_name_only(void **state)
{
        assert_ptr_equal(sink_registry_find("roistat"), sink_registry_get(0));
        assert_ptr_equal(sink_registry_find("bitrix24"), sink_registry_get(1));
        assert_null(sink_registry_find("Roistat"));
        assert_null(sink_registry_find("b24"));
        assert_null(sink_registry_find("roistat "));
        assert_null(sink_registry_find(""));
        assert_null(sink_registry_find(NULL));
}

static void the_names_list_every_kind_for_messages(void **state)
{
        char buf[64], small[10];

        sink_registry_names(buf, sizeof(buf));
        assert_string_equal(buf, "roistat, bitrix24, site");
        memset(small, 'x', sizeof(small));
        sink_registry_names(small, sizeof(small));
        assert_string_equal(small, "roistat, ");
}

/* ---- enabled sinks ---- */

static void without_sink_sections_no_sink_is_enabled(void **state)
{
        char buf[64];

        assert_string_equal(enabled(load("[server]\nthreads = 2\n"), buf, sizeof(buf)), "");
}

static void a_disabled_section_yields_no_sink(void **state)
{
        char buf[64];

        assert_string_equal(enabled(load("[roistat]\nenabled = no\n"), buf, sizeof(buf)), "");
        assert_string_equal(enabled(load(ROISTAT "enabled = no\n" BITRIX24 "enabled = off\n"),
                                    buf, sizeof(buf)),
                            "");
        /* a subsection alone does not turn its sink on */
        assert_string_equal(enabled(load("[roistat.map]\nN = new\n[bitrix24.map]\nN = NEW\n"),
                                    buf, sizeof(buf)),
                            "");
}

static void each_present_section_enables_its_sink_in_table_order(void **state)
{
        char buf[64];

        assert_string_equal(enabled(load(ROISTAT), buf, sizeof(buf)), "roistat");
        assert_string_equal(enabled(load(BITRIX24), buf, sizeof(buf)), "bitrix24");
        /* the file's order does not matter: the table's does */
        assert_string_equal(enabled(load(BITRIX24 ROISTAT), buf, sizeof(buf)),
                            "roistat bitrix24");
}

static void the_enabled_names_are_the_tables_own_strings(void **state)
{
        struct config *c = load(ROISTAT BITRIX24);
        const char *names[SINK_KINDS_MAX];

        assert_int_equal(sink_registry_enabled(c, names, SINK_KINDS_MAX), 2);
        assert_ptr_equal(names[0], sink_registry_get(0)->name);
        assert_ptr_equal(names[1], sink_registry_get(1)->name);
        assert_true(sink_kind_enabled(sink_registry_get(0), c));
        assert_true(sink_kind_enabled(sink_registry_get(1), c));
}

static void no_more_names_than_asked_for_are_written(void **state)
{
        struct config *c = load(ROISTAT BITRIX24);
        const char *names[2] = {NULL, "untouched"};

        assert_int_equal(sink_registry_enabled(c, names, 1), 1);
        assert_string_equal(names[0], "roistat");
        assert_string_equal(names[1], "untouched");
        assert_int_equal(sink_registry_enabled(c, names, 0), 0);
}

/* ---- constructors ---- */

static void the_site_sink_is_on_with_a_status_url_and_a_one_way_map_back(void **state)
{
        char buf[64], *errors = NULL;
        struct config *c = NULL;

        assert_string_equal(enabled(load(ROISTAT BITRIX24), buf, sizeof(buf)), "roistat bitrix24");
        assert_string_equal(enabled(load(ALL_THREE), buf, sizeof(buf)), "roistat bitrix24 site");
        /* A and D both to EXECUTING: a deal moved to EXECUTING names no one status */
        assert_int_equal(config_load_string(ALL_THREE "[bitrix24.map]\nD = EXECUTING\n",
                                            "test.conf", &c, &errors),
                         -EINVAL);
        assert_non_null(strstr(errors, "[site] status_url: [bitrix24.map] sends both A and D to "
                                       "stage EXECUTING"));
        free(errors);
        errors = NULL;
        /* [site.map] settles it */
        load(ALL_THREE "[bitrix24.map]\nD = EXECUTING\n[site.map]\nEXECUTING = D\n");
}

static void an_enabled_kind_builds_a_sink_under_the_tables_name(void **state)
{
        struct config *c = load(ALL_THREE);

        for (size_t i = 0; i < sink_registry_count(); i++) {
                const struct sink_kind *k = sink_registry_get(i);
                const struct sink_ops *ops = NULL;
                void *ctx = NULL;
                assert_int_equal(k->create(c, &ops, &ctx), 0);
                assert_non_null(ops);
                assert_string_equal(ops->name, k->name);
                assert_true(ops->batch_max > 0);
                ops->free(ctx);
        }
}

static void a_disabled_kind_refuses_to_build_and_leaves_the_outputs(void **state)
{
        struct config *c = load(ROISTAT "enabled = no\n");

        for (size_t i = 0; i < sink_registry_count(); i++) {
                const struct sink_kind *k = sink_registry_get(i);
                const struct sink_ops *ops = NULL;
                void *ctx = NULL;
                assert_false(sink_kind_enabled(k, c));
                assert_int_equal(k->create(c, &ops, &ctx), -EINVAL);
                assert_null(ops);
                assert_null(ctx);
        }
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
            T(the_table_holds_roistat_bitrix24_and_site),
            T(every_kind_has_a_section_the_engine_reads_and_a_constructor),
            T(a_kind_is_found_by_its_exact_name_only),
            T(the_names_list_every_kind_for_messages),
            T(without_sink_sections_no_sink_is_enabled),
            T(a_disabled_section_yields_no_sink),
            T(each_present_section_enables_its_sink_in_table_order),
            T(the_enabled_names_are_the_tables_own_strings),
            T(no_more_names_than_asked_for_are_written),
            T(the_site_sink_is_on_with_a_status_url_and_a_one_way_map_back),
            T(an_enabled_kind_builds_a_sink_under_the_tables_name),
            T(a_disabled_kind_refuses_to_build_and_leaves_the_outputs),
        };
        int r;

        curl_global_init(CURL_GLOBAL_DEFAULT);
        r = cmocka_run_group_tests(tests, NULL, NULL);
        curl_global_cleanup();
        return r;
}
