/* jansson's allocator set to xmalloc: see json.h for why. */
#include "base/json.h"

#include <stdlib.h>

#include <jansson.h>

#include "base/xalloc.h"

void json_alloc_init(void)
{
        json_set_alloc_funcs(xmalloc, free);
}
