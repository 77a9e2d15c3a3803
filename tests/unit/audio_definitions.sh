#!/usr/bin/env bash
# audio_definitions: every figure against its stated reference (librosa definitions re-implemented in numpy,
# libebur128 and ffmpeg with channel maps, degenerate rates, every libsndfile format, rounding). The checks live
# in tests/audio/definitions.py.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
exec /usr/bin/python3 "$ROOT/tests/audio/definitions.py" "${HOPPER_BUILD:-$ROOT/build}"
