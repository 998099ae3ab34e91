/*
 * The configuration, loaded from strings named "test.conf" so that every message can be
 * checked for its "test.conf:LINE:" prefix and the [section] key it is about. Secrets
 * come from temporary files (mkstemp) or the environment; a few tests plant a recognisable
 * secret and check that no error text ever contains it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "config/core.h"
#include "model/statusmap.h"
#include "sinks/bitrix24_conf.h"
#include "sinks/registry.h"
#include "sinks/roistat_conf.h"

#define NAME "test.conf"
#define API_KEY "rk_live_4f9a2c7e1b3d"
/* base64 of bytes 0..31 */
#define GOOD_SECRET "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

/* ---- helpers ---- */

/* What a test creates is released in teardown, so that a failing assertion (which leaves
 * the test early) shows up as a failure and not also as a leak. */
static char tmp_paths[8][64];
static size_t n_tmp_paths;
/* room for every key of every sink in every foreign section (one test loads them all) */
#define KEPT_MAX 128
static struct config *configs[KEPT_MAX];
static size_t n_configs;
static char *error_texts[KEPT_MAX];
static size_t n_error_texts;

static struct config *keep_config(struct config *c)
{
        assert_true(n_configs < KEPT_MAX);
        return configs[n_configs++] = c;
}

static char *keep_errors(char *errors)
{
        assert_true(n_error_texts < KEPT_MAX);
        return error_texts[n_error_texts++] = errors;
}

/* Writes `content` to a new private temporary file; removed in teardown. */
static const char *temp_file(const char *content)
{
        char *path;
        int fd;

        assert_true(n_tmp_paths < 8);
        path = tmp_paths[n_tmp_paths++];
        snprintf(path, 64, "/tmp/orderbridge-test-XXXXXX");
        fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
        close(fd);
        return path;
}

static int setup(void **state)
{
        unsetenv("ORDERBRIDGE_ROISTAT_API_KEY");
        unsetenv("ORDERBRIDGE_ROISTAT_EXPORT_PASSWORD");
        unsetenv("ORDERBRIDGE_SIGNING_SECRET");
        unsetenv("ORDERBRIDGE_ADMIN_TOKEN");
        unsetenv("ORDERBRIDGE_BITRIX24_WEBHOOK_URL");
        unsetenv("ORDERBRIDGE_B24_APPLICATION_TOKEN");
        n_tmp_paths = 0;
        return 0;
}

static int teardown(void **state)
{
        for (size_t i = 0; i < n_tmp_paths; i++)
                unlink(tmp_paths[i]);
        n_tmp_paths = 0;
        while (n_configs > 0)
                config_free(configs[--n_configs]);
        while (n_error_texts > 0)
                free(error_texts[--n_error_texts]);
        unsetenv("ORDERBRIDGE_ROISTAT_API_KEY");
        unsetenv("ORDERBRIDGE_ROISTAT_EXPORT_PASSWORD");
        unsetenv("ORDERBRIDGE_SIGNING_SECRET");
        unsetenv("ORDERBRIDGE_ADMIN_TOKEN");
        unsetenv("ORDERBRIDGE_BITRIX24_WEBHOOK_URL");
        unsetenv("ORDERBRIDGE_B24_APPLICATION_TOKEN");
        return 0;
}

/* `text` loads without errors. The configuration is freed in teardown. */
static struct config *load_ok(const char *text)
{
        struct config *c = NULL;
        char *errors = NULL;
        int r = config_load_string(text, NAME, &c, &errors);

        keep_config(c);
        keep_errors(errors);
        if (r != 0 || !c)
                fail_msg("want the configuration to load, got %d:\n%s\n--- from:\n%s", r,
                         errors ? errors : "(no errors)", text);
        assert_null(errors);
        return c;
}

/* `text` fails to load; returns the error text (freed in teardown). */
static const char *load_fails(const char *text)
{
        struct config *c = NULL;
        char *errors = NULL;
        int r = config_load_string(text, NAME, &c, &errors);

        keep_config(c);
        keep_errors(errors);
        if (r != -EINVAL)
                fail_msg("want -EINVAL, got %d for:\n%s", r, text);
        assert_null(c);
        assert_non_null(errors);
        return errors;
}

/* `text` fails with a message that contains every one of the NULL-terminated needles. */
static void expect_error(const char *text, ...)
{
        const char *errors = load_fails(text);
        const char *needle;
        va_list ap;

        va_start(ap, text);
        while ((needle = va_arg(ap, const char *)) != NULL)
                if (!strstr(errors, needle))
                        fail_msg("the errors do not mention \"%s\":\n%s--- from:\n%s", needle,
                                 errors, text);
        va_end(ap);
}

static size_t count_lines(const char *s)
{
        size_t n = 0;

        for (; *s; s++)
                n += *s == '\n';
        return n;
}

/* The [roistat] settings, whether the sink is enabled or not. */
static const struct roistat_conf *roistat(const struct config *c)
{
        const struct roistat_conf *rc = config_section_data(c, "roistat");

        assert_non_null(rc);
        return rc;
}

/* A [roistat] section that is complete, with the API key from the environment. */
#define ROISTAT_OK "[roistat]\nproject = 12345\n"

static void use_env_api_key(void)
{
        setenv("ORDERBRIDGE_ROISTAT_API_KEY", API_KEY, 1);
}

/* "Отменён" and "Заказ " as a Windows editor saves them (cp1251): jansson, which every
 * text sent to a remote goes through, refuses them. */
#define CP1251_CANCELED "\xce\xf2\xec\xe5\xed\xb8\xed"
#define CP1251_ORDER "\xc7\xe0\xea\xe0\xe7 "

static void a_status_name_that_is_not_utf8_is_refused_at_its_line(void **state)
{
        expect_error("[roistat]\nproject = 12345\n[roistat.statuses]\nnew = progress, New\n"
                     "canceled = canceled, " CP1251_CANCELED "\n",
                     NAME ":5:", "[roistat.statuses] canceled", "not UTF-8", NULL);
}

static void a_deal_title_prefix_that_is_not_utf8_is_refused_at_its_line(void **state)
{
        const char *errors = load_fails("[bitrix24]\ndeal_title_prefix = " CP1251_ORDER "\n");

        if (!strstr(errors, NAME ":2: [bitrix24] deal_title_prefix: not UTF-8"))
                fail_msg("want the line and key named:\n%s", errors);
        if (strstr(errors, CP1251_ORDER))
                fail_msg("the value is echoed:\n%s", errors);
}

/* ---- defaults ---- */

static void an_empty_file_gives_the_defaults(void **state)
{
        struct config *c = load_ok("");

        assert_string_equal(c->listen, "127.0.0.1:8088");
        assert_string_equal(c->listen_host, "127.0.0.1");
        assert_int_equal(c->listen_port, 8088);
        assert_int_equal(c->max_body_bytes, 1048576);
        assert_int_equal(c->max_connections, 512);
        assert_int_equal(c->threads, 2);
        assert_string_equal(c->store_path, "var/orderbridge.db");
        assert_string_equal(c->log_level, "info");
        assert_int_equal(c->backoff_min_ms, 1000);
        assert_int_equal(c->backoff_max_ms, 600000);
        assert_int_equal(c->lifetime_s, 432000);
        assert_false(c->has_signing_key);
        assert_null(c->admin_token);
        assert_null(c->site_id);
}

static void roistat_is_disabled_when_its_section_is_absent(void **state)
{
        struct config *c = load_ok("[server]\nthreads = 4\n");

        assert_null(config_section(c, "roistat"));
        assert_false(roistat(c)->enabled);
        assert_null(roistat(c)->api_key);
}

static void the_default_roistat_statuses_are_new_confirmed_canceled(void **state)
{
        struct config *c = load_ok("");

        assert_int_equal(roistat(c)->n_statuses, 3);
        assert_string_equal(roistat(c)->statuses[0].id, "new");
        assert_string_equal(roistat(c)->statuses[0].type, "progress");
        assert_string_equal(roistat(c)->statuses[1].id, "confirmed");
        assert_string_equal(roistat(c)->statuses[1].type, "paid");
        assert_string_equal(roistat(c)->statuses[2].id, "canceled");
        assert_string_equal(roistat(c)->statuses[2].type, "canceled");
        assert_non_null(roistat_conf_status(roistat(c), "confirmed"));
        assert_null(roistat_conf_status(roistat(c), "paid"));
}

