#!/bin/sh
# The cross-language contract test: the PHP module's signed snapshots against the real
# orderbridge daemon (PHPUnit, contract/ContractTest.php). ORDERBRIDGE_BIN names the
# binary (default: the repository's build/orderbridge). Ends with "N passed, M failed".
# Exit 0 passed, 1 failed, 77 skipped (no binary).
set -u
here=$(cd "$(dirname "$0")" && pwd)
ORDERBRIDGE_BIN=${ORDERBRIDGE_BIN:-$here/../../build/orderbridge}
if [ ! -x "$ORDERBRIDGE_BIN" ]; then
	echo "contract test skipped: no orderbridge binary at $ORDERBRIDGE_BIN (set ORDERBRIDGE_BIN)"
	exit 77
fi
export ORDERBRIDGE_BIN
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
phpunit -c "$here/contract/phpunit.xml" --testdox --log-junit "$log/junit.xml" 2>&1
rc=$?
summary=$(php "$here/junit_count.php" "$log/junit.xml") || summary="0 passed, 1 failed"
[ "$rc" = 0 ] || case "$summary" in *" 0 failed") summary="${summary%%,*}, 1 failed" ;; esac
echo "$summary"
case "$summary" in *" 0 failed") exit 0 ;; *) exit 1 ;; esac
