#!/bin/sh
# The long form of the reliability proof (`make soak`; up to about 30 minutes):
#
#  1. the crash loop (tests/integration/crash_loop.py) against the release build:
#     SOAK_ORDERS orders (5000), SIGKILL SOAK_KILLS times (20) while the emulators inject
#     faults, then the order-by-order check of Roistat and Bitrix24;
#  2. the same against the ASan+UBSan build, when it exists (SOAK_ASAN=0 skips it);
#  3. a ThreadSanitizer build (TSAN_BUILD, default build-tsan: meson setup build-tsan
#     -Db_sanitize=thread --buildtype=debug, configured and built here when missing) under
#     tests/integration/tsan_http_load.py: concurrent signed POST /v1/orders while GET
#     /healthz is polled, both sinks delivering, for SOAK_TSAN_SECONDS (10); any
#     "WARNING: ThreadSanitizer" report fails the stage (SOAK_TSAN=0 skips it);
#  4. the whole integration suite with the daemon (and every CLI verb but the polled
#     `status`, see below) under valgrind memcheck (--leak-check=full; any error or leak
#     makes the process exit 99, which the harness reports as a failed clean stop; valgrind
#     reaches serve.ready in about 2 s, within the harness's 15 s). SOAK_VALGRIND=0 skips it.
#
# Usage: scripts/soak.sh [RELEASE_BUILD [ASAN_BUILD [TSAN_BUILD]]]
#        (default build, build-asan, build-tsan)
# Environment: SOAK_KILLS, SOAK_ORDERS, SOAK_SECONDS (chaos window; default orders/40),
# SOAK_SEED (default: from the clock; printed, and a failed run keeps its work directory),
# SOAK_CRASH=0 / SOAK_ASAN=0 / SOAK_TSAN=0 / SOAK_VALGRIND=0 skip parts,
# SOAK_TSAN_SECONDS the ThreadSanitizer load's length, SOAK_VALGRIND_PATTERN picks
# the integration test files for valgrind (default test_*.py).
# Prints the figures lines at the end; the exit status is non-zero if any part failed.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
build=${1:-build}
asan_build=${2:-build-asan}
tsan_build=${3:-build-tsan}
kills=${SOAK_KILLS:-20}
orders=${SOAK_ORDERS:-5000}
seed=${SOAK_SEED:-$(date +%s)}
seconds_opt=""
[ -n "${SOAK_SECONDS:-}" ] && seconds_opt="--seconds $SOAK_SECONDS"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=24"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=0
summary=""
started=$(date +%s)

note() { # a line for the closing summary
	summary="$summary$1
"
}

crash_loop() { # label, binary
	echo "== crash loop, $1: kills=$kills orders=$orders seed=$seed"
	# shellcheck disable=SC2086
	python3 tests/integration/crash_loop.py --bin "$2" --kills "$kills" --orders "$orders" \
		--seed "$seed" $seconds_opt 2>&1 | tee "$logs/crash-$1"
	line=$(grep '^crash: ' "$logs/crash-$1" | tail -n 1)
	# every figure after acked= must be 0, and the loop must not report any problem
	if [ -z "$line" ] || echo "$line" | sed 's/.* acked=[0-9]*//' | grep -Eq '=[1-9]' ||
		grep -q 'problem(s)' "$logs/crash-$1"; then
		failed=$((failed + 1))
		note "$1: ${line:-crash: no figures (the crash loop failed to run)}  FAILED"
	else
		note "$1: $line"
	fi
}

[ -x "$build/orderbridge" ] || { echo "soak: $build/orderbridge is missing (make build)" >&2; exit 2; }
# Test copies taken now, so that a rebuild during the half hour cannot swap a binary
# under a running test (or leave it half-linked).
mkdir "$logs/release" "$logs/asan"
cp "$build/orderbridge" "$logs/release/orderbridge"
[ -x "$asan_build/orderbridge" ] && cp "$asan_build/orderbridge" "$logs/asan/orderbridge"
if [ "${SOAK_TSAN:-1}" != 0 ]; then
	mkdir "$logs/tsan"
	if [ ! -x "$tsan_build/orderbridge" ]; then
		echo "== building $tsan_build (ThreadSanitizer)"
		if ! { { [ -f "$tsan_build/build.ninja" ] ||
			meson setup "$tsan_build" -Db_sanitize=thread --buildtype=debug; } &&
			ninja -C "$tsan_build" orderbridge; } >"$logs/tsan-build" 2>&1; then
			tail -n 30 "$logs/tsan-build"
		fi
	fi
	[ -x "$tsan_build/orderbridge" ] && cp "$tsan_build/orderbridge" "$logs/tsan/orderbridge"
