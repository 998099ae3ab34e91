/*
 * Contact keys from order.buyer.phone / .email and from Bitrix24's contact lists. Input:
 * one byte picks the country code ([bitrix24] country_code, 1-4 digits) and the output
 * buffer (the sink's 24-byte phone key or a 256-byte one), the rest is the text, tried as
 * both a phone and an e-mail. Oracles: a phone key is "+" and at most 15 digits (E.164),
 * not "+0" (no country code starts with 0), and normalises to itself under every country
 * code; an e-mail key is trimmed, lower-case, holds '@' and normalises to itself.
 */
#include "fuzz.h"

#include <ctype.h>

#include "model/phone.h"

static const char *const country_codes[] = {"7", "1", "44", "380", "375", "0", "49", "1234"};

static void check_phone(const char *text, const char *cc, size_t size)
{
        char out[256], again[256];
        size_t n;

        memset(out, 0x5a, sizeof(out));
        if (phone_normalize(text, cc, out, size) < 0)
                return;
        n = strlen(out);
        FUZZ_CHECK(n < size, "\"%s\" → \"%s\" overflows %zu bytes", text, out, size);
        FUZZ_CHECK(out[0] == '+' && n >= 2 && n <= 16 && out[1] != '0' &&
                       strspn(out + 1, "0123456789") == n - 1,
                   "\"%s\" (country %s) → \"%s\" is not E.164", text, cc, out);
        /* the sink reads its own keys back from the portal's contacts, and an operator
         * may change country_code: a key is the same key under any country code */
        for (size_t i = 0; i < sizeof(country_codes) / sizeof(country_codes[0]); i++)
                FUZZ_CHECK(phone_normalize(out, country_codes[i], again, sizeof(again)) == 0 &&
                               strcmp(out, again) == 0,
                           "\"%s\" (country %s) → \"%s\" → (country %s) \"%s\"", text, cc, out,
                           country_codes[i], again);
}

static void check_email(const char *text, size_t size)
{
        char out[256], again[256];
        size_t n;

        if (email_normalize(text, out, size) < 0)
                return;
        n = strlen(out);
        FUZZ_CHECK(n >= 3 && n < size && strchr(out, '@'), "\"%s\" → \"%s\"", text, out);
        FUZZ_CHECK(!isspace((unsigned char)out[0]) && !isspace((unsigned char)out[n - 1]),
                   "\"%s\" → \"%s\" is not trimmed", text, out);
        for (size_t i = 0; i < n; i++)
                FUZZ_CHECK(!isupper((unsigned char)out[i]), "\"%s\" → \"%s\" has upper case", text,
                           out);
        FUZZ_CHECK(email_normalize(out, again, sizeof(again)) == 0 && strcmp(out, again) == 0,
                   "\"%s\" → \"%s\" → \"%s\"", text, out, again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const size_t sizes[] = {24, 256};
        char *text;

        if (size < 1 || size > 1024)
                return 0;
        text = fuzz_strndup(data + 1, size - 1);
        check_phone(text, country_codes[data[0] & 7], sizes[(data[0] >> 3) & 1]);
        check_email(text, sizes[(data[0] >> 3) & 1]);
        free(text);
        return 0;
}
