/*
 * Standard Webhooks verification: the webhook-id, webhook-timestamp and webhook-signature
 * headers of POST /v1/orders, and the whsec_ secret text. Input: one flag byte, then
 * lines "[key\n]id\ntimestamp\nheader\nbody" (the body is the rest, newlines and all); a
 * missing line is a missing header. Flag bit 0: the first line is a secret for
 * signature_key_parse (else a fixed key); bit 1: the clock is the input's own timestamp
 * (so the header parsing is reached), else a fixed one. Oracle: whenever the id and
 * timestamp pass, the signature signature_sign makes for them verifies alone, after the
 * input's header and before it; and the same signature with one bit of its digest changed
 * (which bit: chosen by the input) is refused, so a compare of part of the digest is found.
 */
#include "fuzz.h"

#include <errno.h>
#include <inttypes.h>

#include <openssl/evp.h>

#include "http/signature.h"

#define FIXED_NOW 1773385200 /* 2026-03-13T07:00:00Z */

/* Cuts the next '\n'-terminated line off [*p, end) as a new string; NULL when none left. */
static char *next_line(const char **p, const char *end)
{
        const char *nl;
        char *s;

        if (*p >= end)
                return NULL;
        nl = memchr(*p, '\n', (size_t)(end - *p));
        if (!nl)
                nl = end;
        s = fuzz_strndup((const uint8_t *)*p, (size_t)(nl - *p));
        *p = nl < end ? nl + 1 : end;
        return s;
}

/* Digits only, at most 12, as signature.c reads them; -1 when not. */
static int64_t digits_value(const char *s)
{
        int64_t v = 0;
        size_t i;

        for (i = 0; s[i]; i++) {
                if (s[i] < '0' || s[i] > '9' || i >= 12)
                        return -1;
                v = v * 10 + (s[i] - '0');
        }
        return i ? v : -1;
}

/* `sig` ("v1,<base64>") with bit `which` % 256 of its 32-byte digest flipped, re-encoded. */
static void flip_one_bit(const char *sig, unsigned which, char out[64])
{
        unsigned char digest[48];

        FUZZ_CHECK(EVP_DecodeBlock(digest, (const unsigned char *)sig + 3, 44) == 33,
                   "own signature \"%s\" is not 44 base64 characters", sig);
        which %= 256;
        digest[which / 8] ^= (unsigned char)(1u << (which % 8));
        memcpy(out, "v1,", 3);
        EVP_EncodeBlock((unsigned char *)out + 3, digest, 32);
}

static void check_own_signature(const struct signature_key *key, const char *id,
                                const char *timestamp, const char *header, const char *body,
                                size_t body_len, int64_t now, unsigned which_bit)
{
        char sig[64], flipped[64], both[2 * SIGNATURE_HEADER_MAX + 8], ts[24];
        int64_t t = digits_value(timestamp);
        int r;

        /* signature_sign writes the timestamp canonically; the MAC covers the header's text */
        snprintf(ts, sizeof(ts), "%" PRId64, t);
        if (t < 0 || strcmp(ts, timestamp) != 0)
                return;
        FUZZ_CHECK(signature_sign(key, id, t, body, body_len, sig, sizeof(sig)) == 0,
                   "cannot sign for id \"%s\"", id);
        r = signature_verify(key, id, timestamp, sig, body, body_len, now);
        FUZZ_CHECK(r == 0, "own signature refused alone: %d", r);
        flip_one_bit(sig, which_bit, flipped);
        r = signature_verify(key, id, timestamp, flipped, body, body_len, now);
        FUZZ_CHECK(r == -EBADMSG, "own signature with digest bit %u flipped accepted: %d",
                   which_bit % 256, r);
        if (strlen(header) + 1 + strlen(sig) > SIGNATURE_HEADER_MAX)
                return;
        snprintf(both, sizeof(both), "%s %s", header, sig);
        r = signature_verify(key, id, timestamp, both, body, body_len, now);
        FUZZ_CHECK(r == 0, "own signature refused after \"%s\": %d", header, r);
        snprintf(both, sizeof(both), "%s %s", sig, header);
        r = signature_verify(key, id, timestamp, both, body, body_len, now);
        FUZZ_CHECK(r == 0, "own signature refused before \"%s\": %d", header, r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const struct signature_key fixed = {.bytes = "0123456789abcdef0123456789abcdef",
                                                   .len = 32};
        struct signature_key key = fixed;
        const char *p, *end;
        char *key_text = NULL, *id = NULL, *timestamp = NULL, *header = NULL;
        int r;
        int64_t now = FIXED_NOW;
        unsigned flags;

        if (size < 1)
                return 0;
        flags = data[0];
        p = (const char *)data + 1;
        end = (const char *)data + size;
        if (flags & 1) {
                key_text = next_line(&p, end);
                if (!key_text || signature_key_parse(key_text, &key) < 0)
                        goto out;
                FUZZ_CHECK(key.len >= SIGNATURE_KEY_MIN && key.len <= SIGNATURE_KEY_MAX,
                           "key of %zu bytes accepted", key.len);
        }
        id = next_line(&p, end);
        timestamp = next_line(&p, end);
        header = next_line(&p, end);
        if ((flags & 2) && timestamp && digits_value(timestamp) >= 0)
                now = digits_value(timestamp);
        r = signature_verify(&key, id, timestamp, header, p, (size_t)(end - p), now);
        FUZZ_CHECK(r == 0 || r == -ENOKEY || r == -EINVAL || r == -EDOM || r == -ERANGE ||
                           r == -EBADMSG,
                   "unknown result %d", r);
        FUZZ_CHECK(strcmp(signature_strerror(r), "unknown") != 0, "result %d has no text", r);
        if (r == 0 || r == -EBADMSG)
                check_own_signature(&key, id, timestamp, header, p, (size_t)(end - p), now,
                                    (unsigned)size * 31u + (size > 1 ? data[size - 1] : 0));
out:
        free(key_text);
        free(id);
        free(timestamp);
        free(header);
        return 0;
}
