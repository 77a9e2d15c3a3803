#!/usr/bin/env bash
# audio_accuracy: hopper-analyze on generated signals with known answers (issue #4's tolerances), and against
# libebur128, ffmpeg's ebur128 filter and sox stats on the same files. The checks live in tests/audio/accuracy.py.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
exec /usr/bin/python3 "$ROOT/tests/audio/accuracy.py" "${HOPPER_BUILD:-$ROOT/build}"
