/*
 * The core sections — [server], [store], [site], [log], [delivery] — whose settings every
 * part of the daemon reads, so they live in struct config itself rather than in a
 * module's own struct. The engine (config.c) loads them first, before the sinks' own.
 */
#pragma once

#include <stddef.h>

#include "config/config.h"

extern const struct config_section config_core_sections[];
extern const size_t config_core_n_sections;
