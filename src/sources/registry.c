/* The table of the daemon's sources (see registry.h). */
#include "sources/registry.h"

#include "sources/source_bitrix24.h"

/* A row is the address of a source_NAME.c's `const struct source_kind`; NULL ends it. */
static const struct source_kind *const kinds[] = {
        &source_bitrix24_kind, /* deals from Bitrix24: the outgoing webhook's ids, the poll */
        NULL,
};

size_t source_registry_count(void)
{
        size_t n = 0;

        while (kinds[n])
                n++;
        return n;
}

const struct source_kind *source_registry_get(size_t i)
{
        return i < source_registry_count() ? kinds[i] : NULL;
}

bool source_kind_enabled(const struct source_kind *k, const struct config *cfg)
{
        return config_section(cfg, k->section->name) != NULL;
}
