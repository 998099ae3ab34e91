/*
 * The INI configuration (config_load_string; config_load reads a file into the same code).
 * The secrets come from the environment, set once here, so that a configuration without
 * *_file keys gets through to the checks that follow them; a *_file key in the input only
 * opens and reads a file, and mostly fails to. Oracles: a refusal lists at least one
 * problem, an accepted configuration answers its lookups, and no error text ever holds a
 * secret.
 *
 * The file name that messages start with comes from the input too (issue #10: a 4,000-byte
 * -c path overran the message buffer): when the first line is a comment, "#" and what
 * follows, its text repeated to NAME_LEN bytes is the name. Then every error line must
 * start with that name, or with "…" and the name's end, and stay bounded in length.
 */
#include "fuzz.h"

#include "config/config.h"
#include "base/log.h"
#include "sinks/b24_stages.h"
#include "sinks/bitrix24_conf.h"
#include "sinks/registry.h"
#include "sinks/roistat_conf.h"

static const char *const secrets[][2] = {
    {"ORDERBRIDGE_SIGNING_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
    {"ORDERBRIDGE_ADMIN_TOKEN", "adm1n-t0ken-Qx7Lw2Zp9Rv4"},
    {"ORDERBRIDGE_ROISTAT_API_KEY", "r0istat-k3y-Hh5Jk8Mn2Bv6"},
    {"ORDERBRIDGE_BITRIX24_WEBHOOK_URL", "https://portal.example.ru/rest/1/w3bh00kc0de9Tz4/"},
};
/* the part of each secret that must never show (the webhook URL's host is not secret) */
static const char *const secret_marks[] = {"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                           "adm1n-t0ken-Qx7Lw2Zp9Rv4", "r0istat-k3y-Hh5Jk8Mn2Bv6",
                                           "w3bh00kc0de9Tz4"};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
                setenv(secrets[i][0], secrets[i][1], 1);
        log_set_level(LOG_ERR);
        return 0;
}

static void use(const struct config *c)
{
        static const char *const statuses[] = {"N", "P", "A", "D", "F", "C", "X"};
        const struct roistat_conf *rs = config_section_data(c, "roistat");
        const struct b24_conf *b24 = config_section_data(c, "bitrix24");
        const char *sinks[SINK_KINDS_MAX];
        size_t n_sinks = sink_registry_enabled(c, sinks, SINK_KINDS_MAX);
        struct b24_stage stages[] = {{"NEW", 10}, {"EXECUTING", 40}, {"WON", 60}};
        struct b24_pipeline pipeline = {0, stages, 3};
        char stage[128];

        FUZZ_CHECK(rs && b24, "a sink's section has no settings");
        FUZZ_CHECK(n_sinks <= sink_registry_count(), "more sinks than kinds");
        /* enabled means: its section is there and says so */
        for (size_t i = 0; i < n_sinks; i++) {
                const struct sink_kind *k = sink_registry_find(sinks[i]);
                FUZZ_CHECK(k && config_section(c, k->section->name), "%s enabled without its "
                           "section", sinks[i]);
        }
        FUZZ_CHECK(!config_section(c, "roistat") || rs->enabled, "[roistat] on with enabled=no");
        FUZZ_CHECK(!config_section(c, "bitrix24") || b24->enabled, "[bitrix24] on with enabled=no");
        pipeline.category_id = b24->category_id;
        for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
                for (int flags = 0; flags < 8; flags++) {
                        status_map_lookup(&rs->map, statuses[i], flags & 1, flags & 2);
                        if (b24_conf_stage(b24, flags & 4 ? &pipeline : NULL, statuses[i],
                                           flags & 1, flags & 2, stage, sizeof(stage)) == 0)
                                FUZZ_CHECK(stage[0], "empty stage for %s", statuses[i]);
                }
        /* an enabled Roistat sink maps every site status to a status it will send */
        for (size_t i = 0; config_section(c, "roistat") && i < rs->map.n; i++)
                FUZZ_CHECK(roistat_conf_status(rs, rs->map.entries[i].value),
                           "[roistat.map] %s = %s accepted without such a status",
                           rs->map.entries[i].key, rs->map.entries[i].value);
}

#define NAME_LEN 4000
#define LINE_BOUND 4096 /* config.c's messages are at most 2 * 1000 + 512 bytes */

/* "fuzz.conf", or the input's first line after "#" repeated to NAME_LEN bytes. */
static char *file_name(const char *text)
{
        size_t n = strcspn(text, "\n");
        char *name;

        if (text[0] != '#' || n < 2)
                return strdup("fuzz.conf");
        name = malloc(NAME_LEN + 1);
        if (!name)
                abort();
        for (size_t i = 0; i < NAME_LEN; i++)
                name[i] = text[1 + i % (n - 1)];
        name[NAME_LEN] = '\0';
        return name;
}

/* Every error line starts with the name (a long one by its end after "…") and is
 * bounded. */
static void check_lines(const char *errors, const char *name)
{
        size_t shown = strlen(name) > 200 ? 100 : strlen(name);
        const char *tail = name + strlen(name) - shown;

        for (const char *line = errors; *line;) {
                size_t len = strcspn(line, "\n");
                FUZZ_CHECK(len < LINE_BOUND, "an error line of %zu bytes", len);
                FUZZ_CHECK(strncmp(line, name, shown) == 0 ||
                                   (strncmp(line, "…", strlen("…")) == 0 &&
                                    memmem(line, len, tail, shown)),
                           "an error line that does not start with the file name:\n%.*s",
                           (int)len, line);
                line += len + (line[len] == '\n');
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct config *c = NULL;
        char *text, *name, *errors = NULL;
        int r;

        text = fuzz_strndup(data, size);
        name = file_name(text);
        r = config_load_string(text, name, &c, &errors);
        if (r == 0) {
                FUZZ_CHECK(c && !errors, "accepted with errors");
                use(c);
        } else {
                FUZZ_CHECK(!c && errors && errors[0], "refused (%d) without a reason", r);
                for (size_t i = 0; i < sizeof(secret_marks) / sizeof(secret_marks[0]); i++)
                        FUZZ_CHECK(strstr(text, secret_marks[i]) ||
                                       !strstr(errors, secret_marks[i]),
                                   "a secret in the errors:\n%s", errors);
                check_lines(errors, name);
        }
        free(name);
        free(errors);
        config_free(c);
        free(text);
        return 0;
}
