#!/bin/sh
# Installs what the site kit's tests need (tests/site/run.sh): php-cli with curl, phpunit,
# Debian's chromium, Node.js with npm, and playwright-core in tests/site/node_modules.
# Idempotent: each step runs only when its tool is missing, so a second run is quick.
# The browser is always Debian's package: never `npx playwright install`.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
missing=""

need() { # need COMMAND PACKAGE: queue PACKAGE when COMMAND is not on PATH
	command -v "$1" >/dev/null 2>&1 || missing="$missing $2"
}

need php php-cli
need phpunit phpunit
need chromium chromium
need node nodejs
need npm npm
# The module uses ext/curl when present; the tests exercise both transports.
if command -v php >/dev/null 2>&1 && ! php -m 2>/dev/null | grep -qx curl; then
	missing="$missing php-curl"
fi

if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "install-site-deps: need root to install:$missing" >&2
		exit 1
	fi
	echo "install-site-deps: installing$missing"
	apt-get update -qq
	# shellcheck disable=SC2086 # word splitting of the package list is intended
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

if [ ! -d "$root/tests/site/node_modules/playwright-core" ]; then
	echo "install-site-deps: npm ci in tests/site"
	(cd "$root/tests/site" && { npm ci --no-audit --no-fund || npm install --no-audit --no-fund; })
fi
