/* UTF-8 cuts at character boundaries; see utf8.h. */
#include "base/utf8.h"

#include <string.h>

/* a byte that continues a character (10xxxxxx) */
static int continuation(char c)
{
        return ((unsigned char)c & 0xC0) == 0x80;
}

void utf8_copy(const char *s, char *buf, size_t size)
{
        size_t n = strlen(s);

        if (n >= size) {
                n = size - 1;
                while (n > 0 && continuation(s[n]))
                        n--;
        }
        memcpy(buf, s, n);
        buf[n] = '\0';
}

size_t utf8_prefix(const char *s, size_t max_chars)
{
        size_t chars = 0, i;

        for (i = 0; s[i]; i++)
                if (!continuation(s[i]) && ++chars > max_chars)
                        break;
        return i;
}
