#!/usr/bin/env bash
# client_libhopper: the libhopper example program (client/examples/submit_and_wait.c) against a real daemon:
# linked statically by make, and compiled here against the shared library through the generated hopper.pc
# (pkg-config), over the Unix socket (peer credentials) and over TCP (a token); the events arrive in order
# and the exit status is the job's outcome. Also: the shared library's soname and its exported symbols.
. "$(dirname "$0")/../lib.sh"

EX=$HOPPER_BUILD/examples/submit_and_wait
PORT=$(py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_redis
start_hopperd n1 --workers=2 --ctl-tcp="127.0.0.1:$PORT" --max-attempts=1 || exit 1
TOKEN=$(ctl token create lib --scopes submit,read 2>/dev/null)

# events_ok FILE: the progress values of the "event" lines never go back and the last state is succeeded.
events_ok() {
	awk '/^event/ { for (i = 1; i <= NF; i++) if ($i ~ /^progress=/) { p = $i; sub(/progress= */, "", p);
		sub(/%/, "", p); if (p + 0 < last) bad = 1; last = p + 0 } n++ }
		END { exit !(n >= 2 && !bad) }' "$1"
}

# --- the statically linked example ---
HOME=$T "$EX" "$CTL_SOCK" sleep '{"ms":500}' >"$T/static.out" 2>&1
check_eq "static example over unix exits 0" "$?" 0
check_match "it prints the id" "$(head -n 1 "$T/static.out")" '^submitted [0-9a-f-]{36}$'
check "its progress events are in order" events_ok "$T/static.out"
check_eq "it ends succeeded" "$(tail -n 1 "$T/static.out")" "final state succeeded"
# TCP pins the daemon's key: here given as printed by hopperd --print-pubkey
export HOPPER_SERVER_KEY=$("$HOPPER_BUILD/hopperd" --print-pubkey --db-path="$T/n1.db" 2>/dev/null)
HOPPER_TOKEN=$TOKEN "$EX" "127.0.0.1:$PORT" sleep '{"ms":300}' >"$T/tcp.out" 2>&1
check_eq "static example over TCP with a token exits 0" "$?" 0
check "over TCP too, events in order" events_ok "$T/tcp.out"
HOPPER_TOKEN=$TOKEN "$EX" "127.0.0.1:$PORT" fail '{"message":"x"}' >"$T/fail.out" 2>&1
st=$?
check_eq "a failing job: its final state" "$(tail -n 1 "$T/fail.out")" "final state dead"
check_eq "a failing job: exit 1" "$st" 1
"$EX" "127.0.0.1:$PORT" noop >/dev/null 2>&1
check_eq "TCP without a token: exit 2 (usage)" "$?" 2

# --- the shared library through pkg-config ---
SO=$HOPPER_BUILD/libhopper.so
check_match "soname carries the major version" "$(readelf -d "$SO.0.1.0" 2>&1 | grep SONAME)" 'libhopper\.so\.0\]'
exported=$(nm -D --defined-only "$SO" | awk '{ print $3 }' | sort)
check_eq "only hopper_* functions are exported" "$(printf '%s\n' "$exported" | grep -vc '^hopper_')" 0
check_ge "every API function is exported" "$(printf '%s\n' "$exported" | grep -c '^hopper_')" 28
# A private install tree: the library, the header and hopper.pc with its prefix pointed there.
mkdir -p "$T/pfx/lib/pkgconfig" "$T/pfx/include"
cp -P "$HOPPER_BUILD"/libhopper.so* "$HOPPER_BUILD/libhopper.a" "$T/pfx/lib/"
cp "$HOPPER_ROOT/client/hopper.h" "$T/pfx/include/"
sed "s|^prefix=.*|prefix=$T/pfx|" "$HOPPER_BUILD/hopper.pc" >"$T/pfx/lib/pkgconfig/hopper.pc"
export PKG_CONFIG_PATH=$T/pfx/lib/pkgconfig
check_match "pkg-config --libs hopper" "$(pkg-config --libs hopper)" "-L$T/pfx/lib -lhopper"
san=()
[ "$HOPPER_SAN" = 1 ] && san=(-fsanitize=address,undefined)
# shellcheck disable=SC2046
cc "${san[@]}" -o "$T/dyn" "$HOPPER_ROOT/client/examples/submit_and_wait.c" $(pkg-config --cflags --libs hopper) \
	2>"$T/cc.err"
check_eq "the example compiles against the shared library with pkg-config" "$?" 0
check_match "it needs libhopper.so.0" "$(readelf -d "$T/dyn" 2>&1 | grep NEEDED)" 'libhopper\.so\.0'
HOME=$T LD_LIBRARY_PATH=$T/pfx/lib "$T/dyn" "$CTL_SOCK" sleep '{"ms":300}' >"$T/dyn.out" 2>&1
check_eq "the dynamically linked example exits 0" "$?" 0
check "its events are in order" events_ok "$T/dyn.out"
check_eq "it ends succeeded" "$(tail -n 1 "$T/dyn.out")" "final state succeeded"

finish_hopperd n1
end_scenario
