#!/bin/sh
# Runs every test of the site kit and ends with one line: "N passed, M failed".
#   1. php -l on every PHP file of site/ and tests/site/ (one test per file)
#   2. the module's unit tests under Debian's phpunit (tests/site/phpunit.xml)
#   3. the snippet's tests: ES5/size, then headless Debian chromium (node --test browser/)
#   4. the contract test against the real daemon, when $ORDERBRIDGE_BIN (default
#      build/orderbridge) exists; otherwise it says that it skipped it
# First it installs what is missing (scripts/install-site-deps.sh); set
# SITE_TESTS_NO_INSTALL=1 to skip that. Exit code 0 only when nothing failed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
passed=0
failed=0
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

add() { passed=$((passed + $1)); failed=$((failed + $2)); }

if [ "${SITE_TESTS_NO_INSTALL:-0}" != 1 ]; then
	sh "$root/scripts/install-site-deps.sh" || { echo "site: installing the test dependencies failed"; }
fi

echo "== php -l"
lint_ok=0
lint_bad=0
for f in $(find "$root/site" "$here" -name node_modules -prune -o -name '*.php' -print | sort); do
	if out=$(php -l "$f" 2>&1); then
		lint_ok=$((lint_ok + 1))
	else
		lint_bad=$((lint_bad + 1))
		echo "not ok - php -l ${f#"$root"/}: $out"
	fi
done
echo "php -l: $lint_ok passed, $lint_bad failed"
add "$lint_ok" "$lint_bad"

echo "== PHP unit tests (phpunit -c tests/site/phpunit.xml)"
phpunit -c "$here/phpunit.xml" --log-junit "$log/junit.xml" >"$log/php" 2>&1
php_rc=$?
# The counts come from PHPUnit's JUnit report: tests minus failures, errors, skipped.
summary=$(php "$here/junit_count.php" "$log/junit.xml" 2>/dev/null)
case "$summary" in
*" passed, "*" failed") ;;
*) summary="0 passed, 1 failed" ;;
esac
if [ "$php_rc" != 0 ] || [ "${summary#* passed, }" != "0 failed" ]; then
	cat "$log/php"
	case "$summary" in *" 0 failed") summary="${summary%%,*}, 1 failed" ;; esac
else
	tail -n 1 "$log/php"
fi
echo "php unit: $summary"
add "$(echo "$summary" | cut -d' ' -f1)" "$(echo "$summary" | cut -d' ' -f3)"

echo "== snippet tests (node --test, chromium)"
(cd "$here" && node --test browser/) >"$log/node" 2>&1
node_rc=$?
np=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log/node" | tail -n 1)
nf=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log/node" | tail -n 1)
if [ -z "$np" ] || [ -z "$nf" ]; then
	np=0
	nf=1
	cat "$log/node"
elif [ "$nf" != 0 ] || [ "$node_rc" != 0 ]; then
	cat "$log/node"
	[ "$nf" != 0 ] || nf=1
else
	grep -E '^(not )?ok ' "$log/node"
fi
echo "snippet: $np passed, $nf failed"
add "$np" "$nf"

echo "== contract test (PHP module against the real daemon)"
sh "$here/contract_test.sh" >"$log/contract" 2>&1
rc=$?
if [ "$rc" = 77 ]; then
	cat "$log/contract"
else
	sed 's/^\([0-9]* passed, [0-9]* failed\)$/contract: \1/' "$log/contract"
	summary=$(tail -n 1 "$log/contract")
	case "$summary" in
	*" passed, "*" failed") add "$(echo "$summary" | cut -d' ' -f1)" "$(echo "$summary" | cut -d' ' -f3)" ;;
	*) add 0 1 ;;
	esac
	[ "$rc" = 0 ] || case "$summary" in *" 0 failed") add 0 1 ;; esac
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
