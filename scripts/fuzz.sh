#!/bin/sh
# Runs every libFuzzer target in tests/fuzz for SECONDS_PER_TARGET seconds each (default
# 60) and ends with one line "N passed, M failed"; a target passes when it found nothing.
# Usage: fuzz.sh [SECONDS_PER_TARGET]   (env FUZZ_BUILD: build directory, default build-fuzz)
# Installs clang and its runtime with apt-get when missing (as root), sets up the clang
# build with -Dfuzz=true, and builds only the fuzz targets. Each target starts from a
# scratch copy of its seed corpus, so the seeds in the repository stay as they are; what
# a target finds is kept in $FUZZ_BUILD/findings/ and named on its line.
set -u
seconds=${1:-60}
build=${FUZZ_BUILD:-build-fuzz}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
case $seconds in '' | *[!0-9]*)
	echo "usage: fuzz.sh [SECONDS_PER_TARGET]" >&2
	exit 2
	;;
esac

# -- packages: only those missing, with a single apt-get update before the one install
pkgs="meson ninja-build pkg-config clang g++ libclang-rt-14-dev libcurl4-openssl-dev
libmicrohttpd-dev libjansson-dev libsqlite3-dev libinih-dev libssl-dev libcmocka-dev
libphonenumber-dev"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "fuzz: missing packages:$missing (run as root to install them)" >&2
		exit 1
	fi
	echo "fuzz: installing$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086
	apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
		exit 1
fi

# -- the clang build, with -Werror like every other build
if [ ! -f "$build/build.ninja" ]; then
	CC=clang CXX=clang++ meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined \
		-Db_lundef=false --buildtype=debugoptimized \
		>"$build.setup.log" 2>&1 || { cat "$build.setup.log"; exit 1; }
	rm -f "$build.setup.log"
elif ! meson introspect --buildoptions "$build" | grep -q '"name": "fuzz", "value": true'; then
	meson configure "$build" -Dfuzz=true >/dev/null || exit 1
fi
targets=""
for f in tests/fuzz/fuzz_*.c; do
	t=${f#tests/fuzz/fuzz_}
	targets="$targets ${t%.c}"
done
ninja_targets=""
for t in $targets; do ninja_targets="$ninja_targets tests/fuzz/fuzz_$t"; done
# shellcheck disable=SC2086
ninja -C "$build" $ninja_targets >"$build/fuzz-build.log" 2>&1 || {
	cat "$build/fuzz-build.log"
	exit 1
}

# -- the runs
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export ASAN_OPTIONS="detect_leaks=1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
findings="$build/findings"
mkdir -p "$findings"
passed=0
failed=0
for t in $targets; do
	mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
	cp tests/fuzz/corpus/"$t"/* "$work/$t/corpus/" 2>/dev/null
	# inputs that once broke a target run first: a regression check once fixed
	cp tests/fuzz/findings/"$t"-* "$work/$t/corpus/" 2>/dev/null
	dict=""
	[ -f "tests/fuzz/dict/$t.dict" ] && dict="-dict=tests/fuzz/dict/$t.dict"
	# shellcheck disable=SC2086
	"$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/$t/artifacts/" \
		$dict "$work/$t/corpus" </dev/null >"$work/$t/log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t/log" | tail -n 1)
	[ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$work/$t/log" | tail -n 1)
	crash=""
	for f in "$work/$t/artifacts"/crash-* "$work/$t/artifacts"/leak-* \
		"$work/$t/artifacts"/timeout-* "$work/$t/artifacts"/oom-*; do
		[ -f "$f" ] || continue
		cp "$f" "$findings/$t-$(basename "$f")"
		crash="$findings/$t-$(basename "$f")"
	done
	if [ $rc -ne 0 ] && [ -z "$crash" ]; then
		crash="$findings/$t.log (exit $rc, no input kept)"
	fi
	if [ -n "$crash" ]; then
		cp "$work/$t/log" "$findings/$t.log"
		# what went wrong, and the frames in our code
		grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz oracle failed)|runtime error:|^    #[0-9]+ .* in [^ ]+ [^ ]*(/src/|/tests/fuzz/)[^ ]*:[0-9]+' \
			"$work/$t/log" | head -n 16 | sed 's/^/  /'
		echo "fuzz: $t execs=${execs:-0} findings=$crash"
		failed=$((failed + 1))
	else
		echo "fuzz: $t execs=${execs:-0} findings=0"
		passed=$((passed + 1))
	fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
