/*
 * Cutting UTF-8 text at a character boundary, never inside a character: the texts end up
 * in JSON (and in remote fields), which take only whole characters. Valid UTF-8 in, valid
 * UTF-8 out.
 */
#pragma once

#include <stddef.h>

/* `s` into `buf` of `size` bytes (size ≥ 1), cut if it must be before the character that
 * does not fit. */
void utf8_copy(const char *s, char *buf, size_t size);

/* The length in bytes of the first `max_chars` characters of `s` (all of `s` when it has
 * no more). */
size_t utf8_prefix(const char *s, size_t max_chars);
