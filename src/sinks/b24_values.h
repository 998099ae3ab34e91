/*
 * Values a Bitrix24 portal refuses or rewrites inside a batch command, checked before the
 * command is built. Pure functions: no I/O, unit-tested against the emulator's port of the
 * portal's own rules (tests/emulators/bitrix24_emu.py).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* crm_field_multi.php CheckComplexFields: a longer multi-field value refuses the add. */
#define B24_MULTIFIELD_MAX 250
/* PHP's max_input_vars is 1000 by default: a batch command's query string keeps that many
 * variables and drops the rest silently. Commands past this many go as JSON instead. */
#define B24_INPUT_VARS_MAX 900

/* True when the portal takes `email` (already trimmed) for an EMAIL multi-field. */
bool b24_email_ok(const char *email);

/* True when a text holds what the portal would substitute in a batch command. */
bool b24_text_has_reference(const char *s);

/* True when a command with these parameters must not go into a batch: a value holds a
 * reference, or there are more variables than the portal parses. */
bool b24_needs_direct(json_t *params);
