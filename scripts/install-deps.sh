#!/bin/sh
# Installs the Debian packages that building and testing orderbridge need, only when
# something is missing, with one `apt-get update` before the first install.
set -eu
pkgs="meson ninja-build pkg-config gcc clang libcurl4-openssl-dev libmicrohttpd-dev
libjansson-dev libsqlite3-dev libinih-dev libssl-dev libcmocka-dev python3 curl"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
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
