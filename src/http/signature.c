/*
 * HMAC and base64 come from OpenSSL's libcrypto; comparison is constant-time
 * (CRYPTO_memcmp). The header is parsed with hard caps: at most SIGNATURE_HEADER_MAX
 * bytes and entries of bounded length, so a hostile header costs a bounded amount of
 * work.
 */
#include "http/signature.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

int signature_key_parse(const char *text, struct signature_key *ret_key)
{
        unsigned char out[((SIGNATURE_KEY_MAX + 2) / 3) * 3 + 3];
        size_t len, pad = 0;
        int n;

        if (!text || strncmp(text, "whsec_", 6) != 0)
                return -EINVAL;
        text += 6;
        len = strlen(text);
        if (len == 0 || len % 4 != 0 || len / 4 * 3 > sizeof(out))
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                char c = text[i];
                if (c == '=') {
                        if (i < len - 2)
                                return -EINVAL;
                        pad++;
                } else if (pad || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                    (c >= '0' && c <= '9') || c == '+' || c == '/'))
                        return -EINVAL;
        }
        n = EVP_DecodeBlock(out, (const unsigned char *)text, (int)len);
        if (n < 0)
                return -EINVAL;
        n -= (int)pad; /* EVP_DecodeBlock counts padding as zero bytes */
        if (n < SIGNATURE_KEY_MIN || n > SIGNATURE_KEY_MAX)
                return -EINVAL;
        memcpy(ret_key->bytes, out, (size_t)n);
        ret_key->len = (size_t)n;
        OPENSSL_cleanse(out, sizeof(out));
        return 0;
}

static int mac(const struct signature_key *key, const char *id, const char *timestamp,
               const char *body, size_t body_len, unsigned char ret_mac[32])
{
        char prefix[SIGNATURE_ID_MAX + 32], digest_name[] = "SHA256";
        OSSL_PARAM params[2];
        EVP_MAC_CTX *ctx = NULL;
        EVP_MAC *hmac;
        size_t mac_len = 0;
        int r = -1;
        int n;

        n = snprintf(prefix, sizeof(prefix), "%s.%s.", id, timestamp);
        if (n < 0 || (size_t)n >= sizeof(prefix))
                return -1;
        hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        if (hmac)
                ctx = EVP_MAC_CTX_new(hmac);
        params[0] = OSSL_PARAM_construct_utf8_string("digest", digest_name, 0);
        params[1] = OSSL_PARAM_construct_end();
        if (ctx && EVP_MAC_init(ctx, key->bytes, key->len, params) == 1 &&
            EVP_MAC_update(ctx, (const unsigned char *)prefix, (size_t)n) == 1 &&
            EVP_MAC_update(ctx, (const unsigned char *)body, body_len) == 1 &&
            EVP_MAC_final(ctx, ret_mac, &mac_len, 32) == 1 && mac_len == 32)
                r = 0;
        EVP_MAC_CTX_free(ctx);
        EVP_MAC_free(hmac);
        return r;
}

int signature_sign(const struct signature_key *key, const char *id, int64_t timestamp,
                   const char *body, size_t body_len, char *buf, size_t size)
{
        unsigned char digest[32];
        char ts[24];

        snprintf(ts, sizeof(ts), "%" PRId64, timestamp);
        if (size < 3 + 45 || mac(key, id, ts, body, body_len, digest) < 0)
                return -ENOBUFS;
        memcpy(buf, "v1,", 3);
        EVP_EncodeBlock((unsigned char *)buf + 3, digest, sizeof(digest));
        return 0;
}

static int id_valid(const char *id)
{
        size_t len = id ? strlen(id) : 0;

        if (len == 0 || len > SIGNATURE_ID_MAX)
                return 0;
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)id[i] <= 0x20 || id[i] == 0x7f || id[i] == '.')
                        return 0;
        return 1;
}

