/*
 * The log line (log_event): values from outside in both places a format puts them, bare
 * (`k=%s z=1`) and quoted (`k="%s" z=1`). Input: the value (up to the first NUL). The line
 * is captured from stderr and read back by a strict logfmt parser written here from
 * log.h's description. Oracles: the line is one line of at most 2048 bytes and parses;
 * when the whole value fits, `k` reads back exactly as the input (control characters
 * through their escapes) and `z` is still 1; when it does not, the line is full, `k` reads
 * back as a prefix of the input and `z` is gone rather than forged.
 */
#include "fuzz.h"

#include <stdbool.h>
#include <unistd.h>

#include "base/log.h"

#define LINE_MAX_BYTES 2048

static int pipe_fds[2] = {-1, -1};
static int saved_stderr = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        if (pipe(pipe_fds) != 0 || (saved_stderr = dup(STDERR_FILENO)) < 0)
                abort();
        return 0;
}

/* The line log_event wrote, with stderr restored before anything is checked. */
static size_t capture(char *line, size_t size, const char *value, bool quoted)
{
        size_t n = 0;
        ssize_t got;

        fflush(stderr);
        if (dup2(pipe_fds[1], STDERR_FILENO) < 0)
                abort();
        if (quoted)
                log_info("fuzz.log", "k=\"%s\" z=1", value);
        else
                log_info("fuzz.log", "k=%s z=1", value);
        if (dup2(saved_stderr, STDERR_FILENO) < 0)
                abort();
        /* one write(2) of at most PIPE_BUF bytes arrives whole */
        while (n == 0 || line[n - 1] != '\n') {
                got = read(pipe_fds[0], line + n, size - n);
                if (got <= 0)
                        abort();
                n += (size_t)got;
                FUZZ_CHECK(n < size, "a log line longer than %zu bytes", size);
        }
        return n;
}

static int hex(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

/* One logfmt value at `*pp`, decoded into `out`; false when the text is not logfmt. */
static bool parse_value(const char **pp, const char *end, char *out, size_t *ret_len)
{
        const char *p = *pp;
        size_t n = 0;

        if (p < end && *p != '"') { /* bare: up to the next space */
                for (; p < end && *p != ' '; p++) {
                        if (*p == '=' || *p == '\\' || (unsigned char)*p < 0x20 || *p == 0x7f)
                                return false;
                        out[n++] = *p;
                }
                *pp = p;
                *ret_len = n;
                return n > 0;
        }
        for (p++; p < end && *p != '"'; p++) {
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        return false;
                if (*p != '\\') {
                        out[n++] = *p;
                        continue;
                }
                if (++p == end)
                        return false;
                switch (*p) {
                case '\\':
                        out[n++] = '\\';
                        break;
                case '"':
                        out[n++] = '"';
                        break;
                case 'n':
                        out[n++] = '\n';
                        break;
                case 't':
                        out[n++] = '\t';
                        break;
                case 'r':
                        out[n++] = '\r';
                        break;
                case 'u':
                        if (end - p < 5 || p[1] != '0' || p[2] != '0' || hex(p[3]) < 0 ||
                            hex(p[4]) < 0)
                                return false;
                        out[n++] = (char)(hex(p[3]) * 16 + hex(p[4]));
                        p += 4;
                        break;
                default:
                        return false;
                }
        }
        if (p == end)
                return false;
        *pp = p + 1;
        *ret_len = n;
        return true;
}

static void check(const char *value, size_t len, bool quoted)
{
        static char line[LINE_MAX_BYTES * 2], got[LINE_MAX_BYTES], z[LINE_MAX_BYTES];
        size_t n = capture(line, sizeof(line), value, quoted), got_len = 0, z_len = 0;
        const char *p = line, *end = line + n - 1;
        bool has_z = false;

        FUZZ_CHECK(n <= LINE_MAX_BYTES, "line of %zu bytes", n);
        FUZZ_CHECK(memchr(line, '\n', n - 1) == NULL, "a value split the line");
        /* time, level, event */
        for (int i = 0; i < 3; i++) {
                p = memchr(p, ' ', (size_t)(end - p));
                FUZZ_CHECK(p, "no fields after the event");
                p++;
        }
        FUZZ_CHECK(end - p >= 2 && memcmp(p, "k=", 2) == 0, "the line lost k=: %.*s", (int)n, line);
        p += 2;
        FUZZ_CHECK(parse_value(&p, end, got, &got_len), "k does not parse (%s): %.*s",
                   quoted ? "quoted" : "bare", (int)n, line);
        if (p < end) {
                FUZZ_CHECK(end - p >= 3 && memcmp(p, " z=", 3) == 0, "after k: %.*s",
                           (int)(end - p), p);
                p += 3;
                FUZZ_CHECK(parse_value(&p, end, z, &z_len) && p == end, "z does not parse: %.*s",
                           (int)n, line);
                has_z = true;
        }
        if (has_z) {
                FUZZ_CHECK(z_len == 1 && z[0] == '1', "z is not 1: %.*s", (int)n, line);
                FUZZ_CHECK(got_len == len && memcmp(got, value, len) == 0,
                           "k (%s) reads back as %zu bytes, not the %zu given",
                           quoted ? "quoted" : "bare", got_len, len);
        } else {
                FUZZ_CHECK(n >= LINE_MAX_BYTES - 8, "z dropped from a %zu-byte line", n);
                FUZZ_CHECK(got_len <= len && memcmp(got, value, got_len) == 0,
                           "a cut k (%s) is not a prefix of the value", quoted ? "quoted" : "bare");
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *value = fuzz_strndup(data, size);
        size_t len = strlen(value);

        check(value, len, false);
        check(value, len, true);
        free(value);
        return 0;
}
