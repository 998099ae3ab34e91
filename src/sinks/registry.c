/*
 * The table of sink kinds: the only place a sink is named. Its order is the order in
 * which `serve` starts the sinks and `check` and `status` report them.
 */
#include "sinks/registry.h"

#include <stdio.h>
#include <string.h>

#include "sinks/bitrix24_conf.h"
#include "sinks/roistat_conf.h"
#include "sinks/b24_stages.h"
#include "sinks/sink_bitrix24.h"
#include "sinks/sink_roistat.h"
#include "sinks/sink_site.h"
#include "config/core.h"

static const struct sink_kind kinds[] = {
        {.name = "roistat",
         .section = &roistat_conf_section,
         .create = sink_roistat_new,
         .check = roistat_conf_report,
         /* push = no keeps [roistat] on for the pull export, with the sink off */
         .enabled = roistat_conf_pushes},
        {.name = "bitrix24",
         .section = &b24_conf_section,
         .create = sink_bitrix24_new,
         .check = b24_conf_report,
         .stages = b24_print_stages},
        {.name = "site",
         .section = &config_core_sections[CONFIG_CORE_SITE],
         .create = sink_site_new,
         .check = sink_site_report,
         .enabled = sink_site_enabled},
};

_Static_assert(sizeof(kinds) / sizeof(kinds[0]) <= SINK_KINDS_MAX,
               "raise SINK_KINDS_MAX for the sink kinds' table");

size_t sink_registry_count(void)
{
        return sizeof(kinds) / sizeof(kinds[0]);
}

const struct sink_kind *sink_registry_get(size_t i)
{
        return i < sink_registry_count() ? &kinds[i] : NULL;
}

const struct sink_kind *sink_registry_find(const char *name)
{
        for (size_t i = 0; name && i < sink_registry_count(); i++)
                if (strcmp(kinds[i].name, name) == 0)
                        return &kinds[i];
        return NULL;
}

bool sink_kind_enabled(const struct sink_kind *k, const struct config *cfg)
{
        if (k->enabled)
                return k->enabled(cfg);
        return config_section(cfg, k->section->name) != NULL;
}

size_t sink_registry_enabled(const struct config *cfg, const char **ret_names, size_t max)
{
        size_t n = 0;

        for (size_t i = 0; i < sink_registry_count() && n < max; i++)
                if (sink_kind_enabled(&kinds[i], cfg))
                        ret_names[n++] = kinds[i].name;
        return n;
}

void sink_registry_names(char *buf, size_t size)
{
        size_t len = 0;

        if (size == 0)
                return;
        buf[0] = '\0';
        for (size_t i = 0; i < sink_registry_count() && len < size; i++) {
                int w = snprintf(buf + len, size - len, "%s%s", i ? ", " : "", kinds[i].name);
                if (w < 0)
                        break;
                len += (size_t)w;
        }
}
