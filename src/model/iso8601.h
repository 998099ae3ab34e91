/* ISO 8601 date-times of the snapshot; see iso8601.c. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* ISO 8601 "2026-03-13T10:00:00+03:00" (or Z, or ±HHMM, optional fraction) → Unix s. */
int iso8601_parse(const char *text, int64_t *ret_epoch);
/* Unix seconds → "2026-03-13T07:00:00Z" (size ≥ 21). */
void iso8601_format(int64_t epoch, char *buf, size_t size);

/* The UTC offset a time is written with, in seconds east of UTC ("+03:00" → 10800, Z →
 * 0): 0 and *ret_offset_s, or -EINVAL when `text` is not a time iso8601_parse takes. */
int iso8601_offset(const char *text, int *ret_offset_s);

/* Unix seconds → the local time at `offset_s` with that offset, "2026-03-13T10:00:00+03:00"
 * (size ≥ 26): how a Bitrix24 portal writes its times, so that a time sent back to it
 * reads as one of its own. */
void iso8601_format_offset(int64_t epoch, int offset_s, char *buf, size_t size);
