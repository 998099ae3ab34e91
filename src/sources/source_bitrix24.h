/*
 * The Bitrix24 source: deals read from the portal. Bitrix24 posts an outgoing webhook
 * once and never again (b24restdocs api-reference/events: "the queue server will log the
 * failure but will not resend"), so the route POST /v1/bitrix24/events only hands the
 * deal id over (source_notify) and this source does the work, and a poll of the deals
 * modified since a stored watermark repairs whatever an event lost. Each deal, whichever
 * way it came, is handled alike: the deal of a site order goes to two-way sync's
 * decision (sinks/site_sync.h); any other deal becomes the order "b24-deal-<ID>" for
 * Roistat (sources/b24_deal.h).
 */
#pragma once

#include "config/config.h"
#include "sources/registry.h"
#include "sources/source.h"

/* The hints that may wait; one more is refused with -ENOSPC (the poll finds it). */
#define SOURCE_B24_QUEUE_MAX 10000

/* Where the poll's watermark is kept (store meta): the highest DATE_MODIFY handled, as
 * the portal wrote it ("2024-08-30T12:19:57+02:00"). */
#define SOURCE_B24_WATERMARK_KEY "b24.poll.watermark"

/* The kind the registry lists: on when [bitrix24] is. */
extern const struct source_kind source_bitrix24_kind;

int source_bitrix24_new(const struct config *cfg, struct source **ret);
