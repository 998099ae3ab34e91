/*
 * The verbs of the command line other than serve and check; each returns the process
 * exit status (0 ok, 1 failure, 2 usage).
 */
#pragma once

#include "config/config.h"

int cli_import(const struct config *cfg, const char *path);
int cli_status(const struct config *cfg, const char *order_id, int as_json);
int cli_retry(const struct config *cfg, const char *sink, const char *order_id);
