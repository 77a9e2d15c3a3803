# shellcheck shell=bash
# relay CMD...: runs CMD and turns its "ok - NAME" / "not ok - NAME: why" lines into lib.sh checks (so the
# scenario counts them), passing other lines through as notes. Fails one check if CMD exits non-zero.
relay() {
	local line st
	while IFS= read -r line; do
		case $line in
		"ok - "*) ok "${line#ok - }" ;;
		"not ok - "*)
			line=${line#not ok - }
			not_ok "${line%%: *}" "${line#*: }"
			;;
		*) note "$line" ;;
		esac
	done < <("$@" 2>"$T/relay.err"; echo "# exit $?" >"$T/relay.st")
	st=$(cat "$T/relay.st" 2>/dev/null)
	if [ "$st" != "# exit 0" ]; then
		not_ok "$*" "exited: $st; $(tail -3 "$T/relay.err")"
	fi
}
