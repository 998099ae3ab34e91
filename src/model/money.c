/*
 * Decimal strings to scaled integers and back. The grammar is deliberately narrow:
 * digits, optionally one '.' followed by 1..scale digits. No sign, exponent, spaces,
 * or thousands separators: anything else is a sender bug worth reporting.
 */
#include "model/money.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>

/* value = value·10 + digit; true when that would overflow */
static bool shift_in(int64_t *value, int digit)
{
        if (*value > (INT64_MAX - digit) / 10)
                return true;
        *value = *value * 10 + digit;
        return false;
}

int decimal_parse(const char *text, unsigned scale, int64_t max, int64_t *ret_value)
{
        const char *p = text;
        int64_t value = 0;
        unsigned nfrac = 0;
        bool overflow = false, any = false;

        if (!text)
                return -EINVAL;
        /* the number is read as an integer in units of 10^-scale; once it overflows the
         * rest is only checked for syntax */
        for (; *p >= '0' && *p <= '9'; p++) {
                any = true;
                overflow = overflow || shift_in(&value, *p - '0');
        }
        if (!any)
                return -EINVAL;
        if (*p == '.') {
                for (p++; *p >= '0' && *p <= '9'; p++) {
                        if (++nfrac > scale)
                                return -EINVAL;
                        overflow = overflow || shift_in(&value, *p - '0');
                }
                if (nfrac == 0)
                        return -EINVAL;
        }
        if (*p != '\0')
                return -EINVAL;
        for (unsigned i = nfrac; i < scale; i++)
                overflow = overflow || shift_in(&value, 0);
        if (overflow || value > max)
                return -ERANGE;
        *ret_value = value;
        return 0;
}

int money_parse(const char *text, int64_t *ret_minor)
{
        return decimal_parse(text, 2, MONEY_MAX_MINOR, ret_minor);
}

void money_format(int64_t minor, char *buf, size_t size)
{
        snprintf(buf, size, "%lld.%02lld", (long long)(minor / 100), (long long)(minor % 100));
}

int quantity_parse(const char *text, int64_t *ret_milli)
{
        return decimal_parse(text, 3, QUANTITY_MAX_MILLI, ret_milli);
}

void quantity_format(int64_t milli, char *buf, size_t size)
{
        int64_t frac = milli % 1000;
        int n;

        if (frac == 0) {
                snprintf(buf, size, "%lld", (long long)(milli / 1000));
                return;
        }
        n = snprintf(buf, size, "%lld.%03lld", (long long)(milli / 1000), (long long)frac);
        /* trim trailing zeros of the fraction: 1.500 → 1.5 */
        while (n > 0 && (size_t)n < size && buf[n - 1] == '0')
                buf[--n] = '\0';
}
