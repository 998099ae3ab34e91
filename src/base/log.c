/*
 * One line per event. The whole line is built in a local buffer and written with a
 * single write(2), so lines from different threads never interleave. Control characters
 * in a value are replaced, so a hostile order id cannot forge a second log line.
 */
#include "base/log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
        min_level = level;
}

int log_level_parse(const char *text, enum log_level *ret_level)
{
        for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
                if (strcmp(text, level_names[i]) == 0) {
                        *ret_level = (enum log_level)i;
                        return 0;
                }
        return -1;
}

void log_event(enum log_level level, const char *event, const char *fmt, ...)
{
        char line[2048];
        struct tm tm;
        time_t now;
        va_list ap;
        int n, m;

        if (level < min_level)
                return;
        now = time(NULL);
        gmtime_r(&now, &tm);
        n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ ", &tm);
        m = snprintf(line + n, sizeof(line) - (size_t)n, "%s %s ", level_names[level], event);
        if (m > 0)
                n += m;
        if (n > (int)sizeof(line) - 2) /* m is what snprintf wanted, not what it wrote */
                n = (int)sizeof(line) - 2;
        va_start(ap, fmt);
        m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
        va_end(ap);
        if (m > 0)
                n += m;
        if (n > (int)sizeof(line) - 2)
                n = (int)sizeof(line) - 2;
        for (int i = 0; i < n; i++)
                if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
                        line[i] = '?';
        line[n++] = '\n';
        (void)!write(STDERR_FILENO, line, (size_t)n);
}