static void the_default_map_follows_the_design_table(void **state)
{
        static const char *const map[][2] = {{"N", "new"},       {"P", "new"},
                                             {"A", "confirmed"}, {"D", "confirmed"},
                                             {"F", "confirmed"}, {"C", "canceled"}};
        struct config *c = load_ok("");

        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
                const char *got = status_map_lookup(&roistat(c)->map, map[i][0], false, false);
                if (!got || strcmp(got, map[i][1]) != 0)
                        fail_msg("status %s: want %s, got %s", map[i][0], map[i][1],
                                 got ? got : "NULL");
        }
        assert_string_equal(status_map_lookup(&roistat(c)->map, "N", false, true), "confirmed");
        assert_string_equal(status_map_lookup(&roistat(c)->map, "N", true, false), "canceled");
}

/* ---- status_map_lookup ---- */

static void canceled_wins_over_paid_and_over_the_status_code(void **state)
{
        struct config *c = load_ok("");

        assert_string_equal(status_map_lookup(&roistat(c)->map, "F", true, true), "canceled");
        assert_string_equal(status_map_lookup(&roistat(c)->map, "UNKNOWN", true, true), "canceled");
}

static void paid_wins_over_the_status_code(void **state)
{
        struct config *c = load_ok("");

        assert_string_equal(status_map_lookup(&roistat(c)->map, "C", false, true), "confirmed");
        assert_string_equal(status_map_lookup(&roistat(c)->map, "ZZ", false, true), "confirmed");
}

static void an_unknown_status_code_maps_to_nothing(void **state)
{
        struct config *c = load_ok("");

        assert_null(status_map_lookup(&roistat(c)->map, "ZZ", false, false));
        assert_null(status_map_lookup(&roistat(c)->map, "n", false, false)); /* case matters */
        assert_null(status_map_lookup(&roistat(c)->map, "", false, false));
        assert_null(status_map_lookup(&roistat(c)->map, NULL, false, false));
}

static void without_flag_entries_the_status_code_is_used(void **state)
{
        struct status_map m;
        struct status_map_entry e[] = {{.key = "N", .value = "new"}, {.key = "C", .value = "lost"}};

        m.entries = e;
        m.n = 2;
        assert_string_equal(status_map_lookup(&m, "C", true, true), "lost");
        assert_string_equal(status_map_lookup(&m, "N", true, false), "new");
        assert_null(status_map_lookup(&m, "A", false, true));
}

/* ---- integers ---- */

static void an_integer_below_its_range_names_file_line_section_key_and_range(void **state)
{
        expect_error("[server]\nthreads = 0\n", NAME ":2:", "[server] threads", "between 1 and 64",
                     NULL);
}

static void an_integer_above_its_range_is_rejected(void **state)
{
        expect_error("# comment\n\n[server]\nthreads = 65\n", NAME ":4:", "[server] threads", NULL);
        expect_error("[roistat]\nbatch_size = 1001\n", NAME ":2:", "[roistat] batch_size", NULL);
}

static void an_integer_at_each_end_of_its_range_is_accepted(void **state)
{
        struct config *c = load_ok("[server]\nthreads = 64\nmax_body_bytes = 1024\n");

        assert_int_equal(c->threads, 64);
        assert_int_equal(c->max_body_bytes, 1024);
        c = load_ok("[server]\nthreads = 1\n");
        assert_int_equal(c->threads, 1);
}

static void a_value_that_is_not_an_integer_is_rejected(void **state)
{
        static const char *const bad[] = {"two", "1.5", "0x10", "+2", "2s", "99999999999999999999",
                                          "-",   "1e2", "2 3"};
        char text[128];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(text, sizeof(text), "[server]\nthreads = %s\n", bad[i]);
                expect_error(text, NAME ":2:", "[server] threads", NULL);
        }
}

static void a_negative_integer_is_out_of_range_not_wrapped(void **state)
{
        expect_error("[delivery]\nvisit_wait_max = -1\n", NAME ":2:", "[delivery] visit_wait_max",
                     NULL);
}

/* ---- booleans ---- */

static void every_documented_bool_spelling_is_understood(void **state)
{
        static const struct {
                const char *text;
                bool value;
        } cases[] = {{"yes", true}, {"no", false},   {"true", true}, {"false", false},
                     {"on", true},  {"off", false},  {"1", true},    {"0", false},
                     {"YES", true}, {"False", false}};
        char text[160];

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct config *c;

                snprintf(text, sizeof(text), "[roistat]\nenabled = no\ncanceled_price_zero = %s\n",
                         cases[i].text);
                c = load_ok(text);
                if (roistat(c)->canceled_price_zero != cases[i].value)
                        fail_msg("\"%s\" read as %d", cases[i].text,
                                 roistat(c)->canceled_price_zero);
        }
}

static void a_bool_spelled_otherwise_is_rejected(void **state)
{
        static const char *const bad[] = {"maybe", "2", "y", "n", "enabled", "yes please"};
        char text[128];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(text, sizeof(text), "[roistat]\nenabled = %s\n", bad[i]);
                expect_error(text, NAME ":2:", "[roistat] enabled", NULL);
        }
}

/* ---- structure ---- */

static void an_unknown_section_is_named_with_the_line_of_its_header(void **state)
{
        expect_error("[server]\nthreads = 2\n[roistatt]\nproject = 1\n", NAME ":3:", "[roistatt]",
                     "unknown section", NULL);
}

static void an_empty_unknown_section_is_named_too(void **state)
{
        expect_error("[server]\nthreads = 2\n[roistatt]\n", NAME ":3:", "[roistatt]",
                     "unknown section", NULL);
}

static void an_unknown_key_is_named_with_its_section_and_line(void **state)
{
        expect_error("[server]\nthreads = 2\nthreds = 3\n", NAME ":3:", "[server] threds",
                     "unknown key", NULL);
}

static void a_key_before_any_section_is_rejected(void **state)
{
        expect_error("threads = 2\n", NAME ":1:", NULL);
}

static void a_line_that_is_neither_section_nor_key_is_a_syntax_error(void **state)
{
        expect_error("[server]\nthreads = 2\nthis is not ini\n", NAME ":3:", "syntax", NULL);
        expect_error("[server\nthreads = 2\n", NAME ":1:", NULL);
}

static void a_line_of_1000_bytes_is_accepted(void **state)
{
        char text[1100];
        struct config *c;

        /* "path = /" + 992 × 'a' = 1000 bytes, within a string value's own 1000-byte limit */
        snprintf(text, sizeof(text), "[store]\npath = /%0992d\n", 0);
        assert_int_equal(strlen("path = /") + 992, 1000);
        c = load_ok(text);
        assert_int_equal(strlen(c->store_path), 993);
}

static void a_comment_of_1000_bytes_is_accepted(void **state)
{
        char text[1100];
        struct config *c;

        text[0] = '#';
        memset(text + 1, 'c', 999);
        snprintf(text + 1000, sizeof(text) - 1000, "\n[server]\nthreads = 3\n");
        c = load_ok(text);
        assert_int_equal(c->threads, 3);
}

static void a_line_over_1024_bytes_is_rejected_not_split(void **state)
{
        char text[2200];
        const char *errors;

        /* were it split, the tail "threads = 9" would be read as a key */
        memcpy(text, "[server]\n# ", 11);
        memset(text + 11, 'x', 1100);
        snprintf(text + 1111, sizeof(text) - 1111, " threads = 9\nthreads = 3\n");
        errors = load_fails(text);
        if (!strstr(errors, NAME ":2:") || !strstr(errors, "1024"))
                fail_msg("want a \"" NAME ":2:\" error that names the 1024-byte limit, got:\n%s",
                         errors);
        assert_int_equal(count_lines(errors), 1);
}

static void inline_comments_and_spaces_around_values_are_ignored(void **state)
{
        struct config *c = load_ok("[server]\n  threads   =   5   ; five workers\n");

        assert_int_equal(c->threads, 5);
}

static void several_errors_are_reported_at_once(void **state)
{
        const char *errors = load_fails("[server]\nthreads = 0\nbogus = 1\n[delivery]\n"
                                        "backoff_min_ms = x\n[nope]\na = b\n");

        assert_non_null(strstr(errors, NAME ":2: [server] threads"));
        assert_non_null(strstr(errors, NAME ":3: [server] bogus"));
        assert_non_null(strstr(errors, NAME ":5: [delivery] backoff_min_ms"));
        assert_non_null(strstr(errors, NAME ":6: [nope]"));
        assert_int_equal(count_lines(errors), 4);
}

static void backoff_min_above_backoff_max_is_rejected(void **state)
{
        expect_error("[delivery]\nbackoff_min_ms = 5000\nbackoff_max_ms = 4000\n",
                     NAME ":2:", "backoff_min_ms", NULL);
}

/* A country code that is no country's would stop matching every phone typed without "+". */
static void a_country_code_that_is_no_countrys_is_rejected(void **state)
{
        expect_error("[bitrix24]\ncountry_code = 800\n", NAME ":2:", "[bitrix24] country_code",
                     "no country's calling code", NULL);
        expect_error("[bitrix24]\ncountry_code = 0\n", NAME ":2:", "[bitrix24] country_code", NULL);
}

