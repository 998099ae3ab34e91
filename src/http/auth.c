/*
 * The admin's credentials and the forms' CSRF token (auth.h). The CSRF key is the one
 * piece of process-wide state here: drawn once (pthread_once) and never changed after,
 * so every thread of the server computes the same token without a lock.
 */
#include "http/auth.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

/* A Basic credential longer than this is not the admin's (user, ':', a token of at most
 * a few hundred bytes): refused as wrong, without decoding it. */
#define BASIC_MAX 1024

static unsigned char csrf_key[32];
static pthread_once_t csrf_once = PTHREAD_ONCE_INIT;

static void csrf_key_draw(void)
{
        /* without randomness the token would be guessable: stop, as on out-of-memory */
        if (RAND_bytes(csrf_key, sizeof(csrf_key)) != 1)
                abort();
}

/* `got` (`got_len` bytes, may hold NULs) against the token, in constant time over the
 * token's length. */
static bool token_equal(const char *token, const void *got, size_t got_len)
{
        size_t want = strlen(token);

        return got_len == want && CRYPTO_memcmp(got, token, want) == 0;
}

/* "Basic base64(user:password)": the password against the token, whatever the user. */
static enum http_auth check_basic(const char *token, const char *b64)
{
        unsigned char out[BASIC_MAX];
        size_t n = strlen(b64);
        EVP_ENCODE_CTX *ctx;
        int len = 0, tail = 0, ok;
        const unsigned char *colon;
        enum http_auth r;

        if (n == 0)
                return HTTP_AUTH_MISSING;
        if (n > BASIC_MAX)
                return HTTP_AUTH_WRONG;
        ctx = EVP_ENCODE_CTX_new();
        if (!ctx)
                abort();
        EVP_DecodeInit(ctx);
        ok = EVP_DecodeUpdate(ctx, out, &len, (const unsigned char *)b64, (int)n) >= 0 &&
             EVP_DecodeFinal(ctx, out + len, &tail) == 1;
        EVP_ENCODE_CTX_free(ctx);
        if (!ok)
                return HTTP_AUTH_MISSING;
        len += tail;
        colon = memchr(out, ':', (size_t)len);
        if (!colon)
                r = HTTP_AUTH_MISSING;
        else
                r = token_equal(token, colon + 1, (size_t)(out + len - (colon + 1)))
                            ? HTTP_AUTH_OK
                            : HTTP_AUTH_WRONG;
        OPENSSL_cleanse(out, sizeof(out));
        return r;
}

enum http_auth http_auth_check(const char *token, const char *authorization)
{
        const char *cred;

        if (!token)
                return HTTP_AUTH_DISABLED;
        if (!authorization)
                return HTTP_AUTH_MISSING;
        /* scheme names are case-insensitive (RFC 9110 11.1) */
        if (strncasecmp(authorization, "Basic ", 6) == 0)
                return check_basic(token, authorization + 6);
        if (strncasecmp(authorization, "Bearer ", 7) != 0)
                return HTTP_AUTH_MISSING;
        cred = authorization + 7;
        if (!*cred)
                return HTTP_AUTH_MISSING;
        return token_equal(token, cred, strlen(cred)) ? HTTP_AUTH_OK : HTTP_AUTH_WRONG;
}

bool http_auth_admin(const struct config *cfg, struct http_request *rq)
{
        switch (http_auth_check(cfg->admin_token, http_request_header(rq, "Authorization"))) {
        case HTTP_AUTH_OK:
                return true;
        case HTTP_AUTH_DISABLED:
                http_request_reply_error(rq, 403, "admin_disabled", NULL,
                                         "set [server] admin_token_file to use this endpoint");
                return false;
        case HTTP_AUTH_MISSING:
                http_request_reply(rq, 401,
                                   "{\"error\":\"unauthorized\",\"field\":\"Authorization\","
                                   "\"message\":\"the admin token is required, as a bearer "
                                   "token or a Basic password\"}",
                                   0, "Basic realm=\"orderbridge\"");
                return false;
        case HTTP_AUTH_WRONG:
                break;
        }
        http_request_reply_error(rq, 403, "forbidden", "Authorization",
                                 "these credentials are not the admin token");
        return false;
}

void http_csrf_token(const struct config *cfg, char ret[HTTP_CSRF_TOKEN_LEN + 1])
{
        static const char hex[] = "0123456789abcdef";
        unsigned char mac[32];
        unsigned len = 0;

        pthread_once(&csrf_once, csrf_key_draw);
        if (!HMAC(EVP_sha256(), csrf_key, sizeof(csrf_key),
                  (const unsigned char *)cfg->admin_token, strlen(cfg->admin_token), mac, &len) ||
            len != sizeof(mac))
                abort();
        for (size_t i = 0; i < sizeof(mac); i++) {
                ret[2 * i] = hex[mac[i] >> 4];
                ret[2 * i + 1] = hex[mac[i] & 15];
        }
        ret[HTTP_CSRF_TOKEN_LEN] = '\0';
}

bool http_csrf_ok(const struct config *cfg, const char *token)
{
        char want[HTTP_CSRF_TOKEN_LEN + 1];
        bool ok;

        if (!token || !cfg->admin_token || strlen(token) != HTTP_CSRF_TOKEN_LEN)
                return false;
        http_csrf_token(cfg, want);
        ok = CRYPTO_memcmp(token, want, HTTP_CSRF_TOKEN_LEN) == 0;
        OPENSSL_cleanse(want, sizeof(want));
        return ok;
}
