/*
 * The logger: one line per event on stderr, greppable, key=value after a short event
 * name, e.g.
 *   2026-11-23T13:40:01Z info ingest.accepted order_id=123 version=4
 * Callers pass values that are already safe to print; secrets are never handed to the
 * logger (they live in struct config and are only read by the code that sends them).
 */
#pragma once

#include <stdarg.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERR };

void log_set_level(enum log_level level);
int log_level_parse(const char *text, enum log_level *ret_level);

__attribute__((format(printf, 3, 4))) void log_event(enum log_level level, const char *event,
                                                     const char *fmt, ...);

#define log_debug(ev, ...) log_event(LOG_DEBUG, ev, __VA_ARGS__)
#define log_info(ev, ...) log_event(LOG_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_event(LOG_WARN, ev, __VA_ARGS__)
#define log_err(ev, ...) log_event(LOG_ERR, ev, __VA_ARGS__)