static void an_unknown_log_level_is_rejected(void **state)
{
        expect_error("[log]\nlevel = verbose\n", NAME ":2:", "[log] level", NULL);
}

/* ---- [server] listen ---- */

static void listen_accepts_ipv4_and_bracketed_ipv6(void **state)
{
        struct config *c = load_ok("[server]\nlisten = 0.0.0.0:9000\n");

        assert_string_equal(c->listen_host, "0.0.0.0");
        assert_int_equal(c->listen_port, 9000);
        c = load_ok("[server]\nlisten = [::1]:8088\n");
        assert_string_equal(c->listen_host, "::1");
        assert_int_equal(c->listen_port, 8088);
}

static void listen_without_a_valid_port_or_numeric_address_is_rejected(void **state)
{
        static const char *const bad[] = {"127.0.0.1",    "127.0.0.1:",     "127.0.0.1:65536",
                                          "127.0.0.1:-1", "127.0.0.1:http", "localhost:8088",
                                          ":8088",        "[::1:8088",      "[]:8088"};
        char text[128];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(text, sizeof(text), "[server]\nlisten = %s\n", bad[i]);
                expect_error(text, NAME ":2:", "[server] listen", NULL);
        }
}

static void listen_with_an_unbracketed_ipv6_address_is_rejected_as_ambiguous(void **state)
{
        /* "::1:8088" is itself a valid IPv6 address; only "[::1]:8088" says where the port
         * starts, which is what the error text for listen asks for */
        expect_error("[server]\nlisten = ::1:8088\n", NAME ":2:", "[server] listen", NULL);
        expect_error("[server]\nlisten = fe80::1:80\n", NAME ":2:", "[server] listen", NULL);
}

/* ---- [roistat] ---- */

static void roistat_with_project_and_env_key_is_enabled(void **state)
{
        struct config *c;

        use_env_api_key();
        c = load_ok(ROISTAT_OK);
        assert_ptr_equal(config_section(c, "roistat"), roistat(c));
        assert_true(roistat(c)->enabled);
        assert_string_equal(roistat(c)->project, "12345");
        assert_string_equal(roistat(c)->api_key, API_KEY);
        assert_string_equal(roistat(c)->url, "https://cloud.roistat.com/api/v1");
        assert_true(roistat(c)->canceled_price_zero);
}

static void roistat_api_key_is_read_from_the_first_line_of_its_file(void **state)
{
        const char *path = temp_file(API_KEY "  \nsecond line is ignored\n");
        char text[256];
        struct config *c;

        snprintf(text, sizeof(text), ROISTAT_OK "api_key_file = %s\n", path);
        c = load_ok(text);
        assert_string_equal(roistat(c)->api_key, API_KEY);
}

static void roistat_api_key_file_wins_over_the_environment(void **state)
{
        const char *path = temp_file(API_KEY "\n");
        char text[256];
        struct config *c;

        setenv("ORDERBRIDGE_ROISTAT_API_KEY", "from-the-environment", 1);
        snprintf(text, sizeof(text), ROISTAT_OK "api_key_file = %s\n", path);
        c = load_ok(text);
        assert_string_equal(roistat(c)->api_key, API_KEY);
}

static void roistat_without_a_project_is_an_error(void **state)
{
        use_env_api_key();
        expect_error("[roistat]\nbatch_size = 10\n", NAME ":1:", "[roistat] project", NULL);
}

static void roistat_without_an_api_key_is_an_error(void **state)
{
        expect_error("[roistat]\nproject = 12345\n", NAME ":1:", "[roistat] api_key_file",
                     "ORDERBRIDGE_ROISTAT_API_KEY", NULL);
}

static void roistat_without_project_or_key_reports_both(void **state)
{
        const char *errors = load_fails("[roistat]\ntimeout_ms = 1000\n");

        assert_non_null(strstr(errors, "[roistat] project"));
        assert_non_null(strstr(errors, "[roistat] api_key_file"));
}

static void an_empty_roistat_section_enables_roistat_and_asks_for_project_and_key(void **state)
{
        /* the section is present, so the sink is on (enabled defaults to yes): it must not be
         * silently switched off because the section has no keys yet */
        const char *errors = load_fails("[server]\nthreads = 2\n[roistat]\n");

        if (!strstr(errors, "[roistat] project") || !strstr(errors, "[roistat] api_key_file"))
                fail_msg("want errors for [roistat] project and api_key_file, got:\n%s", errors);
}

static void roistat_enabled_no_needs_neither_project_nor_key(void **state)
{
        struct config *c = load_ok("[roistat]\nenabled = no\n");

        assert_null(config_section(c, "roistat"));
        assert_false(roistat(c)->enabled);
}

static void a_roistat_project_that_is_not_a_number_is_rejected(void **state)
{
        use_env_api_key();
        expect_error("[roistat]\nproject = abc\n", NAME ":2:", "[roistat] project", NULL);
        expect_error("[roistat]\nproject = 1234567890123\n", NAME ":2:", "[roistat] project", NULL);
}

static void a_missing_api_key_file_is_named_with_its_line(void **state)
{
        expect_error(ROISTAT_OK "api_key_file = /nonexistent/orderbridge/key\n",
                     NAME ":3:", "[roistat] api_key_file", "/nonexistent/orderbridge/key", NULL);
}

static void an_empty_api_key_file_is_rejected(void **state)
{
        const char *path = temp_file("");
        char text[256];

        snprintf(text, sizeof(text), ROISTAT_OK "api_key_file = %s\n", path);
        expect_error(text, NAME ":3:", "[roistat] api_key_file", "empty", NULL);
}

static void an_api_key_file_whose_first_line_is_blank_is_rejected(void **state)
{
        const char *path = temp_file(" \t\n" API_KEY "\n");
        char text[256];

        snprintf(text, sizeof(text), ROISTAT_OK "api_key_file = %s\n", path);
        expect_error(text, NAME ":3:", "[roistat] api_key_file", "empty", NULL);
}

static void an_api_key_file_over_4096_bytes_is_rejected(void **state)
{
        char *big = malloc(5000);
        const char *path;
        char text[256];

        memset(big, 'k', 4999);
        big[4999] = '\0';
        path = temp_file(big);
        free(big);
        snprintf(text, sizeof(text), ROISTAT_OK "api_key_file = %s\n", path);
        expect_error(text, NAME ":3:", "[roistat] api_key_file", NULL);
}

static void an_api_key_with_a_space_is_rejected_without_showing_it(void **state)
{
        const char *errors;

        setenv("ORDERBRIDGE_ROISTAT_API_KEY", "sekrit-part1 sekrit-part2", 1);
        errors = load_fails(ROISTAT_OK);
        assert_non_null(strstr(errors, "[roistat] api_key_file"));
        assert_null(strstr(errors, "sekrit"));
}

static void roistat_url_over_plain_http_to_a_remote_host_is_rejected(void **state)
{
        static const char *const bad[] = {
            "http://cloud.roistat.com/api/v1",
            "http://10.0.0.5:8080/api",
            "http://127.0.0.1.evil.example/api",
            "http://localhost.evil.example/",
            "http://127.0.0.1@evil.example/",
            "http://[::ffff:8.8.8.8]/",
            "ftp://cloud.roistat.com/",
            "cloud.roistat.com/api/v1",
            "https://",
            "http://[::1/api",
        };
        char text[256];

        use_env_api_key();
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(text, sizeof(text), ROISTAT_OK "url = %s\n", bad[i]);
                expect_error(text, NAME ":3:", "[roistat] url", NULL);
        }
}

static void roistat_url_over_plain_http_to_loopback_is_accepted(void **state)
{
        static const char *const good[] = {
            "http://127.0.0.1:18080/api/v1", "http://127.0.0.1",
            "http://127.1.2.3/api",          "http://[::1]:18080/api/v1",
            "http://localhost:18080/api/v1", "http://localhost"};
        char text[256];

        use_env_api_key();
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                struct config *c;
                snprintf(text, sizeof(text), ROISTAT_OK "url = %s\n", good[i]);
                c = load_ok(text);
                assert_string_equal(roistat(c)->url, good[i]);
        }
}

static void roistat_url_over_https_to_any_host_is_accepted(void **state)
{
        static const char *const good[] = {"https://cloud.roistat.com/api/v1",
                                           "https://10.0.0.5:8443/api",
                                           "https://[2001:db8::1]/api"};
        char text[256];

        use_env_api_key();
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                snprintf(text, sizeof(text), ROISTAT_OK "url = %s\n", good[i]);
                assert_string_equal(roistat(load_ok(text))->url, good[i]);
        }
}

