/*
 * Why a command leaves the batch, or a value the order: see b24_values.h.
 */
#include "sinks/b24_values.h"

#include <string.h>
#include <strings.h>

/* main's check_email (main/tools.php), the rule the CRM applies to an EMAIL multi-field:
 * dot-atoms of atext (letters, digits, =_+~'!$&*^`|#%/?{}-, any letter of \p{L}) before
 * the '@'; after it, at least two labels of letters, digits and '-', the last one 2 to 20
 * long; at most 320 characters (RFC 2821), and CheckComplexFields' 250 for any
 * multi-field. Non-ASCII bytes count as letters: a value this takes and the portal
 * refuses is caught by the sink's retry without the e-mail. */
static bool atext(unsigned char c)
{
        return c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') || (c && strchr("=_+~'!$&*^`|#%/?{}-", c));
}

static bool domain_char(unsigned char c)
{
        return c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') || c == '-';
}

bool b24_email_ok(const char *e)
{
        const char *at = strchr(e, '@'), *s, *last;
        size_t tld;

        if (!at || at == e || strlen(e) > B24_MULTIFIELD_MAX || strchr(at + 1, '@'))
                return false;
        for (s = e; s < at; s++) {
                if (*s == '.') {
                        if (s == e || s + 1 == at || s[1] == '.')
                                return false;
                } else if (!atext((unsigned char)*s)) {
                        return false;
                }
        }
        last = strrchr(at + 1, '.');
        if (!last || last == at + 1)
                return false;
        tld = strlen(last + 1);
        if (tld < 2 || tld > 20)
                return false;
        for (s = at + 1; *s; s++) {
                if (*s == '.') {
                        if (s[1] == '.' || s[-1] == '@')
                                return false;
                } else if (!domain_char((unsigned char)*s)) {
                        return false;
                }
        }
        return true;
}

/* CRestUtil::processBatchElement matches "$" and one of result, next, total, time, error
 * (the batch answer's sections), in every parameter after URL-decoding. Harsher here:
 * any case, and also "%24" (a value decoded once more on its way would become "$"). */
bool b24_text_has_reference(const char *s)
{
        static const char *const names[] = {"result", "next", "total", "time", "error"};

        for (; *s; s++) {
                const char *t;
                if (*s == '$')
                        t = s + 1;
                else if (s[0] == '%' && s[1] == '2' && s[2] == '4')
                        t = s + 3;
                else
                        continue;
                for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                        if (strncasecmp(t, names[i], strlen(names[i])) == 0)
                                return true;
        }
        return false;
}

/* Walks the parameters: sets *ref when a string holds a reference; returns the number
 * of variables (leaf values) PHP's parse_str would make of them. */
static size_t walk(json_t *v, bool *ref)
{
        const char *k;
        json_t *x;
        size_t i, n = 0;

        if (json_is_object(v)) {
                json_object_foreach(v, k, x) n += walk(x, ref);
                return n;
        }
        if (json_is_array(v)) {
                json_array_foreach(v, i, x) n += walk(x, ref);
                return n;
        }
        if (json_is_string(v) && b24_text_has_reference(json_string_value(v)))
                *ref = true;
        return 1;
}

bool b24_needs_direct(json_t *params)
{
        bool ref = false;
        size_t vars = walk(params, &ref);

        return ref || vars > B24_INPUT_VARS_MAX;
}
