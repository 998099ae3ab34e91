/*
 * ISO 8601 times as the site sends them ("2026-03-13T10:00:00+03:00", Z, +HHMM, an
 * optional fraction, a space for the T) to Unix seconds, and back in UTC or at a given
 * offset (as a Bitrix24 portal writes them). Only the years 1970..9999 are taken, so
 * that every time accepted can be written back and read again.
 */
#include "model/iso8601.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
        /* Howard Hinnant's algorithm: days since 1970-01-01 in the proleptic calendar */
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        unsigned yoe = (unsigned)(y - era * 400);
        unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char **p, int n, int *ret)
{
        int v = 0;

        for (int i = 0; i < n; i++, (*p)++) {
                if (**p < '0' || **p > '9')
                        return -1;
                v = v * 10 + (**p - '0');
        }
        *ret = v;
        return 0;
}

int iso8601_parse(const char *text, int64_t *ret_epoch)
{
        static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        const char *p = text;
        int y, mo, d, h, mi, s, oh = 0, om = 0, sign = 0;
        int64_t epoch;
        bool leap;

        if (digits(&p, 4, &y) < 0 || *p++ != '-' || digits(&p, 2, &mo) < 0 || *p++ != '-' ||
            digits(&p, 2, &d) < 0 || (*p != 'T' && *p != ' ') || !*p++ ||
            digits(&p, 2, &h) < 0 || *p++ != ':' || digits(&p, 2, &mi) < 0 || *p++ != ':' ||
            digits(&p, 2, &s) < 0)
                return -EINVAL;
        if (*p == '.') {
                int n = 0;
                for (p++; *p >= '0' && *p <= '9'; p++)
                        n++;
                if (n == 0 || n > 9)
                        return -EINVAL;
        }
        if (*p == 'Z') {
                p++;
        } else if (*p == '+' || *p == '-') {
                sign = *p++ == '-' ? -1 : 1;
                if (digits(&p, 2, &oh) < 0)
                        return -EINVAL;
                if (*p == ':')
                        p++;
                if (digits(&p, 2, &om) < 0 || oh > 23 || om > 59)
                        return -EINVAL;
        } else {
                return -EINVAL; /* a time without an offset is ambiguous: refuse it */
        }
        leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        if (*p || y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
            (mo == 2 && d == 29 && !leap) || h > 23 || mi > 59 || s > 60)
                return -EINVAL;
        epoch = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + s -
                sign * (oh * 3600 + om * 60);
        /* the offset or a leap second can carry a time out of the years we write back
         * (1970..9999): refuse it here rather than store what we could not re-read */
        if (epoch < 0 || epoch > 253402300799LL)
                return -EINVAL;
        *ret_epoch = epoch;
        return 0;
}

void iso8601_format(int64_t epoch, char *buf, size_t size)
{
        time_t t = (time_t)epoch;
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int iso8601_offset(const char *text, int *ret_offset_s)
{
        const char *sign, *mm;
        int64_t epoch;
        size_t n;

        if (iso8601_parse(text, &epoch) < 0)
                return -EINVAL;
        /* it parsed, so it ends in Z, ±HH:MM or ±HHMM */
        n = strlen(text);
        if (text[n - 1] == 'Z') {
                *ret_offset_s = 0;
                return 0;
        }
        sign = text + n - (text[n - 3] == ':' ? 6 : 5);
        mm = text + n - 2;
        *ret_offset_s = (*sign == '-' ? -1 : 1) *
                        (((sign[1] - '0') * 10 + (sign[2] - '0')) * 3600 +
                         ((mm[0] - '0') * 10 + (mm[1] - '0')) * 60);
        return 0;
}

void iso8601_format_offset(int64_t epoch, int offset_s, char *buf, size_t size)
{
        time_t t = (time_t)(epoch + offset_s);
        int a = offset_s < 0 ? -offset_s : offset_s;
        char local[32];
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(local, sizeof(local), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf, size, "%s%c%02d:%02d", local, offset_s < 0 ? '-' : '+', a / 3600,
                 a % 3600 / 60);
}
