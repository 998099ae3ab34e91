/*
 * Writing HTML into a capped buffer (base/buf): markup the caller wrote is appended as
 * it is, and every text that came from elsewhere (an order id, a remote's error words,
 * a snapshot field) goes through html_text, which escapes it for both element content
 * and quoted attribute values. A page is written only with these calls, so a text can
 * reach the page unescaped only by being passed as markup.
 *
 * Like buf, a writer that appends many pieces checks the buffer's `toobig` once at the
 * end; each call also returns 0 or -EMSGSIZE.
 */
#pragma once

#include <stdint.h>

#include "base/buf.h"

/* Appends `markup` as it is: only for text written in the program. */
int html_raw(struct buf *b, const char *markup);

/* Appends `text` escaped: & < > " ' as entities; control characters other than tab and
 * newline (never meaningful in a page, and a way to confuse a reader) as U+FFFD. NULL
 * appends nothing. */
int html_text(struct buf *b, const char *text);

/* Formats, then appends the result escaped, as html_text. */
__attribute__((format(printf, 2, 3))) int html_textf(struct buf *b, const char *fmt, ...);

/* Appends a wall-clock time (ms since the epoch) as "2026-03-13 10:05:00 UTC"; 0 or
 * less as "-". */
int html_time(struct buf *b, int64_t ms);

/* Appends a duration in ms as "4 s", "3 min 10 s", "2 h 5 min", "3 d 4 h". */
int html_duration(struct buf *b, int64_t ms);
