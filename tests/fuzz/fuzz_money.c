/*
 * Decimal strings: order.price, order.cost, items[].price (money, 2 places) and
 * items[].quantity (thousandths). Input: one byte picks the scale and limit, the rest is
 * the text. Oracles: decimal_parse agrees with a plain reference written here (same
 * grammar, 128-bit arithmetic) on the verdict and the value; and for money and quantities,
 * parse → format → parse gives the same value and the formatted text is a fixed point.
 */
#include "fuzz.h"

#include <errno.h>

#include "model/money.h"

/* The grammar of money.h: digits, optionally '.' and 1..scale digits; nothing else. */
static int reference_parse(const char *text, unsigned scale, int64_t max, int64_t *ret)
{
        const char *p = text;
        __int128 v = 0;
        unsigned nfrac = 0;
        int any = 0, big = 0;

        for (; *p >= '0' && *p <= '9'; p++, any = 1)
                if (!big && (v = v * 10 + (*p - '0')) > INT64_MAX)
                        big = 1;
        if (!any)
                return -EINVAL;
        if (*p == '.') {
                for (p++; *p >= '0' && *p <= '9'; p++, nfrac++)
                        if (!big && (v = v * 10 + (*p - '0')) > INT64_MAX)
                                big = 1;
                if (nfrac == 0 || nfrac > scale)
                        return -EINVAL;
        }
        if (*p)
                return -EINVAL;
        for (unsigned i = nfrac; i < scale && !big; i++)
                if ((v *= 10) > INT64_MAX)
                        big = 1;
        if (big || v > max)
                return -ERANGE;
        *ret = (int64_t)v;
        return 0;
}

static void round_trip(const char *what, int (*parse)(const char *, int64_t *),
                       void (*format)(int64_t, char *, size_t), const char *text)
{
        char out[32], out2[32];
        int64_t v = 0, again = 0;

        if (parse(text, &v) < 0)
                return;
        format(v, out, sizeof(out));
        FUZZ_CHECK(parse(out, &again) == 0, "%s \"%s\" = %lld formats as \"%s\", refused", what,
                   text, (long long)v, out);
        FUZZ_CHECK(again == v, "%s \"%s\" = %lld, its format \"%s\" = %lld", what, text,
                   (long long)v, out, (long long)again);
        format(again, out2, sizeof(out2));
        FUZZ_CHECK(strcmp(out, out2) == 0, "%s format not stable: \"%s\" then \"%s\"", what, out,
                   out2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const int64_t limits[] = {MONEY_MAX_MINOR, QUANTITY_MAX_MILLI, INT64_MAX, 0, 1, 999,
                                         100000,          INT64_MAX - 1};
        int64_t got = 0x5a5a, want = 0x5a5a, max;
        unsigned scale;
        char *text;
        int r, rr;

        if (size < 1 || size > 4096)
                return 0;
        scale = data[0] % 24; /* past 18 every value with digits overflows */
        max = limits[(data[0] >> 5) & 7];
        text = fuzz_strndup(data + 1, size - 1);

        r = decimal_parse(text, scale, max, &got);
        rr = reference_parse(text, scale, max, &want);
        FUZZ_CHECK(r == rr, "decimal_parse(\"%s\", %u, %lld) = %d, reference %d", text, scale,
                   (long long)max, r, rr);
        FUZZ_CHECK(r < 0 ? got == 0x5a5a : got == want,
                   "decimal_parse(\"%s\", %u) = %lld, reference %lld", text, scale, (long long)got,
                   (long long)want);

        round_trip("money", money_parse, money_format, text);
        round_trip("quantity", quantity_parse, quantity_format, text);
        free(text);
        return 0;
}