static void a_url_error_does_not_repeat_credentials_in_the_url(void **state)
{
        const char *errors;

        use_env_api_key();
        errors = load_fails(ROISTAT_OK "url = http://user:hunter2@roistat.example/api\n");
        assert_non_null(strstr(errors, "[roistat] url"));
        assert_null(strstr(errors, "hunter2"));
}

/* ---- [roistat.statuses] and [roistat.map] ---- */

static void configured_statuses_replace_the_defaults(void **state)
{
        struct config *c;

        use_env_api_key();
        c = load_ok(ROISTAT_OK "[roistat.statuses]\n"
                               "open = progress, Open\n"
                               "won = paid, Won deal\n"
                               "lost = canceled, Lost\n"
                               "[roistat.map]\n"
                               "@canceled = lost\n@paid = won\nN = open\nP = open\nA = won\n"
                               "D = won\nF = won\nC = lost\n");
        assert_int_equal(roistat(c)->n_statuses, 3);
        assert_string_equal(roistat(c)->statuses[0].id, "open");
        assert_string_equal(roistat(c)->statuses[0].type, "progress");
        assert_string_equal(roistat(c)->statuses[0].name, "Open");
        assert_string_equal(roistat(c)->statuses[1].name, "Won deal");
        assert_null(roistat_conf_status(roistat(c), "new"));
        assert_string_equal(status_map_lookup(&roistat(c)->map, "F", false, false), "won");
}

static void a_status_with_an_unknown_type_is_rejected(void **state)
{
        use_env_api_key();
        expect_error(ROISTAT_OK "[roistat.statuses]\nnew = progress, New\n"
                                "confirmed = won, Confirmed\ncanceled = canceled, Canceled\n",
                     NAME ":5:", "[roistat.statuses] confirmed", "type", NULL);
}

static void a_status_defined_twice_is_rejected(void **state)
{
        use_env_api_key();
        expect_error(ROISTAT_OK "[roistat.statuses]\nnew = progress, New\nnew = paid, New\n"
                                "confirmed = paid, C\ncanceled = canceled, X\n",
                     NAME ":5:", "[roistat.statuses] new", "twice", NULL);
}

static void a_status_id_with_unsafe_characters_is_rejected(void **state)
{
        use_env_api_key();
        expect_error(ROISTAT_OK "[roistat.statuses]\nnew status = progress, New\n",
                     NAME ":4:", "[roistat.statuses]", NULL);
}

static void a_status_without_a_name_uses_its_id(void **state)
{
        struct config *c;

        use_env_api_key();
        c = load_ok(ROISTAT_OK "[roistat.statuses]\nnew = progress\nconfirmed = paid\n"
                               "canceled = canceled\n");
        assert_string_equal(roistat(c)->statuses[0].name, "new");
}

static void map_entries_merge_over_the_defaults(void **state)
{
        struct config *c;

        use_env_api_key();
        c = load_ok(ROISTAT_OK "[roistat.map]\nP = confirmed\nX1 = new\n");
        assert_string_equal(status_map_lookup(&roistat(c)->map, "P", false, false), "confirmed");
        assert_string_equal(status_map_lookup(&roistat(c)->map, "X1", false, false), "new");
        /* untouched defaults stay */
        assert_string_equal(status_map_lookup(&roistat(c)->map, "N", false, false), "new");
        assert_string_equal(status_map_lookup(&roistat(c)->map, "C", false, false), "canceled");
}

static void a_map_value_naming_an_unknown_status_is_an_error_with_its_line(void **state)
{
        use_env_api_key();
        expect_error(ROISTAT_OK "[roistat.map]\nP = shipped\n", NAME ":4:", "[roistat.map] P",
                     "shipped", NULL);
}

static void a_map_key_that_is_not_a_code_or_flag_is_rejected(void **state)
{
        use_env_api_key();
        expect_error(ROISTAT_OK "[roistat.map]\n@refunded = canceled\n",
                     NAME ":4:", "[roistat.map] @refunded", NULL);
        expect_error(ROISTAT_OK "[roistat.map]\nN = new status\n", NAME ":4:", "[roistat.map] N",
                     NULL);
}

/* ---- [roistat.stage_map] ---- */

static void a_stage_id_with_a_colon_is_a_stage_map_key(void **state)
{
        struct config *c;

        use_env_api_key();
        /* inih splits at ':' as well as '=': "C1:WON = confirmed" must still be one key */
        c = load_ok(ROISTAT_OK "[roistat.stage_map]\nC1:WON = confirmed\nNEW = new\n"
                               "C12:PREPAYMENT_INVOICE=canceled ; a comment\n");
        assert_int_equal(roistat(c)->stage_map.n, 3);
        assert_string_equal(status_map_lookup(&roistat(c)->stage_map, "C1:WON", false, false),
                            "confirmed");
        assert_string_equal(status_map_lookup(&roistat(c)->stage_map, "NEW", false, false),
                            "new");
        assert_string_equal(status_map_lookup(&roistat(c)->stage_map, "C12:PREPAYMENT_INVOICE",
                                              false, false),
                            "canceled");
        assert_null(status_map_lookup(&roistat(c)->stage_map, "C1", false, false));
        assert_int_equal(roistat(c)->stage_map.entries[0].line, 4);
}

static void a_stage_map_line_without_an_equals_sign_is_refused_at_its_line(void **state)
{
        use_env_api_key();
        /* inih would read it as C1 = WON */
        expect_error(ROISTAT_OK "[roistat.stage_map]\nC1:WON\n", NAME ":4:",
                     "[roistat.stage_map] C1: expected KEY = VALUE", NULL);
}

static void a_stage_map_value_naming_an_unknown_status_is_an_error_with_its_line(void **state)
{
        use_env_api_key();
        expect_error(ROISTAT_OK "[roistat.stage_map]\nNEW = new\nC1:WON = won\n", NAME ":5:",
                     "[roistat.stage_map] C1:WON = won: no such status in [roistat.statuses]",
                     NULL);
        /* the dictionary is the configured one, not the defaults it replaced */
        expect_error(ROISTAT_OK "[roistat.statuses]\nopen = progress\nwon = paid\n"
                                "lost = canceled\n[roistat.map]\n@canceled = lost\n"
                                "@paid = won\nN = open\nP = open\nA = won\nD = won\n"
                                "F = won\nC = lost\n[roistat.stage_map]\nC1:WON = confirmed\n",
                     NAME ":17:", "[roistat.stage_map] C1:WON = confirmed", NULL);
}

static void a_stage_map_key_that_is_not_a_stage_id_is_refused(void **state)
{
        use_env_api_key();
        expect_error(ROISTAT_OK "[roistat.stage_map]\n@paid = confirmed\n", NAME ":4:",
                     "[roistat.stage_map] @paid: the key must be a Bitrix24 stage id", NULL);
        expect_error(ROISTAT_OK "[roistat.stage_map]\nC1:WON = new one\n", NAME ":4:",
                     "[roistat.stage_map] C1:WON", "not a status id", NULL);
        expect_error(ROISTAT_OK "[roistat.stage_map]\nNEW = new\nNEW = confirmed\n",
                     NAME ":5:", "[roistat.stage_map] NEW: mapped twice", NULL);
}

static void a_colon_after_the_equals_sign_is_part_of_the_value(void **state)
{
        const char *errors;

        use_env_api_key();
        /* split at '=' as before: the value "C1:WON" is a status id that does not exist */
        errors = load_fails(ROISTAT_OK "[roistat.map]\nN = C1:WON\n");
        if (!strstr(errors, NAME ":4: [roistat.map] N = C1:WON: no such status"))
                fail_msg("want the whole value named:\n%s", errors);
}

/* ---- [roistat] push and the pull export ---- */

static void push_no_with_the_export_needs_neither_project_nor_api_key(void **state)
{
        const char *path = temp_file("export-pass\n");
        char text[256];
        struct config *c;

        snprintf(text, sizeof(text),
                 "[roistat]\npush = no\nexport_login = shop\nexport_password_file = %s\n",
                 path);
        c = load_ok(text);
        assert_non_null(config_section(c, "roistat"));
        assert_false(roistat(c)->push);
        assert_false(roistat_conf_pushes(c));
        assert_false(sink_kind_enabled(sink_registry_find("roistat"), c));
        assert_string_equal(roistat(c)->export_login, "shop");
        assert_string_equal(roistat(c)->export_password, "export-pass");
        assert_null(roistat(c)->api_key);
}

