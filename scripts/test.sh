#!/bin/sh
# Runs every test of the project against the sanitizer build in $1 and ends with one
# line "N passed, M failed". Stages: C unit tests (cmocka, ASan+UBSan), the emulators'
# self-tests, the integration tests (the real daemon, built with ASan+UBSan, against the
# emulators), a brief run of each fuzz target, and the site kit (PHP module, browser
# snippet, cross-language contract), then the packaging (meson install, man pages, the .deb).
# A skipped test did not run: every skip counts as a failure unless ORDERBRIDGE_ALLOW_SKIP=1
# (then skips are counted and named in the summary). CI runs as root: nothing skips there.
set -u
build=${1:-build-asan}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=24"
allow_skip=${ORDERBRIDGE_ALLOW_SKIP:-0}
passed=0
failed=0
skipped=0
summary=""

count() { # stage name, log file, exit status
	line=$(grep -E '^([A-Za-z-]+: )?[0-9]+ passed, [0-9]+ failed' "$2" | tail -n 1)
	p=$(echo "$line" | sed -E 's/^([A-Za-z-]+: )?([0-9]+) passed.*/\2/')
	f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
	s=0
	echo "$line" | grep -qE ', [0-9]+ skipped' &&
		s=$(echo "$line" | sed -E 's/.*, ([0-9]+) skipped.*/\1/')
	[ -n "$line" ] || { p=0; f=1; }
	[ "$allow_skip" = 1 ] || f=$((f + s))
	[ "$3" -ne 0 ] && [ "$f" -eq 0 ] && f=1
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
	summary="$summary\n  $1: $p passed, $f failed, $s skipped"
}

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

echo "== unit tests (cmocka, ASan+UBSan)"
# the PostgreSQL store's unit tests need a server: a throwaway one on loopback, stopped
# right after them (the integration tests start their own)
pgdir=$(mktemp -d /tmp/obpg-unit.XXXXXX)
chmod 755 "$pgdir"
trap 'sh scripts/pg.sh stop "$pgdir" >/dev/null 2>&1; rm -rf "$logs" "$pgdir"' EXIT
if OB_TEST_PG_URL=$(sh scripts/pg.sh start "$pgdir"); then
	export OB_TEST_PG_URL OB_TEST_PG_PASSWORD_FILE="$pgdir/password"
else
	echo "PostgreSQL did not start: the store_pg unit tests will fail" >&2
fi
meson test -C "$build" --suite unit --print-errorlogs >"$logs/unit" 2>&1
rc=$?
sh scripts/pg.sh stop "$pgdir" >/dev/null 2>&1
# each cmocka binary reports "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s)"
python3 - "$build/meson-logs/testlog.json" >>"$logs/unit" <<'PY'
import json, re, sys
p = f = s = 0
for line in open(sys.argv[1]):
    t = json.loads(line)
    out = t.get("stdout", "") + t.get("stderr", "")
    m = re.search(r"\[  PASSED  \] (\d+) test", out)
    p += int(m.group(1)) if m else 0
    m = re.search(r"\[  SKIPPED \] (\d+) test", out)
    s += int(m.group(1)) if m else (1 if t["result"] == "SKIP" else 0)
    if m or t["result"] == "SKIP":
        print(f"SKIP: unit {t['name']}")
    m = re.search(r"\[  FAILED  \] (\d+) test", out)
    f += int(m.group(1)) if m else (0 if t["result"] in ("OK", "SKIP") else 1)
print(f"unit: {p} passed, {f} failed, {s} skipped")
PY
grep -E "^(Ok|Fail|unit|SKIP):" "$logs/unit"
[ $rc -ne 0 ] && cat "$logs/unit"
count unit "$logs/unit" $rc

echo "== emulator self-tests"
python3 -m unittest discover -s tests/emulators -p 'test_*.py' >"$logs/emu" 2>&1
rc=$?
n=$(grep -E '^Ran [0-9]+ test' "$logs/emu" | sed -E 's/Ran ([0-9]+).*/\1/')
s=$(grep -E '^OK \(.*skipped=[0-9]+' "$logs/emu" | sed -E 's/.*skipped=([0-9]+).*/\1/')
s=${s:-0}
if [ $rc -eq 0 ]; then echo "emulators: $((${n:-0} - s)) passed, 0 failed, $s skipped" >>"$logs/emu"; else
	cat "$logs/emu"; echo "emulators: 0 passed, ${n:-1} failed" >>"$logs/emu"; fi
tail -n 1 "$logs/emu"
count emulators "$logs/emu" $rc

echo "== integration tests (the daemon under ASan+UBSan)"
python3 tests/integration/run.py --jobs 2 --bin "$build/orderbridge" >"$logs/int" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -E -A30 '^(FAIL|ERROR):' "$logs/int" | head -n 200
grep -E '^SKIP: |test\(s\) skipped' "$logs/int"
tail -n 1 "$logs/int"
count integration "$logs/int" $rc

echo "== fuzz targets (libFuzzer, clang, ASan+UBSan; 5 s each, findings first)"
sh scripts/fuzz.sh 5 >"$logs/fuzz" 2>&1
rc=$?
grep -E '^fuzz:' "$logs/fuzz"
[ $rc -ne 0 ] && tail -n 40 "$logs/fuzz"
tail -n 1 "$logs/fuzz"
count fuzz "$logs/fuzz" $rc

if [ -x tests/site/run.sh ]; then
	echo "== site kit (PHP module, checkout snippet in Chromium, contract)"
	sh scripts/install-site-deps.sh >"$logs/site-deps" 2>&1 || cat "$logs/site-deps"
	ORDERBRIDGE_BIN="$root/$build/orderbridge" sh tests/site/run.sh >"$logs/site" 2>&1
	rc=$?
	[ $rc -ne 0 ] && tail -n 60 "$logs/site"
	tail -n 1 "$logs/site"
	count site "$logs/site" $rc
fi

echo "== package (meson install, man pages, the .deb built, installed, run under systemd, purged)"
python3 tests/package/test_package.py --build "$build" >"$logs/package" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -E -A20 '^(FAIL|ERROR):' "$logs/package" | head -n 120
tail -n 1 "$logs/package"
count package "$logs/package" $rc

printf "== summary$summary\n"
if [ "$skipped" -gt 0 ]; then
	if [ "$allow_skip" = 1 ]; then
		echo "$skipped skipped: allowed by ORDERBRIDGE_ALLOW_SKIP=1 (these tests did not run)"
	else
		echo "$skipped skipped: counted as failed (set ORDERBRIDGE_ALLOW_SKIP=1 to allow)"
	fi
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
