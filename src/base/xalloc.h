/*
 * Small internal allocations abort on out-of-memory (style rule 4): sizes that come from
 * outside are bounded before they get here, so OOM means the machine is in trouble.
 */
#pragma once

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
