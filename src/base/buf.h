/*
 * One growable buffer with a hard cap (as curl's dynbuf with its `toobig`): everything
 * the network or a file fills goes through it, so no reader can be made to grow without
 * bound. The contents are always NUL-terminated; appending past the cap fails, leaves
 * the contents as they were and marks the buffer `toobig`, after which every append fails
 * too — so a writer that appends many pieces checks once, at the end.
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct buf {
        char *data;   /* NULL until the first append */
        size_t len;
        size_t cap;   /* allocated, including the NUL */
        size_t max;   /* the most `len` may reach */
        bool toobig;  /* an append went past max: no more appends */
};

void buf_init(struct buf *b, size_t max);

/* Appends n bytes: 0, or -EMSGSIZE when len would pass max or already did (nothing
 * appended). */
int buf_append(struct buf *b, const void *data, size_t n);

/* Formats and appends (truncating nothing): 0, -EMSGSIZE or -EINVAL. */
__attribute__((format(printf, 2, 3))) int buf_printf(struct buf *b, const char *fmt, ...);

/* Formats into `small` (of `size` bytes) when the text fits, else into a new heap string:
 * the text's length, *ret_text = small or the heap copy (free it when it is not small);
 * -EINVAL on a format error. The one stack-then-heap formatter (buf_printf, html_textf). */
__attribute__((format(printf, 4, 0))) int buf_vformat(char *small, size_t size, char **ret_text,
                                                      const char *fmt, va_list ap);

/* Empties the buffer but keeps its memory. */
void buf_reset(struct buf *b);

/* Frees the memory; the buffer may be used again (same max). */
void buf_free(struct buf *b);

/* Hands the contents over (caller frees; "" when empty) and empties the buffer. */
char *buf_steal(struct buf *b);
