/*
 * The one door to libphonenumber (a C++ library): a number's digits, read with the
 * conventions of one country calling code's region, written back as E.164. What the
 * digits are (extensions cut, "00" read as "+") is phone.c's business; this file only
 * asks the library, and no C++ exception leaves it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Reads `digits` (ASCII digits only) as "+<digits>" when `international`, else as a
 * number dialled in the region of `country_code` (its main one: RU for 7, GB for 44),
 * with that region's trunk and international prefixes. Returns 0 and writes
 * "+<country code><national number>" when the library finds the number possible (a length
 * its country uses; see phone.h for why not "valid") and reads that key back as itself;
 * -EINVAL when it cannot read the number, finds it impossible or possible only locally, or
 * the key does not fit in `size`; -ENOMEM when it runs out of memory. ret_e164 is
 * untouched on failure. */
int phone_lib_format_e164(const char *digits, bool international, unsigned country_code,
                          char *ret_e164, size_t size);

/* Returns 0 when `country_code` is a country's calling code (7, 375, 44), -EINVAL when it
 * names none (0, 1234) or no country but a global service (800, 882). */
int phone_lib_check_country_code(unsigned country_code);

#ifdef __cplusplus
}
#endif
