/*
 * A look into a store file from outside the store: the one integer a query answers, on a
 * connection of its own (a pragma, a count). For the SQLite backend's own test cases.
 */
#pragma once

#include <stdint.h>

/* The first column of the first row of `sql` on the file `path`, -1 without a row. */
int64_t sqlite_peek_int(const char *path, const char *sql);
