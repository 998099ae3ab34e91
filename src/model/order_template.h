/*
 * Order templates: text with {placeholders} filled from a snapshot, the one way the
 * configuration maps an order onto a remote's fields ([bitrix24.fields], [roistat.fields],
 * [roistat] name_template). The placeholders are a fixed list (an unknown one's error names them); a
 * template is checked when the configuration is loaded, so an unknown placeholder is a
 * config error naming it, never an empty field at delivery. "{{" and "}}" stand for a
 * literal brace.
 */
#pragma once

#include <stddef.h>

struct snapshot;

/* Whether `tpl` uses only known placeholders and balanced braces: 0, or -EINVAL with
 * `why` naming the first problem ("unknown placeholder {nmae}"). */
int order_template_check(const char *tpl, char *why, size_t why_size);

/* `tpl` filled from `s` (caller frees). An absent value is the empty text. Never NULL
 * (allocation failure aborts). */
char *order_template_expand(const char *tpl, const struct snapshot *s);
