/*
 * One field of a form body. libcurl does the %-decoding; this file only splits on '&'
 * and '=' and turns '+' into a space first (a literal '+' arrives as %2B).
 */
#include "http/form.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "base/xalloc.h"

/* Decodes `n` bytes of `s`: 0 and a NUL-terminated copy, or -EINVAL when it holds a NUL. */
static int decode(const char *s, size_t n, char **ret, size_t *ret_len)
{
        char *plus = xmalloc(n + 1), *out;
        int len = 0;

        for (size_t i = 0; i < n; i++)
                plus[i] = s[i] == '+' ? ' ' : s[i];
        plus[n] = '\0';
        out = curl_easy_unescape(NULL, plus, (int)n, &len);
        free(plus);
        if (!out)
                abort(); /* out of memory, as xmalloc */
        if (strlen(out) != (size_t)len) {
                curl_free(out);
                return -EINVAL;
        }
        *ret = xstrdup(out);
        *ret_len = (size_t)len;
        curl_free(out);
        return 0;
}

int http_form_value(const char *body, size_t len, const char *name, size_t max, char **ret)
{
        const char *p = body, *end = body + len;

        if (len > (size_t)INT_MAX)
                return -E2BIG;
        while (p < end) {
                const char *amp = memchr(p, '&', (size_t)(end - p));
                const char *field_end = amp ? amp : end;
                const char *eq = memchr(p, '=', (size_t)(field_end - p));
                const char *key_end = eq ? eq : field_end;
                char *key, *value;
                size_t key_len, value_len;
                int r;

                if ((r = decode(p, (size_t)(key_end - p), &key, &key_len)) < 0)
                        return r;
                r = strcmp(key, name);
                free(key);
                if (r == 0) {
                        const char *v = eq ? eq + 1 : field_end;
                        if ((r = decode(v, (size_t)(field_end - v), &value, &value_len)) < 0)
                                return r;
                        if (value_len > max) {
                                free(value);
                                return -E2BIG;
                        }
                        *ret = value;
                        return 0;
                }
                p = amp ? amp + 1 : end;
        }
        return -ENOENT;
}