static void push_is_on_by_default_and_the_export_is_off(void **state)
{
        struct config *c;

        use_env_api_key();
        c = load_ok(ROISTAT_OK);
        assert_true(roistat(c)->push);
        assert_true(roistat_conf_pushes(c));
        assert_true(sink_kind_enabled(sink_registry_find("roistat"), c));
        assert_null(roistat(c)->export_login);
        assert_null(roistat(c)->export_password);
        /* enabled = no turns everything off, push or not */
        c = load_ok("[roistat]\nenabled = no\npush = yes\nexport_login = shop\n");
        assert_null(config_section(c, "roistat"));
        assert_false(roistat_conf_pushes(c));
}

static void push_no_without_the_export_is_refused(void **state)
{
        expect_error("[roistat]\npush = no\n", NAME ":2:", "[roistat] push = no", NULL);
}

static void the_export_login_and_password_go_together(void **state)
{
        const char *path = temp_file("export-pass\n");
        char text[256];

        use_env_api_key();
        expect_error(ROISTAT_OK "export_login = shop\n", NAME ":3:",
                     "[roistat] export_password_file: required with export_login", NULL);
        snprintf(text, sizeof(text), ROISTAT_OK "export_password_file = %s\n", path);
        expect_error(text, "[roistat] export_login: required", NULL);
        setenv("ORDERBRIDGE_ROISTAT_EXPORT_PASSWORD", "from-env", 1);
        expect_error(ROISTAT_OK, "[roistat] export_login: required", NULL);
        assert_string_equal(roistat(load_ok(ROISTAT_OK "export_login = shop\n"))->export_password,
                            "from-env");
        unsetenv("ORDERBRIDGE_ROISTAT_EXPORT_PASSWORD");
}

static void an_export_login_with_a_control_character_is_refused(void **state)
{
        use_env_api_key();
        setenv("ORDERBRIDGE_ROISTAT_EXPORT_PASSWORD", "from-env", 1);
        expect_error(ROISTAT_OK "export_login = sh\top\n", NAME ":3:",
                     "[roistat] export_login: must be 1-128 bytes", NULL);
        unsetenv("ORDERBRIDGE_ROISTAT_EXPORT_PASSWORD");
}

/* ---- sections: each module's keys are known in its own section only ---- */

static bool section_has_key(const struct config_section *s, const char *key)
{
        for (size_t i = 0; i < s->n_keys; i++)
                if (strcmp(s->keys[i].name, key) == 0)
                        return true;
        return false;
}

static void a_sinks_key_in_a_core_section_is_an_unknown_key_naming_it(void **state)
{
        expect_error("[server]\nthreads = 2\nbatch_size = 5\n", NAME ":3:", "[server] batch_size",
                     "unknown key", NULL);
        expect_error("[delivery]\nwebhook_url_file = /etc/b24\n", NAME ":2:",
                     "[delivery] webhook_url_file", "unknown key", NULL);
}

static void a_key_of_one_sink_in_the_other_sinks_section_is_an_unknown_key(void **state)
{
        use_env_api_key();
        expect_error(ROISTAT_OK "category_id = 3\n", NAME ":3:", "[roistat] category_id",
                     "unknown key", NULL);
        expect_error("[bitrix24]\nproject = 12345\n", NAME ":2:", "[bitrix24] project",
                     "unknown key", NULL);
}

static void a_core_key_in_a_sinks_section_is_an_unknown_key(void **state)
{
        expect_error("[roistat]\nthreads = 2\n", NAME ":2:", "[roistat] threads", "unknown key",
                     NULL);
        expect_error("[bitrix24]\nlisten = 127.0.0.1:1\n", NAME ":2:", "[bitrix24] listen",
                     "unknown key", NULL);
}

/* Every key of every registered sink section, written under [server] and under each
 * other sink's section, is refused by name (unless that section has a key of the same
 * name). */
static void every_sink_key_is_refused_in_every_section_that_does_not_own_it(void **state)
{
        const struct config_section *server = &config_core_sections[0];
        char text[256], want[128];
        size_t tried = 0;

        assert_string_equal(server->name, "server");
        for (size_t i = 0; i < sink_registry_count(); i++) {
                const struct config_section *own = sink_registry_get(i)->section;
                for (size_t k = 0; k < own->n_keys; k++) {
                        const char *key = own->keys[k].name;
                        for (size_t j = 0; j <= sink_registry_count(); j++) {
                                const struct config_section *other =
                                        j < sink_registry_count() ? sink_registry_get(j)->section
                                                                  : server;
                                if (other == own || section_has_key(other, key))
                                        continue;
                                snprintf(text, sizeof(text), "[%s]\n%s = 1\n", other->name, key);
                                snprintf(want, sizeof(want), NAME ":2: [%s] %s: unknown key",
                                         other->name, key);
                                expect_error(text, want, NULL);
                                tried++;
                        }
                }
        }
        /* roistat's 12 keys, bitrix24's 17 and the site sink's 3 ([site]), each in three
         * foreign sections, less the names both Roistat and Bitrix24 have (enabled, rate,
         * timeout_ms) */
        assert_int_equal(tried, 3 * (12 + 17 + 3) - 2 * 3);
}

static void keys_lists_every_registered_sections_keys_under_its_header(void **state)
{
        char *text = NULL, header[64];
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        assert_non_null(f);
        config_print_keys(f);
        fclose(f);
        for (size_t i = 0; i <= sink_registry_count(); i++) {
                const struct config_section *s =
                        i < sink_registry_count() ? sink_registry_get(i)->section
                                                  : &config_core_sections[0];
                const char *at, *next;
                snprintf(header, sizeof(header), "\n[%s]\n", s->name);
                at = strstr(text, header);
                if (!at) {
                        free(text);
                        fail_msg("--keys has no %s header", s->name);
                }
                at += strlen(header);
                next = strstr(at, "\n[");
                for (size_t k = 0; k < s->n_keys; k++) {
                        char line[64];
                        const char *hit;
                        snprintf(line, sizeof(line), "\n  %s ", s->keys[k].name);
                        hit = strstr(at - 1, line);
                        if (!hit || (next && hit > next)) {
                                free(text);
                                fail_msg("--keys lists no %s under [%s]", s->keys[k].name,
                                         s->name);
                        }
                }
                for (size_t j = 0; j < s->n_subsections; j++) {
                        const char *name = s->subsections[j].name;
                        size_t n = strlen(name);
                        /* a family "[bitrix24.site *]" is shown as "[bitrix24.site <LID>]" */
                        if (n > 2 && strcmp(name + n - 2, " *") == 0)
                                snprintf(header, sizeof(header), "\n[%.*s <", (int)(n - 2), name);
                        else
                                snprintf(header, sizeof(header), "\n[%s]\n", name);
                        if (!strstr(text, header)) {
                                free(text);
                                fail_msg("--keys does not describe [%s]", s->subsections[j].name);
                        }
                }
        }
        free(text);
}

static void an_unknown_section_name_has_no_settings(void **state)
{
        struct config *c = load_ok("");

        assert_null(config_section(c, "nosuch"));
        assert_null(config_section_data(c, "nosuch"));
        assert_null(config_section_data(c, "roistat.map")); /* a subsection, not a section */
        /* a core section is always on, and is struct config itself */
        assert_ptr_equal(config_section(c, "server"), c);
}

/* ---- secrets ---- */

static void the_signing_secret_is_read_from_its_file(void **state)
{
        const char *path = temp_file(GOOD_SECRET "\n");
        char text[256];
        struct config *c;

        snprintf(text, sizeof(text), "[server]\nsigning_secret_file = %s\n", path);
        c = load_ok(text);
        assert_true(c->has_signing_key);
        assert_int_equal(c->signing_key.len, 32);
        assert_int_equal(c->signing_key.bytes[31], 31);
}

static void the_signing_secret_is_read_from_the_environment(void **state)
{
        struct config *c;

        setenv("ORDERBRIDGE_SIGNING_SECRET", GOOD_SECRET, 1);
        c = load_ok("");
        assert_true(c->has_signing_key);
        assert_int_equal(c->signing_key.len, 32);
}

static void a_bad_signing_secret_is_rejected_without_showing_it(void **state)
{
        /* base64 of the 15 bytes "sekrit-tooshort": one byte too short */
        const char *path = temp_file("whsec_c2Vrcml0LXRvb3Nob3J0\n");
        char text[256];
        const char *errors;

        snprintf(text, sizeof(text), "[server]\nsigning_secret_file = %s\n", path);
        errors = load_fails(text);
        assert_non_null(strstr(errors, NAME ":2:"));
        assert_non_null(strstr(errors, "[server] signing_secret_file"));
        assert_null(strstr(errors, "c2Vrcml0"));
}

