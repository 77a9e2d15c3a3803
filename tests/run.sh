#!/usr/bin/env bash
#
# run.sh BUILD_DIR [SCENARIO...]: hopper's test runner (make check calls it with build or build-san).
#
#   1. every unit test binary in BUILD_DIR/tests/, each in its own temp dir;
#   2. every end-to-end scenario tests/e2e/*.sh, each with its own scratch dir, redis-server and daemons,
#      under a time limit;
#   3. every tests/unit/*.sh.
# Each "ok - NAME" line counts as a pass, each "not ok - NAME: why" as a failure; a program that exits
# non-zero (or times out) without printing "not ok" counts as one failure. With SCENARIO arguments only
# those scripts run. The output ends with exactly one line "N passed, N failed"; the exit status is 1 if
# anything failed.
#
# Environment: KEEP=1 keeps every scratch dir; SCENARIO_TIMEOUT (seconds, default 240, doubled for a
# sanitized build) bounds each scenario and unit test.

set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

if [ $# -lt 1 ]; then
	echo "usage: tests/run.sh BUILD_DIR [tests/e2e/SCENARIO.sh ...]" >&2
	exit 2
fi
BUILD=$1
shift
case $BUILD in
/*) ;;
*) BUILD=$ROOT/$BUILD ;;
esac
BUILD=${BUILD%/}

export HOPPER_BUILD=$BUILD
export HOPPER_SAN=0
case $(basename "$BUILD") in
*san*) HOPPER_SAN=1 ;;
esac
LIMIT=${SCENARIO_TIMEOUT:-240}
if [ "$HOPPER_SAN" = 1 ]; then
	LIMIT=$((LIMIT * 2))
	# Leak checks on: a daemon that leaks fails its clean-exit check. (The crash job restores SIG_DFL
	# before raising SIGSEGV, so ASan's own SEGV handler stays on for real crashes.)
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
fi

RUN_T=$(mktemp -d "${TMPDIR:-/tmp}/hopper-run.XXXXXX")
cleanup() {
	if [ "${KEEP:-0}" = 1 ]; then
		echo "# scratch dirs kept in $RUN_T"
	else
		rm -rf "$RUN_T"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PASSED=0
FAILED=0
FAILURES=()

# kill_leftovers DIR: ends what a scenario killed by its time limit could not: exactly the PIDs lib.sh
# recorded under DIR/pids, and only if they still run a program of ours.
kill_leftovers() {
	local f pid exe
	for f in "$1"/pids/*; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
		case $exe in
		*/hopperd | */hopper-worker | */hopper-web | */redis-server | */redis-check-* | */python3*) kill -s KILL "$pid" 2>/dev/null ;;
		esac
	done
}

# show_logs DIR: the tail of every log a failed scenario left.
show_logs() {
	local f n
	for f in "$1"/*.log "$1"/sql.err; do
		[ -s "$f" ] || continue
		n=40
		case $f in */redis.log) n=8 ;; esac
		echo "#   --- tail of $(basename "$f") ---"
		tail -n "$n" "$f" | sed 's/^/#   /'
	done
}

# run_one NAME DIR CMD...: runs one test program with its output to DIR/out, counts its lines.
run_one() {
	local name=$1 dir=$2
	shift 2
	mkdir -p "$dir"
	local start=$SECONDS rc
	(cd "$dir" && HOPPER_T=$dir exec timeout -k 10 "$LIMIT" "$@") </dev/null >"$dir/out" 2>"$dir/err"
	rc=$?
	kill_leftovers "$dir"
	cat "$dir/out"
	local p f
	p=$(grep -c '^ok - ' "$dir/out")
	f=$(grep -c '^not ok - ' "$dir/out")
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		echo "not ok - $name: timed out after ${LIMIT}s"
		f=$((f + 1))
	elif [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		echo "not ok - $name: exited with status $rc"
		f=$((f + 1))
	elif [ "$p" = 0 ] && [ "$f" = 0 ]; then
		echo "not ok - $name: ran no check"
		f=1
	fi
	PASSED=$((PASSED + p))
	FAILED=$((FAILED + f))
	if [ "$f" != 0 ]; then
		FAILURES+=("$name ($f)")
		if [ -s "$dir/err" ]; then
			echo "#   --- stderr ---"
			tail -n 30 "$dir/err" | sed 's/^/#   /'
		fi
		show_logs "$dir"
	fi
	echo "# $name: $p passed, $f failed ($((SECONDS - start))s)"
}

if [ $# -gt 0 ]; then
	SCENARIOS=("$@")
	UNITS=()
	SCRIPTS=()
else
	SCENARIOS=(tests/e2e/*.sh)
	UNITS=()
	for u in "$BUILD"/tests/*; do
		[ -f "$u" ] && [ -x "$u" ] && UNITS+=("$u")
	done
	SCRIPTS=()
	for u in tests/unit/*.sh; do
		[ -f "$u" ] && SCRIPTS+=("$u")
	done
	[ "${#UNITS[@]}" -gt 0 ] || echo "# no unit test binaries in $BUILD/tests"
fi

echo "# hopper tests: build $BUILD${HOPPER_SAN:+ (san=$HOPPER_SAN)}"
for u in "${UNITS[@]}"; do
	n=$(basename "$u")
	echo "# --- unit: $n"
	run_one "$n" "$RUN_T/unit.$n" "$u"
done
for s in "${SCENARIOS[@]}"; do
	[ -f "$s" ] || { echo "not ok - $s: no such scenario"; FAILED=$((FAILED + 1)); FAILURES+=("$s"); continue; }
	n=$(basename "$s" .sh)
	echo "# --- e2e: $n"
	case $s in /*) ;; *) s=$ROOT/$s ;; esac
	run_one "$n" "$RUN_T/e2e.$n" bash "$s"
done
for s in "${SCRIPTS[@]}"; do
	n=$(basename "$s" .sh)
	echo "# --- unit script: $n"
	run_one "$n" "$RUN_T/script.$n" bash "$ROOT/$s"
done

echo "#"
if [ "$FAILED" -gt 0 ]; then
	echo "# failed: ${FAILURES[*]}"
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
