#!/usr/bin/env bash
# chaos: the bounded run of the fault-injecting checker (tests/chaos/chaos.py; make chaos runs the long one).
# One seed, two daemons, ~1,500 messages of every kind (with and without ids, raw LPUSH and hopperctl,
# delayed, failing, crashing, duplicates of running messages, cancels, retries, malformed), while every fault
# kind is injected at least once: kill -9 of a daemon, a worker and Redis (AOF, fsync always), SIGSTOP of a
# daemon past its lease, a Redis outage past the lease, CLIENT KILL of normal and pub/sub connections, a
# wall-clock step of a daemon (build/chaos/clockshim.so), a full filesystem under one daemon's SQLite file.
# The checker prints its faults x outcomes table as comments and one ok/not ok line per invariant.
# CHAOS_SEED / CHAOS_JOBS override the seed and the size. Every attempt Redis counts must have its row.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${HOPPER_BUILD:-$ROOT/build}
args=(--build "$BUILD" --seed "${CHAOS_SEED:-1}" --jobs "${CHAOS_JOBS:-1500}" --daemons 2 --settle-max 120)
[ -n "${HOPPER_T:-}" ] && args+=(--dir "$HOPPER_T")
[ "${KEEP:-0}" = 1 ] && args+=(--keep)
exec /usr/bin/python3 "$ROOT/tests/chaos/chaos.py" "${args[@]}"
