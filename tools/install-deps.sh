#!/bin/sh
# Installs the Debian packages hopper needs to build, test, benchmark and demo.
# The one place that lists them: make, make check, make demo and .ci/run all call it.
# As root it runs apt-get; otherwise it prints the exact command and fails.
set -eu

PKGS="build-essential pkg-config clang clang-format libclang-rt-14-dev \
libhiredis-dev libev-dev libcurl4-openssl-dev libsqlite3-dev libsodium-dev libjansson-dev libsndfile1-dev \
libfftw3-dev libebur128-dev redis-server redis-tools sqlite3 python3 python3-redis python3-jsonschema python3-celery \
procps python3-numpy ffmpeg sox aubio-tools util-linux \
libmicrohttpd-dev chromium chromium-driver python3-selenium prometheus wrk"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "hopper: missing Debian packages:$missing" >&2
	echo "hopper: run as root:  apt-get update && apt-get install -y --no-install-recommends$missing" >&2
	exit 1
fi
echo "hopper: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || apt-get update
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