static void a_signing_secret_without_the_prefix_is_rejected_without_showing_it(void **state)
{
        const char *errors;

        setenv("ORDERBRIDGE_SIGNING_SECRET", "plain-sekrit-value-1234567890", 1);
        errors = load_fails("");
        assert_non_null(strstr(errors, "signing_secret_file"));
        assert_null(strstr(errors, "sekrit"));
}

static void an_admin_token_under_16_bytes_is_rejected_without_showing_it(void **state)
{
        const char *path = temp_file("sekrit123\n");
        char text[256];
        const char *errors;

        snprintf(text, sizeof(text), "[server]\nadmin_token_file = %s\n", path);
        errors = load_fails(text);
        assert_non_null(strstr(errors, NAME ":2: [server] admin_token_file"));
        assert_null(strstr(errors, "sekrit"));
}

static void a_secret_put_under_a_wrong_key_is_not_echoed(void **state)
{
        const char *errors = load_fails("[roistat]\napi_key = sekrit-api-key\n[server]\n"
                                        "signing_secret = whsec_sekritsekritsekrit\n");

        assert_non_null(strstr(errors, NAME ":2: [roistat] api_key"));
        assert_non_null(strstr(errors, NAME ":4: [server] signing_secret"));
        assert_null(strstr(errors, "sekrit"));
}

static void config_free_accepts_null_and_returns_null(void **state)
{
        assert_null(config_free(NULL));
}

static void config_load_of_a_missing_file_names_it(void **state)
{
        struct config *c = NULL;
        char *errors = NULL;

        assert_int_equal(config_load("/nonexistent/orderbridge.conf", &c, &errors), -ENOENT);
        keep_errors(errors);
        keep_config(c);
        assert_null(c);
        assert_non_null(strstr(errors, "/nonexistent/orderbridge.conf"));
}

static void config_load_of_a_file_reports_its_path_and_line(void **state)
{
        const char *path = temp_file("[server]\n\nthreads = 100\n");
        struct config *c = NULL;
        char *errors = NULL, want[96];

        assert_int_equal(config_load(path, &c, &errors), -EINVAL);
        keep_errors(errors);
        keep_config(c);
        snprintf(want, sizeof(want), "%s:3: [server] threads", path);
        assert_non_null(strstr(errors, want));
}

/* ---- long names in messages (issue #10: snprintf's return used as an offset) ---- */

/* A directory chain under /tmp whose path is `len` bytes; `dirs` gets the directories,
 * deepest last, for remove_chain(). */
static size_t make_chain(char *path, size_t size, size_t len, char dirs[][4200])
{
        size_t n = 0;

        snprintf(path, size, "/tmp/orderbridge-test-long-%ld", (long)getpid());
        assert_int_equal(mkdir(path, 0700), 0);
        snprintf(dirs[n++], 4200, "%s", path);
        while (strlen(path) + 1 < len) {
                size_t at = strlen(path), step = len - at - 1 < 200 ? len - at - 1 : 200;
                path[at] = '/';
                memset(path + at + 1, 'd', step);
                path[at + 1 + step] = '\0';
                assert_int_equal(mkdir(path, 0700), 0);
                snprintf(dirs[n++], 4200, "%s", path);
        }
        return n;
}

static void remove_chain(char dirs[][4200], size_t n)
{
        while (n > 0)
                rmdir(dirs[--n]);
}

/* 4,000 bytes of path, a 900-byte unknown key and a 1,000-byte value: each error keeps
 * its line, section and key (the start of a long file name gives way), and nothing is
 * written outside the message buffer (AddressSanitizer stopped this binary here). */
static void errors_in_a_file_with_a_4000_byte_path_keep_line_section_and_key(void **state)
{
        static char dirs[24][4200];
        char path[4200], file[4300], key[901], value[1001], *text, *errors = NULL;
        struct config *c = NULL;
        size_t n_dirs = make_chain(path, sizeof(path), 4000, dirs);
        FILE *f;
        int r;

        memset(key, 'k', 900);
        key[900] = '\0';
        memset(value, '1', 1000);
        value[1000] = '\0';
        snprintf(file, sizeof(file), "%s/orderbridge.conf", path);
        f = fopen(file, "w");
        assert_non_null(f);
        fprintf(f, "[server]\nthreads = 100\n%s = 1\nmax_body_bytes = %s\n[%.40s]\n", key,
                value, key);
        fclose(f);
        r = config_load(file, &c, &errors);
        keep_config(c);
        keep_errors(errors);
        unlink(file);
        remove_chain(dirs, n_dirs);
        assert_true(strlen(file) > 4000);
        assert_int_equal(r, -EINVAL);
        assert_non_null(errors);
        text = errors;
        /* one line per error, each ending in the file's own name and its line number */
        assert_non_null(strstr(text, "/orderbridge.conf:2: [server] threads = 100: must be"));
        assert_non_null(strstr(text, "/orderbridge.conf:3: [server] kkkkkkkk"));
        assert_non_null(strstr(text, "kkkkkkkk: unknown key"));
        assert_non_null(strstr(text, "/orderbridge.conf:4: [server] max_body_bytes"));
        assert_non_null(strstr(text, "/orderbridge.conf:5: [kkkkkkkk"));
        assert_int_equal(count_lines(text), 4);
        assert_true(strncmp(text, "…", strlen("…")) == 0);
}

/* The same through config_load_string, whose name is only for messages: 4,000 bytes of
 * a multi-byte name is cut on a character boundary. */
static void a_4000_byte_name_is_shown_by_its_end_on_a_character_boundary(void **state)
{
        char name[4001];
        struct config *c = NULL;
        char *errors = NULL;

        for (size_t i = 0; i < 4000; i += 2)
                memcpy(name + i, "\xd0\xb6", 2); /* "ж" */
        memcpy(name + 3990, "/x.conf", 8);
        assert_int_equal(config_load_string("[server]\nthreads = 0\n", name, &c, &errors),
                         -EINVAL);
        keep_config(c);
        keep_errors(errors);
        assert_non_null(strstr(errors, "ж/x.conf:2: [server] threads = 0: must be between"));
        assert_true(strncmp(errors, "…ж", strlen("…ж")) == 0);
}

/* ---- remote URLs: libcurl's parser decides (issue #10) ---- */

struct url_case {
        const char *url;
        const char *verdict; /* NULL: accepted; else a phrase of the refusal */
};

#define USERINFO "must not hold a user name or password"
#define HTTPS_ONLY "must be https:// unless the host is a loopback address"
#define NOT_A_URL "is not a URL of the form https://HOST[:PORT]/PATH"

static const struct url_case url_cases[] = {
    /* the bypass: user "localhost", password "1", host 192.0.2.2, key sent in clear */
    {"http://localhost:1@192.0.2.2:8080/", USERINFO},
    {"http://user:pw@127.0.0.1/", USERINFO},
    {"https://user:pw@cloud.roistat.com/api/v1", USERINFO},
    {"https://user@cloud.roistat.com/api/v1", USERINFO},
    {"http://@127.0.0.1/", USERINFO},
    {"http://127.0.0.1\\@192.0.2.2/", USERINFO},
    {"http://127.0.0.1.evil.com/", HTTPS_ONLY},
    {"http://127.0.0.1%2eevil.com/", HTTPS_ONLY}, /* %2e is '.': the host is 127.0.0.1.evil.com */
    {"http://localhost./", HTTPS_ONLY},           /* goes to a resolver, unlike localhost */
    {"http://localhost.evil.example/", HTTPS_ONLY},
    {"http://192.0.2.2/", HTTPS_ONLY},
    {"http://[::ffff:192.0.2.2]/", HTTPS_ONLY},
    {"ftp://127.0.0.1/", HTTPS_ONLY},
    {"ftp://cloud.roistat.com/", HTTPS_ONLY},
    {"gopher://127.0.0.1/", HTTPS_ONLY},
    {"https://cloud.roistat.com/api/v1?project=1", "must not have a ?query or #fragment"},
    {"https://cloud.roistat.com/api/v1#x", "must not have a ?query or #fragment"},
    {"garbage", NOT_A_URL},
    {"cloud.roistat.com/api/v1", NOT_A_URL},
    {"https://", NOT_A_URL},
    {"http://[::1/api", NOT_A_URL},
    {"http://127.0.0.1:99999/", NOT_A_URL},
    {"http:127.0.0.1/", NOT_A_URL},
    {"http://[::1]:8080/", NULL},
    {"http://[::1]/api/v1", NULL},
    {"HTTPS://cloud.roistat.com/api/v1", NULL},
    {"HTTP://127.0.0.1:18080/api/v1", NULL},
    {"https://CLOUD.ROISTAT.COM/api/v1", NULL},
    {"http://LocalHost:18080/", NULL},
    /* libcurl decodes the host and connects to what it decoded: loopback */
    {"http://%31%32%37.0.0.1:18080/", NULL},
    {"http://%6cocalhost/", NULL},
    /* and reads these IPv4 forms as 127.0.0.1 too */
    {"http://127.1/", NULL},
    {"http://2130706433/", NULL},
    {"http://127.255.255.254/", NULL},
};

