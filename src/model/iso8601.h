/* ISO 8601 date-times of the snapshot; see iso8601.c. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* ISO 8601 "2026-03-13T10:00:00+03:00" (or Z, or ±HHMM, optional fraction) → Unix s. */
int iso8601_parse(const char *text, int64_t *ret_epoch);
/* Unix seconds → "2026-03-13T07:00:00Z" (size ≥ 21). */
void iso8601_format(int64_t epoch, char *buf, size_t size);
