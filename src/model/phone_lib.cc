/*
 * libphonenumber behind a C function; see phone_lib.h. PhoneNumberUtil is a process-wide
 * singleton the library builds on first use (its metadata and regular expressions) and
 * documents as safe to share between threads, so nothing here keeps state of its own.
 * The library allocates (std::string, protobuf messages): bad_alloc is turned into
 * -ENOMEM here, because an exception must not unwind through C frames.
 */
#include "model/phone_lib.h"

#include <cerrno>
#include <cstring>
#include <new>
#include <string>

#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

namespace
{

/* The region whose dialling conventions apply to a number written without a country code;
 * "ZZ" (unknown) for a code no country has, "001" for global services such as 800. */
std::string region_of(const PhoneNumberUtil &util, unsigned country_code)
{
        std::string region;

        if (country_code > 999)
                return "ZZ";
        util.GetRegionCodeForCountryCode((int)country_code, &region);
        return region;
}

/* One reading: `text` parsed for `region`, out as E.164 when it is a possible number. */
int read_once(const PhoneNumberUtil &util, const std::string &text, const std::string &region,
              std::string *ret_e164)
{
        PhoneNumber number;

        if (util.Parse(text, region, &number) != PhoneNumberUtil::NO_PARSING_ERROR)
                return -EINVAL;
        /* IS_POSSIBLE_LOCAL_ONLY is refused too: a number without its area code is a
         * different phone in every area, so it is no key for one customer */
        if (util.IsPossibleNumberWithReason(number) != PhoneNumberUtil::IS_POSSIBLE)
                return -EINVAL;
        util.Format(number, PhoneNumberUtil::E164, ret_e164);
        return 0;
}

/* The library drops a trunk prefix after the country code too ("+380 044…" is
 * "+380 44…"), one per reading, so its E.164 is not always what it reads back:
 * "+43 0024430117" gives "+43024430117", which gives "+4324430117". The sink reads its
 * own keys back from the portal's contacts, so a key is read again until it stays; one
 * that still changes after READINGS_MAX more readings is refused. */
constexpr int READINGS_MAX = 4;

int format_e164(const char *digits, bool international, unsigned country_code, char *ret_e164,
                size_t size)
{
        const PhoneNumberUtil &util = *PhoneNumberUtil::GetInstance();
        std::string text = std::string(international ? "+" : "") + digits, e164;
        int r = read_once(util, text, region_of(util, country_code), &e164);

        for (int i = 0; r == 0 && i < READINGS_MAX; i++) {
                text = e164;
                /* an international number: the default region is not consulted */
                r = read_once(util, text, "ZZ", &e164);
                if (r == 0 && e164 == text)
                        break;
        }
        if (r < 0 || e164 != text || e164.size() >= size)
                return -EINVAL;
        memcpy(ret_e164, e164.c_str(), e164.size() + 1);
        return 0;
}

} // namespace

extern "C" int phone_lib_format_e164(const char *digits, bool international, unsigned country_code,
                                     char *ret_e164, size_t size)
{
        try {
                return format_e164(digits, international, country_code, ret_e164, size);
        } catch (const std::bad_alloc &) {
                return -ENOMEM;
        }
}

extern "C" int phone_lib_check_country_code(unsigned country_code)
{
        try {
                std::string region = region_of(*PhoneNumberUtil::GetInstance(), country_code);
                return region == "ZZ" || region == "001" ? -EINVAL : 0;
        } catch (const std::bad_alloc &) {
                return -ENOMEM;
        }
}
