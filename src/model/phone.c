/*
 * Phone and e-mail normalisation; see phone.h. This file cuts a phone down to its digits
 * and says whether they are international; libphonenumber (phone_lib.cc) reads them with
 * the country's conventions. Digits are ASCII only and at most PHONE_TEXT_DIGITS_MAX, so
 * what reaches the library is short and plain whatever the buyer typed.
 */
#include "model/phone.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "model/phone_lib.h"

#define E164_DIGITS_MAX 15
/* more than E.164 allows: "00", a trunk prefix or the country code typed twice fit */
#define PHONE_TEXT_DIGITS_MAX 31

/* The configured country code, 1-4 ASCII digits, as a number. */
static int country_code_parse(const char *text, unsigned *ret_code)
{
        size_t n = text ? strlen(text) : 0;
        unsigned code = 0;

        if (n < 1 || n > 4 || strspn(text, "0123456789") != n)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                code = code * 10 + (unsigned)(text[i] - '0');
        *ret_code = code;
        return 0;
}

/* The digits of a phone as typed, and whether they are international ("+" or "00" first). */
static int phone_digits(const char *in, char *ret_digits, bool *ret_international)
{
        char d[PHONE_TEXT_DIGITS_MAX + 1];
        size_t n = 0;
        bool international;

        /* an extension ("#123", "доб. 12", "ext 5") is not part of the number: stop at the
         * first letter, ASCII or not (a byte ≥ 0x80 starts a UTF-8 letter such as "д") */
        for (const char *p = in; *p && *p != '#' && *p != ',' && *p != ';' &&
                                 !isalpha((unsigned char)*p) && (unsigned char)*p < 0x80;
             p++) {
                if (*p >= '0' && *p <= '9') {
                        if (n >= PHONE_TEXT_DIGITS_MAX)
                                return -EINVAL;
                        d[n++] = *p;
                }
        }
        d[n] = '\0';
        international = in[strspn(in, " \t")] == '+';
        /* "00" is the international prefix in most of the world; libphonenumber knows it
         * only for regions that use it (Russia's and Uzbekistan's is 810), and customers
         * everywhere type it */
        if (n >= 2 && d[0] == '0' && d[1] == '0') {
                memmove(d, d + 2, n - 1);
                n -= 2;
                international = true;
        }
        if (n == 0)
                return -EINVAL;
        memcpy(ret_digits, d, n + 1);
        *ret_international = international;
        return 0;
}

/* No fallback to the digits-only rule this file had before libphonenumber (the country
 * code before any ten digits, 8 → 7 for Russia, any 10-15 digits kept): its tests'
 * Russian, "00" and extension cases read the same through the library
 * (tests/unit/test_phone.c). What only the old rule accepted were numbers of a length
 * their country does not use ("+1" and 14 digits), without an area code ("+44 20 712345"),
 * of no country ("+999…"), or national numbers under a country_code that is no country's.
 * Such a key matches no real customer's phone, and would not read back as itself. */
int phone_normalize(const char *in, const char *country_code, char *out, size_t size)
{
        char digits[PHONE_TEXT_DIGITS_MAX + 1], e164[PHONE_TEXT_DIGITS_MAX + 2];
        unsigned code;
        bool international;
        size_t n;
        int r;

        if (!in || country_code_parse(country_code, &code) < 0)
                return -EINVAL;
        r = phone_digits(in, digits, &international);
        if (r < 0)
                return r;
        r = phone_lib_format_e164(digits, international, code, e164, sizeof(e164));
        if (r < 0)
                return r;
        n = strlen(e164);
        if (n - 1 > E164_DIGITS_MAX || n >= size)
                return -EINVAL;
        memcpy(out, e164, n + 1);
        return 0;
}

int phone_check_country_code(const char *country_code)
{
        unsigned code;

        if (country_code_parse(country_code, &code) < 0)
                return -EINVAL;
        return phone_lib_check_country_code(code);
}

int email_normalize(const char *in, char *out, size_t size)
{
        size_t start = 0, end, n;

        if (!in)
                return -EINVAL;
        end = strlen(in);
        while (start < end && isspace((unsigned char)in[start]))
                start++;
        while (end > start && isspace((unsigned char)in[end - 1]))
                end--;
        n = end - start;
        if (n < 3 || n >= size || !memchr(in + start, '@', n))
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                out[i] = (char)tolower((unsigned char)in[start + i]);
        out[n] = '\0';
        return 0;
}
