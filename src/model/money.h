/*
 * Money and quantities as integers. Amounts travel as decimal strings ("4990.00") and are
 * held as minor units (kopecks); quantities ("2", "0.25") as thousandths. No float is ever
 * involved, so the numbers that reach Roistat and Bitrix24 agree with the site's to the
 * kopeck.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Largest amount accepted: 10^13 minor units (a hundred billion roubles). */
#define MONEY_MAX_MINOR 10000000000000LL
#define QUANTITY_MAX_MILLI 1000000000000LL

/* Parses a non-negative decimal with at most `scale` fractional digits into an integer
 * scaled by 10^scale. Returns 0, or -EINVAL (not a decimal, too many fraction digits)
 * or -ERANGE (above `max`). */
int decimal_parse(const char *text, unsigned scale, int64_t max, int64_t *ret_value);

/* "4990.00" → 499000 */
int money_parse(const char *text, int64_t *ret_minor);
/* 499000 → "4990.00"; `size` of 32 always suffices. */
void money_format(int64_t minor, char *buf, size_t size);

/* "2" → 2000, "0.125" → 125 */
int quantity_parse(const char *text, int64_t *ret_milli);
/* 2000 → "2", 1500 → "1.5" */
void quantity_format(int64_t milli, char *buf, size_t size);
