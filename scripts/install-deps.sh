#!/bin/sh
# Installs the Debian packages orderbridge needs, only those that are missing, with a
# single `apt-get update` before the one install. Usage: install-deps.sh [test]
#   (no argument)  building and running: compilers, meson, the libraries, python3
#   test           also clang and valgrind (fuzzing, soak) and what the site kit's tests
#                  use: php-cli with curl, chromium, node/npm
set -eu
pkgs="meson ninja-build pkg-config gcc g++ clang libcurl4-openssl-dev libmicrohttpd-dev
libjansson-dev libsqlite3-dev libpq-dev libinih-dev libssl-dev libcmocka-dev libsystemd-dev
libphonenumber-dev python3 curl"
# g++ and libphonenumber-dev: phone numbers are read by libphonenumber (C++) through
# src/model/phone_lib.cc; g++ also brings the C++ library headers clang++ compiles against
# clang and its sanitizer runtime build the fuzz targets (make test runs them briefly)
# libfaketime steps the wall clock under the daemon (test_defects.ClockStepBack)
# python3-prometheus-client parses /metrics as Prometheus would (test_operator.Metrics);
# systemd gives systemd-analyze (the unit's exposure score); debhelper, dpkg-dev and
# fakeroot build the .deb, lintian checks it (tests/package/test_package.py);
# postgresql-15 is the server the PostgreSQL store's tests start (scripts/pg.sh)
[ "${1:-}" = test ] && pkgs="$pkgs clang libclang-rt-14-dev valgrind libfaketime
python3-prometheus-client systemd debhelper dpkg-dev fakeroot lintian postgresql-15"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ "${1:-}" = test ]; then
	# tools found on PATH count as present, whatever installed them
	command -v php >/dev/null 2>&1 || missing="$missing php-cli php-curl"
	if command -v php >/dev/null 2>&1 && ! php -m 2>/dev/null | grep -qx curl; then
		missing="$missing php-curl"
	fi
	command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
	command -v node >/dev/null 2>&1 || missing="$missing nodejs"
	command -v npm >/dev/null 2>&1 || missing="$missing npm"
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
