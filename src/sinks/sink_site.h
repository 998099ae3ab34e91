/*
 * The site sink (sink_site.c): tells the shop, through its module's status endpoint,
 * what the CRM decided (a deal moved: the order's new status, or "cancel") and which deal
 * is the order's. On when [site] status_url is set.
 */
#pragma once

#include <stdbool.h>

#include "config/config.h"
#include "sinks/sink.h"

bool sink_site_enabled(const struct config *cfg);
int sink_site_new(const struct config *cfg, const struct sink_ops **ret_ops, void **ret_ctx);

/* `orderbridge check`: what the site sink will do. Returns 0. */
int sink_site_report(const struct config *cfg);
