#!/bin/sh
# The cross-language contract test: the PHP module's signed snapshots against the real
# orderbridge daemon (see contract/contract_test.php for the cases).
# ORDERBRIDGE_BIN names the binary (default /work/main/build/orderbridge, else the
# repository's build/orderbridge). Exit 0 passed, 1 failed, 77 skipped (no binary).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${ORDERBRIDGE_BIN:-}" ]; then
	ORDERBRIDGE_BIN=/work/main/build/orderbridge
	[ -x "$ORDERBRIDGE_BIN" ] || ORDERBRIDGE_BIN="$here/../../build/orderbridge"
fi
export ORDERBRIDGE_BIN
exec php "$here/contract/contract_test.php"
