/*
 * The logger: one line per event on stderr, in logfmt: a UTC time, a level, a short event
 * name, then key=value fields, e.g.
 *   2026-11-23T13:40:01Z info ingest.accepted order_id=123 version=4
 *   2026-11-23T13:40:02Z warn ingest.invalid webhook_id="a \"b\"" field=order.price
 * Callers write the fields as a printf format (`key=%s`, `key="%s"`, `n=%lld`) and pass
 * values as they come, from outside too; the logger escapes them, one rule for every
 * string: inside quotes `\` and `"` become `\\` and `\"`, newline, tab and return `\n`,
 * `\t`, `\r`, other control characters `\u00XX`; a bare value is written as it is when
 * it is non-empty and has no space, `"`, `=`, `\` or control character, and is otherwise
 * quoted the same way. Other bytes (UTF-8) pass unchanged. A line is at most 2048 bytes: a
 * longer one is cut between escapes, its open quote closed, and it still ends in '\n'.
 * Secrets are never handed to the logger (they live in struct config and are only read
 * by the code that sends them).
 *
 * When stderr is the systemd journal's stream ($JOURNAL_STREAM), each line begins with
 * its sd-daemon priority, "<3>" error, "<4>" warn, "<6>" info, "<7>" debug, which the
 * journal strips and keeps as PRIORITY= (`journalctl -p warning`).
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERR };

void log_set_level(enum log_level level); /* any thread, any time (serve's SIGHUP) */
enum log_level log_get_level(void);

/* Looks again whether stderr is the journal's stream (the first line looks once by
 * itself); returns what it found. For tests, and after stderr is replaced. */
bool log_detect_journal(void);
int log_level_parse(const char *text, enum log_level *ret_level);

__attribute__((format(printf, 3, 4))) void log_event(enum log_level level, const char *event,
                                                     const char *fmt, ...);

#define log_debug(ev, ...) log_event(LOG_DEBUG, ev, __VA_ARGS__)
#define log_info(ev, ...) log_event(LOG_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_event(LOG_WARN, ev, __VA_ARGS__)
#define log_err(ev, ...) log_event(LOG_ERR, ev, __VA_ARGS__)
