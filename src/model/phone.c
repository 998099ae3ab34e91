/* Phone and e-mail normalisation; see phone.h. */
#include "model/phone.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

int phone_normalize(const char *in, const char *country_code, char *out, size_t size)
{
        char d[32];
        size_t n = 0;
        const char *p = in;
        bool plus;

        if (!in)
                return -EINVAL;
        /* an extension ("#123", "доб. 12", "ext 5") is not part of the number: stop at the
         * first letter, ASCII or not (a byte ≥ 0x80 starts a UTF-8 letter such as "д") */
        for (; *p && *p != '#' && *p != ',' && *p != ';' && !isalpha((unsigned char)*p) &&
               (unsigned char)*p < 0x80;
             p++) {
                if (*p >= '0' && *p <= '9') {
                        if (n >= sizeof(d) - 1)
                                return -EINVAL;
                        d[n++] = *p;
                }
        }
        d[n] = '\0';
        if (n >= 2 && d[0] == '0' && d[1] == '0') { /* 00 international prefix */
                memmove(d, d + 2, n - 1);
                n -= 2;
        }
        plus = in[strspn(in, " ")] == '+';
        if (!plus && strcmp(country_code, "7") == 0 && n == 11 && d[0] == '8') {
                d[0] = '7'; /* Russian trunk prefix 8 → country code 7 (not "+8…", Taiwan) */
        } else if (n == 10 && !plus) {
                /* a national number: prepend the country code */
                char tmp[32];
                snprintf(tmp, sizeof(tmp), "%s%s", country_code, d);
                snprintf(d, sizeof(d), "%s", tmp);
                n = strlen(d);
        }
        if (n < 10 || n > 15)
                return -EINVAL;
        if ((size_t)snprintf(out, size, "+%s", d) >= size)
                return -EINVAL;
        return 0;
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
