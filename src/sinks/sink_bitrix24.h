/*
 * The Bitrix24 sink: for every order, a contact (found before it is created), a company
 * for a legal-entity buyer, exactly one deal (ORIGINATOR_ID = site, ORIGIN_ID = order id)
 * at the mapped stage, and the product rows — all packed into `batch` calls of at most
 * 50 commands under the portal's rate limit.
 */
#pragma once

#include "config/config.h"
#include "sinks/sink.h"

int sink_bitrix24_new(const struct config *cfg, const struct sink_ops **ret_ops, void **ret_ctx);
