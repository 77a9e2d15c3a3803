#!/bin/sh
# Installs the Debian packages hopper needs to build, test, benchmark and demo.
# The one place that lists them: make, make check, make demo and .ci/run all call it.
# As root it runs apt-get; otherwise it prints the exact command and fails.
set -eu

# `install-deps.sh bench`: the optional group of make bench-peers and bench-redis-cost (valgrind) only (never needed by make check): the peers
# hopperd is compared with. Debian: beanstalkd, ruby-sidekiq (Celery is python3-celery above); npm: BullMQ
# into bench/peers/node_modules, pinned by bench/peers/package-lock.json (npm ci).
if [ "${1:-}" = bench ]; then
	"$0" || exit 1
	BENCH_PKGS="beanstalkd ruby-sidekiq nodejs valgrind"
	for p in $BENCH_PKGS; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' && continue
		if [ "$(id -u)" -ne 0 ]; then
			echo "hopper: bench peer $p is missing: run as root: apt-get install -y $p" >&2
			continue
		fi
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null ||
			echo "hopper: bench peer $p could not be installed" >&2
	done
	peers=$(dirname "$0")/../bench/peers
	if [ ! -d "$peers/node_modules/bullmq" ]; then
		if command -v npm >/dev/null; then
			(cd "$peers" && npm ci --no-audit --no-fund --ignore-scripts >/dev/null) ||
				echo "hopper: npm ci of BullMQ in bench/peers failed" >&2
		else
			echo "hopper: npm is missing: BullMQ will not be benchmarked" >&2
		fi
	fi
	exit 0
fi

PKGS="build-essential pkg-config clang clang-format libclang-rt-14-dev \
libhiredis-dev libev-dev libcurl4-openssl-dev libsqlite3-dev libsodium-dev libjansson-dev libsndfile1-dev \
libfftw3-dev libebur128-dev redis-server redis-tools sqlite3 python3 python3-redis python3-jsonschema python3-celery \
procps tzdata python3-numpy python3-soundfile ffmpeg sox aubio-tools util-linux time \
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
