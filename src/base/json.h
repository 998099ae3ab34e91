/*
 * jansson under the project's allocation rule (style rule 4): its allocations abort on
 * out-of-memory, like every other small internal allocation, so that a NULL from jansson
 * can only mean invalid input (a string that is not UTF-8, a NULL argument, a wrong type),
 * never a silent loss under memory pressure. Call json_alloc_init() once, in main(),
 * before any thread starts and before the first jansson call.
 */
#pragma once

void json_alloc_init(void);
