/*
 * The core sections — [server], [store], [site], [log], [delivery] — whose settings every
 * part of the daemon reads, so they live in struct config itself rather than in a
 * module's own struct. The engine (config.c) loads them first, before the sinks' own.
 */
#pragma once

#include <stddef.h>

#include "config/config.h"

/* The core sections' places in config_core_sections (the site sink reads [site]). */
enum { CONFIG_CORE_SERVER, CONFIG_CORE_STORE, CONFIG_CORE_SITE, CONFIG_CORE_LOG, CONFIG_CORE_DELIVERY };

extern const struct config_section config_core_sections[];
extern const size_t config_core_n_sections;
