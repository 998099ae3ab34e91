/*
 * Contact keys for matching repeat customers: phones reduced to E.164 ("+" and the
 * country code and national number), e-mails trimmed and lower-cased. "8 (900) 123-45-67",
 * "+7 900 123 45 67" and "9001234567" (country code 7) are one phone; so are
 * "044 123 45 67", "+380 44 123 45 67" and "00380441234567" (country code 380).
 * The dialling conventions of each country (trunk prefixes such as Russia's 8, Belarus's
 * 8 0, the 0 of most others; international prefixes; lengths) come from libphonenumber,
 * through phone_lib.h.
 */
#pragma once

#include <stddef.h>

/* Returns 0 and writes the E.164 key ("+79001234567") of `in`, a phone as a buyer or a
 * manager typed it: read up to its first letter, '#', ',' or ';' (an extension: "ext 5",
 * "доб. 12", "#123"), "+" or "00" before an international number, anything else a number
 * dialled in `country_code`'s country (1-4 digits: [bitrix24] country_code; 7 reads
 * Kazakhstan's numbers too, as the two share +7).
 *
 * Returns -EINVAL when `in` is not a phone we can match on: no digits, not readable as a
 * number, more than E.164's 15 digits, or not a *possible* number (a length its country
 * uses). Possible and not valid on purpose: libphonenumber's "valid" checks the number
 * ranges in its metadata, which lag behind new allocations (a new mobile prefix would be
 * refused until the library is upgraded, and that customer would get a new contact per
 * order), while a key only has to be the same for every spelling of one phone. A number
 * possible only locally (no area code) is refused: it is a different phone in each area.
 * Also -EINVAL when the key does not fit in `size`; -ENOMEM when the library runs out of
 * memory. `out` is untouched on failure. A key normalises to itself under any country
 * code: the sink reads the keys it wrote back from the portal's contacts. */
int phone_normalize(const char *in, const char *country_code, char *out, size_t size);

/* Returns 0 when `country_code` (1-4 digits, as [bitrix24] country_code) is a country's
 * calling code, so numbers written without one can be read; -EINVAL when it is no
 * country's (0, 1234, or 800, a global service). */
int phone_check_country_code(const char *country_code);

/* Returns 0 and writes the lower-cased, trimmed address, or -EINVAL. */
int email_normalize(const char *in, char *out, size_t size);