static void remote_urls_get_the_verdict_of_libcurls_parser(void **state)
{
        char text[512];

        use_env_api_key();
        for (size_t i = 0; i < sizeof(url_cases) / sizeof(url_cases[0]); i++) {
                const struct url_case *t = &url_cases[i];
                struct config *c = NULL;
                char *errors = NULL;
                int r;

                snprintf(text, sizeof(text), ROISTAT_OK "url = %s\n", t->url);
                r = config_load_string(text, NAME, &c, &errors);
                keep_config(c);
                keep_errors(errors);
                if (!t->verdict && r != 0)
                        fail_msg("%s: want accepted, got:\n%s", t->url, errors);
                if (t->verdict && (r != -EINVAL || !strstr(errors, t->verdict) ||
                                   !strstr(errors, NAME ":3: [roistat] url: ")))
                        fail_msg("%s: want \"%s\" at " NAME ":3: [roistat] url, got %d:\n%s",
                                 t->url, t->verdict, r, errors ? errors : "(none)");
                if (t->verdict && count_lines(errors) != 1)
                        fail_msg("%s: want one error, got:\n%s", t->url, errors);
                if (!t->verdict)
                        assert_string_equal(roistat(c)->url, t->url);
                /* free as we go: the table is longer than what teardown keeps */
                config_free(configs[--n_configs]);
                free(error_texts[--n_error_texts]);
        }
}

static void a_url_refusal_repeats_no_part_of_the_url(void **state)
{
        const char *errors;

        use_env_api_key();
        errors = load_fails(ROISTAT_OK "url = http://localhost:hunter2@192.0.2.2:8080/api\n");
        assert_non_null(strstr(errors, "[roistat] url: " USERINFO));
        assert_null(strstr(errors, "hunter2"));
        assert_null(strstr(errors, "192.0.2.2"));
        assert_null(strstr(errors, "localhost"));
}

/* The webhook URL is a secret file's content: user info in it is refused like in any
 * URL, and neither the password nor the webhook's code (its path) is ever printed. */
static void a_bitrix24_webhook_url_with_user_info_is_refused_without_showing_it(void **state)
{
        static const char *const urls[] = {
            "https://admin:hunter2@portal.example/rest/1/s3cr3tcode/\n",
            "http://localhost:hunter2@192.0.2.2:8080/rest/1/s3cr3tcode/\n",
            "http://127.0.0.1.evil.example/rest/1/s3cr3tcode/\n",
        };
        char text[256];

        for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
                const char *path = temp_file(urls[i]), *errors;

                snprintf(text, sizeof(text), "[site]\nid = shop.example\n[bitrix24]\n"
                         "webhook_url_file = %s\n", path);
                errors = load_fails(text);
                if (!strstr(errors, NAME ":4: [bitrix24] webhook_url_file: ") ||
                    !strstr(errors, i < 2 ? USERINFO : HTTPS_ONLY))
                        fail_msg("%s: got\n%s", urls[i], errors);
                assert_null(strstr(errors, "hunter2"));
                assert_null(strstr(errors, "s3cr3tcode"));
                assert_null(strstr(errors, "192.0.2.2"));
        }
}

static void a_bitrix24_webhook_url_to_loopback_over_http_is_accepted(void **state)
{
        const char *path = temp_file("http://[::1]:18081/rest/1/s3cr3tcode\n");
        char text[256];

        snprintf(text, sizeof(text), "[site]\nid = shop.example\n[bitrix24]\n"
                 "webhook_url_file = %s\n", path);
        load_ok(text);
}

/* ---- [bitrix24]: the outgoing webhook's token and the poll ---- */

#define B24_WEBHOOK "https://portal.example/rest/1/s3cr3tcode/"
#define APP_TOKEN "jvh9y1ulvt2m6k5or90v9mg8nn32ozas"

static const struct b24_conf *b24_of(const char *more)
{
        char text[512];

        setenv("ORDERBRIDGE_BITRIX24_WEBHOOK_URL", B24_WEBHOOK, 1);
        snprintf(text, sizeof(text), "[site]\nid = shop.example\n[bitrix24]\n%s", more);
        return b24_conf_get(load_ok(text));
}

static void the_application_token_comes_from_its_file_or_the_environment(void **state)
{
        const char *path = temp_file(APP_TOKEN "  \n");
        const struct b24_conf *bc;
        char line[128];

        bc = b24_of("");
        assert_null(bc->application_token);
        snprintf(line, sizeof(line), "application_token_file = %s\n", path);
        bc = b24_of(line);
        assert_string_equal(bc->application_token, APP_TOKEN);
        setenv("ORDERBRIDGE_B24_APPLICATION_TOKEN", "from-the-environment-0123", 1);
        bc = b24_of("");
        assert_string_equal(bc->application_token, "from-the-environment-0123");
        bc = b24_of(line); /* the file wins */
        assert_string_equal(bc->application_token, APP_TOKEN);
}

static void a_short_or_blank_application_token_is_refused_without_showing_it(void **state)
{
        static const char *const bad[] = {"short-token\n", "two words in a token here\n",
                                          "t\x01ken-with-a-control-char\n"};
        char text[512];

        setenv("ORDERBRIDGE_BITRIX24_WEBHOOK_URL", B24_WEBHOOK, 1);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                const char *path = temp_file(bad[i]), *errors;
                snprintf(text, sizeof(text), "[site]\nid = shop.example\n[bitrix24]\n"
                         "application_token_file = %s\n", path);
                errors = load_fails(text);
                if (!strstr(errors, NAME ":4: [bitrix24] application_token_file: the token must "
                            "be at least 16"))
                        fail_msg("%s", errors);
                assert_null(strstr(errors, "short-token"));
                assert_null(strstr(errors, "two words"));
        }
}

static void poll_interval_is_seconds_from_0_to_a_day_60_by_default(void **state)
{
        const struct b24_conf *bc = b24_of("");

        assert_int_equal(bc->poll_interval_s, 60);
        assert_true(b24_conf_source_active(bc));
        bc = b24_of("poll_interval = 0\n");
        assert_int_equal(bc->poll_interval_s, 0);
        assert_false(b24_conf_source_active(bc)); /* no token, no poll: nothing to do */
        bc = b24_of("poll_interval = 86400\n");
        assert_int_equal(bc->poll_interval_s, 86400);
        setenv("ORDERBRIDGE_BITRIX24_WEBHOOK_URL", B24_WEBHOOK, 1);
        expect_error("[site]\nid = shop.example\n[bitrix24]\npoll_interval = 86401\n",
                     NAME ":4:", "[bitrix24] poll_interval", "between 0 and 86400", NULL);
        expect_error("[site]\nid = shop.example\n[bitrix24]\npoll_interval = -1\n",
                     NAME ":4:", "[bitrix24] poll_interval", NULL);
}

/* ---- secret files' modes (issue #10) ---- */

/* Every key that names a secret file, with content it accepts (and the environment
 * variable that completes its section, when it needs one). */
static const struct {
        const char *section, *key, *content, *prelude, *env, *env_value;
} secret_keys[] = {
    {"server", "signing_secret_file", GOOD_SECRET "\n", "", NULL, NULL},
    {"server", "admin_token_file", "0123456789abcdef0123\n", "", NULL, NULL},
    {"roistat", "api_key_file", API_KEY "\n", "project = 12345\n", NULL, NULL},
    {"bitrix24", "webhook_url_file", "https://portal.example/rest/1/s3cr3tcode/\n", "", NULL,
     NULL},
    {"bitrix24", "application_token_file", "jvh9y1ulvt2m6k5or90v9mg8nn32ozas\n", "",
     "ORDERBRIDGE_BITRIX24_WEBHOOK_URL", "https://portal.example/rest/1/s3cr3tcode/"},
    {"roistat", "export_password_file", "s3cr3tcode\n", "push = no\nexport_login = shop\n", NULL,
     NULL},
};

/* `mode` on a file holding the secret of every key in turn: 0 when it loads, else the
 * error text (freed in teardown). */
static const char *load_secret_with_mode(size_t k, mode_t mode, const char **ret_path)
{
        const char *path = temp_file(secret_keys[k].content);
        char text[512];
        struct config *c = NULL;
        char *errors = NULL;

        assert_int_equal(chmod(path, mode), 0);
        if (secret_keys[k].env)
                setenv(secret_keys[k].env, secret_keys[k].env_value, 1);
        snprintf(text, sizeof(text), "[site]\nid = shop.example\n[%s]\n%s%s = %s\n",
                 secret_keys[k].section, secret_keys[k].prelude, secret_keys[k].key, path);
        config_load_string(text, NAME, &c, &errors);
        keep_config(c);
        keep_errors(errors);
        *ret_path = path;
        return errors;
}

