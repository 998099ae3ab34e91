/*
 * Contact keys for matching repeat customers: phones reduced to "+<digits>" with a
 * country code, e-mails trimmed and lower-cased. "8 (900) 123-45-67", "+7 900 123 45 67"
 * and "9001234567" (country code 7) are one phone.
 */
#pragma once

#include <stddef.h>

/* Returns 0 and writes "+79001234567", or -EINVAL when there are fewer than 10 or more
 * than 15 digits (not a phone number we can match on). */
int phone_normalize(const char *in, const char *country_code, char *out, size_t size);

/* Returns 0 and writes the lower-cased, trimmed address, or -EINVAL. */
int email_normalize(const char *in, char *out, size_t size);
