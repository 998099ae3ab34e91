/*
 * application/x-www-form-urlencoded bodies (Bitrix24 posts its outgoing webhooks so):
 * one field's value by name, both %-decoded with libcurl, '+' as a space, as PHP's
 * parse_str reads them ("data[FIELDS][ID]=662&auth[application_token]=…").
 */
#pragma once

#include <stddef.h>

/* The value of the first field named `name` (compared after decoding) in `body`, as a
 * NUL-terminated copy in *ret (caller frees). 0; -ENOENT when there is no such field;
 * -EINVAL when the field's name or value decodes to a NUL byte; -E2BIG when the value
 * is longer than `max` bytes (*ret untouched on failure). */
int http_form_value(const char *body, size_t len, const char *name, size_t max, char **ret);
