#!/usr/bin/env bash
# workflow_nested_secrets (issue 11, item 6, nested handlers): a workflow's secret ({{env.API_TOKEN}}) reaches
# lines that nested code writes - an exec step's program prints it, an audio.analyze step (the audio handler
# run inside the workflow job) fails on a path derived from it, so its error, progress and log lines name it.
# Each line is checked to exist masked (***), then every Redis value, every SQLite cell, the daemon's log and
# the status and logs replies are searched for the secret in every encoding. (An enqueue step's child is a
# job of its own: values passed to it are its arguments by design, so it is not part of this check.)
. "$(dirname "$0")/../lib.sh"
. "$HOPPER_ROOT/tests/workflow/lib.sh"

export API_TOKEN='Zq9xK7nested-S3cr3t-v4lue'
mkdir -p "$T/audio"
start_redis
start_hopperd n1 --workers=1 --workflow-env-allow=API_TOKEN --workflow-exec-enabled=1 \
	--workflow-exec-programs=/bin/echo,/bin/sh --audio-roots="$T/audio" || exit 1

DEF=$(cat <<J
{"steps": [
  {"id": "say", "type": "exec", "params": {"argv": ["/bin/echo", "token={{env.API_TOKEN}}"]}},
  {"id": "err", "type": "exec", "depends_on": ["say"], "params": {"argv": ["/bin/sh", "-c", "echo \"\$0\" >&2; exit 0", "e={{env.API_TOKEN}}"]}},
  {"id": "audio", "type": "audio.analyze", "depends_on": ["err"], "params": {"path": "$T/audio/{{env.API_TOKEN}}.wav"}}
]}
J
)
push_job default "$(wf_job ns-run "{\"definition\":$DEF}" '"max_attempts":1')"
wait_for "ns-run ends" 30 is_final ns-run
wait_for "its rows" 10 sql_is n1 "SELECT count(*) FROM workflow_steps WHERE job_id='ns-run'" 3
check_eq "the run failed at the audio step" "$(jstate ns-run)" failed
q() { sql n1 "SELECT $2 FROM workflow_steps WHERE job_id='ns-run' AND step_id='$1'"; }
check_match "the exec step's stdout line is masked" "$(q say "json_extract(output, '\$.stdout')")" 'token=\*\*\*'
check_match "the exec step's stderr line is masked" "$(q err "json_extract(output, '\$.stderr')")" 'e=\*\*\*'
check_match "the audio handler's error names the path, masked" "$(q audio error)" '/\*\*\*\.wav'
check_match "... and so does the job's error" "$(jfield ns-run error)" '\*\*\*\.wav'
ctl --json status ns-run >"$T/status.json" 2>&1
ctl --json logs ns-run >"$T/logs.json" 2>&1
check_match "status reply read" "$(cat "$T/status.json")" 'ns-run'
check_match "logs reply read" "$(cat "$T/logs.json")" 'audio'

export SCENARIO HOPPER_ROOT
py "$HOPPER_ROOT/tests/workflow/secret_scan.py" "$SOCK" "$T/n1.db" "$T/n1.log" "$T/status.json" "$T/logs.json"
[ $? -eq 0 ] || not_ok "python checks" "the script exited non-zero"
end_scenario
