#!/usr/bin/env bash
# audio_rhythm_key: tempo (Acc1, no octave errors, candidates, beats) on click tracks, drum loops and mixed
# material 60-200 BPM at 8-96 kHz in WAV/FLAC/Ogg plus one 10-minute track, aubio tempo on the same files, and
# the key in all 24 keys with its DJ notations. The checks live in tests/audio/rhythm_key.py.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
exec /usr/bin/python3 "$ROOT/tests/audio/rhythm_key.py" "${HOPPER_BUILD:-$ROOT/build}"
