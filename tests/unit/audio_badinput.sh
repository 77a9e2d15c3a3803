#!/usr/bin/env bash
# audio_badinput: every bad input of issue #4 fails promptly with an error naming the problem; the path policy
# (roots after realpath, symlinks, size limit) refuses before opening; a 20-minute file stays in bounded memory.
# The checks live in tests/audio/badinput.py.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
exec /usr/bin/python3 "$ROOT/tests/audio/badinput.py" "${HOPPER_BUILD:-$ROOT/build}"