fi

[ "${SOAK_CRASH:-1}" != 0 ] && crash_loop release "$logs/release/orderbridge"

if [ "${SOAK_CRASH:-1}" != 0 ] && [ "${SOAK_ASAN:-1}" != 0 ]; then
	if [ -x "$logs/asan/orderbridge" ]; then
		crash_loop asan "$logs/asan/orderbridge"
	else
		note "asan: skipped ($asan_build/orderbridge is missing; make asan)"
	fi
fi

if [ "${SOAK_TSAN:-1}" != 0 ]; then
	if [ -x "$logs/tsan/orderbridge" ]; then
		echo "== ThreadSanitizer: the HTTP and intake threads under POST, /healthz, report and import load"
		python3 tests/integration/tsan_http_load.py --bin "$logs/tsan/orderbridge" \
			--seconds "${SOAK_TSAN_SECONDS:-10}" >"$logs/tsan-load" 2>&1
		rc=$?
		line=$(grep -E '^daemon: [0-9]+ requests' "$logs/tsan-load" | tail -n 1)
		# fails on any report, and when the load did not reach every path it is meant to
		if [ $rc -ne 0 ] || grep -q 'WARNING: ThreadSanitizer' "$logs/tsan-load"; then
			tail -n 60 "$logs/tsan-load"
			failed=$((failed + 1))
			note "tsan: ${line:-the load did not finish}  FAILED"
		else
			note "tsan: $line"
		fi
	else
		failed=$((failed + 1))
		note "tsan: $tsan_build/orderbridge could not be built  FAILED"
	fi
fi

if [ "${SOAK_VALGRIND:-1}" != 0 ]; then
	if command -v valgrind >/dev/null 2>&1; then
		wrapper="$logs/orderbridge"
		bin=$logs/release/orderbridge
		# `status` is what the tests poll in their wait loops; under valgrind each call
		# takes over 2 s, which turns timing-bound waits into false failures, so it runs
		# natively unless SOAK_VALGRIND_STATUS=1 (it is covered by ASan in make test).
		cat >"$wrapper" <<EOF
#!/bin/sh
if [ "\$1" = status ] && [ "${SOAK_VALGRIND_STATUS:-0}" != 1 ]; then
	exec "$bin" "\$@"
fi
exec valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --quiet \\
	--num-callers=30 "$bin" "\$@"
EOF
		chmod +x "$wrapper"
		# The harness waits 15 s for "serve.ready": make sure valgrind starts well
		# within that on this machine, so a slow start is not mistaken for a failure.
		echo "== valgrind: time to serve.ready"
		ORDERBRIDGE_BIN="$wrapper" python3 - <<'PY' 2>&1 | tee "$logs/vg-ready"
import os, sys, time
sys.path.insert(0, "tests/integration")
from harness import Daemon, Roistat, Workdir
wd = Workdir()
roistat = Roistat(wd.path)
d = Daemon(wd.path, roistat=roistat)
t = time.monotonic()
d.start()
ready = time.monotonic() - t
d.stop()
roistat.stop()
wd.cleanup()
print(f"valgrind: serve.ready after {ready:.1f}s (the harness allows 15s)")
sys.exit(0 if ready < 10 else 1)
PY
		ready=$(grep '^valgrind: serve.ready' "$logs/vg-ready" | sed 's/^valgrind: //')
		echo "== integration suite under valgrind memcheck"
		ORDERBRIDGE_BIN="$wrapper" python3 tests/integration/run.py \
			--pattern "${SOAK_VALGRIND_PATTERN:-test_*.py}" 2>&1 | tee "$logs/vg"
		line=$(grep -E '^integration: [0-9]+ passed' "$logs/vg" | tail -n 1)
		if [ -z "$line" ] || ! echo "$line" | grep -q ' 0 failed'; then
			failed=$((failed + 1))
			note "valgrind: ${line:-the suite did not finish}; ${ready:-readiness unknown}  FAILED"
			grep -h -B2 -A25 '^==[0-9]*== ' "$logs/vg" | head -n 80
		else
			note "valgrind: $line; ${ready:-readiness unknown}"
		fi
	else
		failed=$((failed + 1))
		note "valgrind: not installed (apt-get install valgrind)  FAILED"
	fi
fi

echo "== soak summary ($(( ($(date +%s) - started) / 60 )) min)"
printf '%s' "$summary"
[ "$failed" -eq 0 ] && echo "soak: passed" || echo "soak: $failed part(s) failed"
[ "$failed" -eq 0 ]