static void a_secret_file_open_to_others_is_refused_with_the_chmod_to_run(void **state)
{
        static const mode_t loose[] = {0644, 0604, 0602, 0601, 0666, 0777};
        const char *path, *errors;
        char want[512];

        for (size_t k = 0; k < sizeof(secret_keys) / sizeof(secret_keys[0]); k++)
                for (size_t m = 0; m < sizeof(loose) / sizeof(loose[0]); m++) {
                        errors = load_secret_with_mode(k, loose[m], &path);
                        snprintf(want, sizeof(want),
                                 "[%s] %s: %s is open to other users (mode %04o); run: "
                                 "chmod 600 %s\n",
                                 secret_keys[k].section, secret_keys[k].key, path,
                                 (unsigned)loose[m], path);
                        if (!errors || !strstr(errors, want))
                                fail_msg("mode %04o: want\n%s--- got:\n%s", (unsigned)loose[m],
                                         want, errors ? errors : "(loaded)\n");
                        /* the secret itself is not shown */
                        assert_null(strstr(errors, "s3cr3tcode"));
                        assert_null(strstr(errors, API_KEY));
                        assert_null(strstr(errors, "jvh9y1ulvt2m6k5or90v9mg8nn32ozas"));
                        teardown(state);
                }
}

static void a_secret_file_private_to_its_owner_or_group_is_accepted(void **state)
{
        static const mode_t ok[] = {0600, 0400, 0640, 0660};
        const char *path, *errors;

        for (size_t k = 0; k < sizeof(secret_keys) / sizeof(secret_keys[0]); k++)
                for (size_t m = 0; m < sizeof(ok) / sizeof(ok[0]); m++) {
                        errors = load_secret_with_mode(k, ok[m], &path);
                        if (errors)
                                fail_msg("[%s] %s, mode %04o: want accepted, got:\n%s",
                                         secret_keys[k].section, secret_keys[k].key,
                                         (unsigned)ok[m], errors);
                        teardown(state);
                }
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
            T(an_empty_file_gives_the_defaults),
            T(roistat_is_disabled_when_its_section_is_absent),
            T(the_default_roistat_statuses_are_new_confirmed_canceled),
            T(the_default_map_follows_the_design_table),
            T(canceled_wins_over_paid_and_over_the_status_code),
            T(paid_wins_over_the_status_code),
            T(an_unknown_status_code_maps_to_nothing),
            T(without_flag_entries_the_status_code_is_used),
            T(an_integer_below_its_range_names_file_line_section_key_and_range),
            T(an_integer_above_its_range_is_rejected),
            T(an_integer_at_each_end_of_its_range_is_accepted),
            T(a_value_that_is_not_an_integer_is_rejected),
            T(a_negative_integer_is_out_of_range_not_wrapped),
            T(every_documented_bool_spelling_is_understood),
            T(a_bool_spelled_otherwise_is_rejected),
            T(an_unknown_section_is_named_with_the_line_of_its_header),
            T(a_status_name_that_is_not_utf8_is_refused_at_its_line),
            T(a_deal_title_prefix_that_is_not_utf8_is_refused_at_its_line),
            T(an_empty_unknown_section_is_named_too),
            T(an_unknown_key_is_named_with_its_section_and_line),
            T(a_key_before_any_section_is_rejected),
            T(a_line_that_is_neither_section_nor_key_is_a_syntax_error),
            T(a_line_of_1000_bytes_is_accepted),
            T(a_comment_of_1000_bytes_is_accepted),
            T(a_line_over_1024_bytes_is_rejected_not_split),
            T(inline_comments_and_spaces_around_values_are_ignored),
            T(several_errors_are_reported_at_once),
            T(backoff_min_above_backoff_max_is_rejected),
            T(a_country_code_that_is_no_countrys_is_rejected),
            T(an_unknown_log_level_is_rejected),
            T(listen_accepts_ipv4_and_bracketed_ipv6),
            T(listen_without_a_valid_port_or_numeric_address_is_rejected),
            T(listen_with_an_unbracketed_ipv6_address_is_rejected_as_ambiguous),
            T(roistat_with_project_and_env_key_is_enabled),
            T(roistat_api_key_is_read_from_the_first_line_of_its_file),
            T(roistat_api_key_file_wins_over_the_environment),
            T(roistat_without_a_project_is_an_error),
            T(roistat_without_an_api_key_is_an_error),
            T(roistat_without_project_or_key_reports_both),
            T(an_empty_roistat_section_enables_roistat_and_asks_for_project_and_key),
            T(roistat_enabled_no_needs_neither_project_nor_key),
            T(a_roistat_project_that_is_not_a_number_is_rejected),
            T(a_missing_api_key_file_is_named_with_its_line),
            T(an_empty_api_key_file_is_rejected),
            T(an_api_key_file_over_4096_bytes_is_rejected),
            T(an_api_key_with_a_space_is_rejected_without_showing_it),
            T(roistat_url_over_plain_http_to_a_remote_host_is_rejected),
            T(roistat_url_over_plain_http_to_loopback_is_accepted),
            T(roistat_url_over_https_to_any_host_is_accepted),
            T(a_url_error_does_not_repeat_credentials_in_the_url),
            T(configured_statuses_replace_the_defaults),
            T(a_status_with_an_unknown_type_is_rejected),
            T(a_status_defined_twice_is_rejected),
            T(a_status_id_with_unsafe_characters_is_rejected),
            T(a_status_without_a_name_uses_its_id),
            T(map_entries_merge_over_the_defaults),
            T(a_map_value_naming_an_unknown_status_is_an_error_with_its_line),
            T(a_map_key_that_is_not_a_code_or_flag_is_rejected),
            T(a_stage_id_with_a_colon_is_a_stage_map_key),
            T(a_stage_map_line_without_an_equals_sign_is_refused_at_its_line),
            T(a_stage_map_value_naming_an_unknown_status_is_an_error_with_its_line),
            T(a_stage_map_key_that_is_not_a_stage_id_is_refused),
            T(a_colon_after_the_equals_sign_is_part_of_the_value),
            T(push_no_with_the_export_needs_neither_project_nor_api_key),
            T(push_is_on_by_default_and_the_export_is_off),
            T(push_no_without_the_export_is_refused),
            T(the_export_login_and_password_go_together),
            T(an_export_login_with_a_control_character_is_refused),
            T(a_sinks_key_in_a_core_section_is_an_unknown_key_naming_it),
            T(a_key_of_one_sink_in_the_other_sinks_section_is_an_unknown_key),
            T(a_core_key_in_a_sinks_section_is_an_unknown_key),
            T(every_sink_key_is_refused_in_every_section_that_does_not_own_it),
            T(keys_lists_every_registered_sections_keys_under_its_header),
            T(an_unknown_section_name_has_no_settings),
            T(the_signing_secret_is_read_from_its_file),
            T(the_signing_secret_is_read_from_the_environment),
            T(a_bad_signing_secret_is_rejected_without_showing_it),
            T(a_signing_secret_without_the_prefix_is_rejected_without_showing_it),
            T(an_admin_token_under_16_bytes_is_rejected_without_showing_it),
            T(a_secret_put_under_a_wrong_key_is_not_echoed),
            T(config_free_accepts_null_and_returns_null),
            T(config_load_of_a_missing_file_names_it),
            T(config_load_of_a_file_reports_its_path_and_line),
            T(errors_in_a_file_with_a_4000_byte_path_keep_line_section_and_key),
            T(a_4000_byte_name_is_shown_by_its_end_on_a_character_boundary),
            T(remote_urls_get_the_verdict_of_libcurls_parser),
            T(a_url_refusal_repeats_no_part_of_the_url),
            T(a_bitrix24_webhook_url_with_user_info_is_refused_without_showing_it),
            T(a_bitrix24_webhook_url_to_loopback_over_http_is_accepted),
            T(the_application_token_comes_from_its_file_or_the_environment),
            T(a_short_or_blank_application_token_is_refused_without_showing_it),
            T(poll_interval_is_seconds_from_0_to_a_day_60_by_default),
            T(a_secret_file_open_to_others_is_refused_with_the_chmod_to_run),
            T(a_secret_file_private_to_its_owner_or_group_is_accepted),
            /* last: while src/config.c reads before its buffer here, AddressSanitizer
             * stops the whole binary at this test */
            T(an_api_key_file_whose_first_line_is_blank_is_rejected),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
