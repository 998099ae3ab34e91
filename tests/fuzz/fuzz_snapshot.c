/*
 * The order snapshot, the body of POST /v1/orders and each line of `orderbridge import`.
 * Oracle: whatever snapshot_parse accepts, its canonical JSON (what the store keeps and
 * the sinks parse again) must parse too and come out byte for byte the same; a refusal
 * must name a field and give a message. An accepted snapshot then goes where the sinks
 * take it: the Roistat order (built exactly when [roistat.map] names the status), the
 * Bitrix24 query string and the contact keys.
 */
#include "fuzz.h"

#include "sinks/b24_client.h"
#include "config/config.h"
#include "model/phone.h"
#include "sinks/bitrix24_conf.h"
#include "sinks/sink_roistat.h"
#include "model/snapshot.h"

static struct config *cfg; /* the defaults, both sinks on */
static const struct roistat_conf *roistat;
static const struct b24_conf *b24;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        char *errors = NULL;

        setenv("ORDERBRIDGE_ROISTAT_API_KEY", "r0istat-k3y-Hh5Jk8Mn2Bv6", 1);
        setenv("ORDERBRIDGE_BITRIX24_WEBHOOK_URL", "https://portal.example.ru/rest/1/c0de/", 1);
        if (config_load_string("[site]\nid = shop.example.ru\n[roistat]\nproject = 1\n"
                               "[bitrix24]\n",
                               "fuzz.conf", &cfg, &errors) < 0) {
                fprintf(stderr, "fuzz_snapshot: config: %s", errors);
                abort();
        }
        roistat = roistat_conf_get(cfg);
        b24 = b24_conf_get(cfg);
        FUZZ_CHECK(roistat && b24, "both sinks must be on");
        return 0;
}

/* What the sinks make of an accepted snapshot. */
static void deliver(const struct snapshot *s)
{
        char why[256] = "", key[256];
        json_t *o;
        char *q;

        if (s->buyer.phone)
                phone_normalize(s->buyer.phone, b24->country_code, key, 24);
        if (s->buyer.email)
                email_normalize(s->buyer.email, key, sizeof(key));
        o = roistat_order_json(roistat, s, why, sizeof(why));
        /* a status the map does not name is refused with a reason, any other is sent */
        if (!status_map_lookup(&roistat->map, s->status, s->canceled, s->paid)) {
                FUZZ_CHECK(!o && why[0], "status %s: unmapped, yet an order or no reason",
                           s->status);
                return;
        }
        FUZZ_CHECK(o, "no Roistat order for mapped status %s: %s", s->status, why);
        q = json_dumps(o, JSON_COMPACT);
        FUZZ_CHECK(q, "Roistat order not serialisable");
        free(q);
        q = b24_query_string("crm.deal.add", o);
        free(q);
        json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct snapshot *s = NULL, *again = NULL;
        struct snapshot_error err;
        int r;

        r = snapshot_parse((const char *)data, size, &s, &err);
        if (r < 0) {
                FUZZ_CHECK(fuzz_terminated(err.field, sizeof(err.field)) &&
                               fuzz_terminated(err.message, sizeof(err.message)),
                           "error not terminated");
                FUZZ_CHECK(err.field[0] && err.message[0], "refusal without field or message");
                return 0;
        }
        FUZZ_CHECK(s && s->json, "accepted without canonical json");
        r = snapshot_parse(s->json, strlen(s->json), &again, &err);
        FUZZ_CHECK(r == 0, "canonical json refused: %s %s\n  canonical: %s", err.field, err.message,
                   s->json);
        FUZZ_CHECK(strcmp(s->json, again->json) == 0,
                   "canonical json not stable\n  first:  %s\n  second: %s", s->json, again->json);
        FUZZ_CHECK(!snapshot_is_newer(s, again) && !snapshot_is_newer(again, s),
                   "a snapshot is newer than its own canonical form");
        deliver(s);
        snapshot_free(again);
        snapshot_free(s);
        return 0;
}