static int timestamp_parse(const char *text, int64_t *ret)
{
        int64_t v = 0;
        size_t i;

        for (i = 0; text[i]; i++) {
                if (text[i] < '0' || text[i] > '9' || i >= 12)
                        return -1;
                v = v * 10 + (text[i] - '0');
        }
        if (i == 0)
                return -1;
        *ret = v;
        return 0;
}

/* One "v1,<base64>" entry of the signature header, `len` bytes at `p`: 1 and the 32-byte
 * digest it carries in `ret_digest`, or 0 when it is not one ("v1," + 44 base64
 * characters; other schemes, v1a for instance, are skipped, as the spec asks). Only the
 * canonical encoding counts: the decoder ignores the two padding bits of the last
 * character and takes "==" for zero bytes, so the digest is encoded again and must give
 * the same text (this compares the sender's text with itself: nothing secret is timed). */
static int entry_digest(const char *p, size_t len, unsigned char ret_digest[48])
{
        char b64[45], again[45];

        if (len != 47 || strncmp(p, "v1,", 3) != 0)
                return 0;
        memcpy(b64, p + 3, 44);
        b64[44] = '\0';
        if (EVP_DecodeBlock(ret_digest, (const unsigned char *)b64, 44) != 33)
                return 0;
        EVP_EncodeBlock((unsigned char *)again, ret_digest, 32);
        return memcmp(again, b64, 44) == 0;
}

/* Calls `fn` on each space-separated entry of `header` until it returns non-zero. */
static int each_entry(const char *header, int (*fn)(const char *p, size_t len, void *arg),
                      void *arg)
{
        for (const char *p = header; *p;) {
                const char *end;
                int r;

                while (*p == ' ')
                        p++;
                end = strchr(p, ' ');
                if (!end)
                        end = p + strlen(p);
                if (end > p && (r = fn(p, (size_t)(end - p), arg)) != 0)
                        return r;
                p = end;
        }
        return 0;
}

static int well_formed(const char *p, size_t len, void *arg)
{
        unsigned char digest[48];

        (void)arg;
        return entry_digest(p, len, digest);
}

static int matches(const char *p, size_t len, void *arg)
{
        const unsigned char *want = arg;
        unsigned char got[48];

        return entry_digest(p, len, got) && CRYPTO_memcmp(got, want, 32) == 0;
}

int signature_check_headers(const char *id, const char *timestamp, const char *header,
                            int64_t now)
{
        int64_t ts;

        if (!id || !timestamp || !header)
                return -ENOKEY;
        if (!id_valid(id))
                return -EINVAL;
        if (timestamp_parse(timestamp, &ts) < 0)
                return -EDOM;
        if (ts < now - SIGNATURE_TOLERANCE_S || ts > now + SIGNATURE_TOLERANCE_S)
                return -ERANGE;
        if (strlen(header) > SIGNATURE_HEADER_MAX || !each_entry(header, well_formed, NULL))
                return -EBADMSG;
        return 0;
}

int signature_verify(const struct signature_key *key, const char *id, const char *timestamp,
                     const char *header, const char *body, size_t body_len, int64_t now)
{
        unsigned char want[32];
        int r = signature_check_headers(id, timestamp, header, now);

        if (r < 0)
                return r;
        if (mac(key, id, timestamp, body, body_len, want) < 0)
                return -EBADMSG;
        return each_entry(header, matches, want) ? 0 : -EBADMSG;
}

const char *signature_strerror(int r)
{
        switch (r) {
        case 0:
                return "ok";
        case -ENOKEY:
                return "webhook-id, webhook-timestamp and webhook-signature headers are required";
        case -EINVAL:
                return "webhook-id must be 1-128 printable characters without '.'";
        case -EDOM:
                return "webhook-timestamp must be Unix seconds";
        case -ERANGE:
                return "webhook-timestamp is more than 5 minutes from the server's clock";
        case -EBADMSG:
                return "webhook-signature does not match the body";
        }
        return "unknown";
}
