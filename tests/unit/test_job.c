/* Job parsing and validation, state rules, outcomes and backoff. */
#include "job.h"
#include "t.h"
#include "t_job.h"

int
main(void)
{
	struct job_spec spec;
	char err[256];
	T_CHECK("minimal job parses", parse("{\"type\":\"noop\"}", &spec, err) == 0);
	T_CHECK("defaults applied", spec.max_attempts == 3 && spec.timeout_s == 300 && spec.id[0] == '\0');
	T_STREQ("queue comes from the list", spec.queue, "default");
	T_CHECK("args default to an empty object", json_is_object(spec.args) && json_object_size(spec.args) == 0);
	job_spec_free(&spec);

	T_CHECK("full job parses",
	        parse("{\"id\":\"a-1\",\"type\":\"sleep\",\"args\":{\"ms\":5},\"queue\":\"default\",\"max_attempts\":7,"
	              "\"timeout_s\":2.5,\"created_at\":1700000000.5,\"run_at\":1700000100,\"owner\":\"alice\","
	              "\"idempotency_key\":\"k1\",\"backoff_s\":0.5,\"backoff_max_s\":10,\"extra\":1}",
	              &spec, err) == 0);
	T_CHECK("fields kept", spec.max_attempts == 7 && spec.timeout_s == 2.5 && spec.run_at == 1700000100 &&
	                               spec.backoff_base_s == 0.5 && spec.backoff_max_s == 10);
	T_STREQ("id kept", spec.id, "a-1");
	T_STREQ("owner kept", spec.owner, "alice");
	T_STREQ("idempotency key kept", spec.idempotency_key, "k1");
	job_spec_free(&spec);

	T_CHECK("malformed JSON refused", refused("{\"type\":", "malformed JSON"));
	T_CHECK("array refused", refused("[1,2]", "must be a JSON object"));
	T_CHECK("missing type refused", refused("{\"args\":{}}", "'type' is required"));
	T_CHECK("unknown type refused", refused("{\"type\":\"nope\"}", "unknown job type 'nope'"));
	T_CHECK("mistyped max_attempts refused", refused("{\"type\":\"noop\",\"max_attempts\":\"x\"}", "integer"));
	T_CHECK("max_attempts 0 refused", refused("{\"type\":\"noop\",\"max_attempts\":0}", "between"));
	T_CHECK("negative timeout refused", refused("{\"type\":\"noop\",\"timeout_s\":-1}", "between"));
	T_CHECK("args must be an object", refused("{\"type\":\"noop\",\"args\":[1]}", "'args' must be an object"));
	T_CHECK("bad id characters refused", refused("{\"type\":\"noop\",\"id\":\"a b\"}", "may hold only"));
	T_CHECK("queue mismatch refused", refused("{\"type\":\"noop\",\"queue\":\"other\"}", "pushed onto queue"));
	T_CHECK("duplicate keys refused", refused("{\"type\":\"noop\",\"type\":\"fail\"}", "malformed"));
	T_CHECK("empty owner refused", refused("{\"type\":\"noop\",\"owner\":\"\"}", "'owner'"));
	char big[5000];
	memset(big, ' ', sizeof(big));
	memcpy(big, "{\"type\":\"noop\"}", 15);
	big[sizeof(big) - 1] = '\0';
	T_CHECK("oversized message refused before parsing", refused(big, "over the 4096-byte limit"));
	T_CHECK("NUL inside a message is malformed",
	        job_parse("{\"type\":\"noop\"}\0x", 17, "default", &defs, &spec, err, sizeof(err)) < 0);

	char id[37];
	T_CHECK("uuid generated", job_new_id(id) == 0 && strlen(id) == 36 && id[14] == '4' && id[8] == '-');
	char id2[37];
	job_new_id(id2);
	T_CHECK("uuids differ", strcmp(id, id2) != 0);

	T_CHECK("state names round-trip",
	        job_state_parse("retrying") == JOB_RETRYING && strcmp(job_state_name(JOB_CANCELLED), "cancelled") == 0);
	T_CHECK("unknown state name", job_state_parse("bogus") == -1);
	T_CHECK("scheduled (a parked run) is a state, not terminal",
	        job_state_parse("scheduled") == JOB_SCHEDULED && !job_state_terminal(JOB_SCHEDULED));
	T_CHECK("parent parsed", job_parse("{\"type\":\"noop\",\"parent\":{\"id\":\"run1\",\"queue\":\"q\"}}", 50,
	                                   "default", &defs, &spec, err, sizeof(err)) == 0 &&
	                                 strcmp(spec.parent_id, "run1") == 0 && strcmp(spec.parent_queue, "q") == 0);
	job_spec_free(&spec);
	T_CHECK("no parent: empty",
	        job_parse("{\"type\":\"noop\"}", 15, "default", &defs, &spec, err, sizeof(err)) == 0 &&
	                spec.parent_id[0] == '\0');
	job_spec_free(&spec);
	T_CHECK("parent without a queue refused", refused("{\"type\":\"noop\",\"parent\":{\"id\":\"r\"}}", "'parent'"));
	T_CHECK("parent with a bad id refused",
	        refused("{\"type\":\"noop\",\"parent\":{\"id\":\"a/b\",\"queue\":\"q\"}}", "'parent'"));
	T_CHECK("parent not an object refused", refused("{\"type\":\"noop\",\"parent\":\"r\"}", "'parent'"));
	T_CHECK("terminal states", job_state_terminal(JOB_SUCCEEDED) && job_state_terminal(JOB_DEAD) &&
	                                   job_state_terminal(JOB_FAILED) && job_state_terminal(JOB_CANCELLED) &&
	                                   !job_state_terminal(JOB_RETRYING) && !job_state_terminal(JOB_RUNNING));
	T_CHECK("terminal never moves", !job_transition_allowed(JOB_SUCCEEDED, JOB_RUNNING) &&
	                                        !job_transition_allowed(JOB_DEAD, JOB_QUEUED) &&
	                                        !job_transition_allowed(JOB_CANCELLED, JOB_SUCCEEDED));
	T_CHECK("running may end", job_transition_allowed(JOB_RUNNING, JOB_SUCCEEDED) &&
	                                   job_transition_allowed(JOB_RUNNING, JOB_RETRYING));
	T_CHECK("queued cannot succeed without running", !job_transition_allowed(JOB_QUEUED, JOB_SUCCEEDED));
	T_CHECK("outcome: success", job_outcome(1, 1, 1, 3) == JOB_SUCCEEDED);
	T_CHECK("outcome: retry while attempts remain", job_outcome(0, 1, 1, 3) == JOB_RETRYING);
	T_CHECK("outcome: dead when exhausted", job_outcome(0, 1, 3, 3) == JOB_DEAD);
	T_CHECK("outcome: permanent failure", job_outcome(0, 0, 1, 3) == JOB_FAILED);

	T_NEAR("backoff 1st, no jitter", job_backoff_s(1, 1, 60, 0), 0.5, 1e-9);
	T_NEAR("backoff 1st, full jitter", job_backoff_s(1, 1, 60, 0.999999), 1.0, 1e-5);
	T_NEAR("backoff doubles", job_backoff_s(3, 1, 60, 0), 2.0, 1e-9);
	T_NEAR("backoff capped", job_backoff_s(20, 1, 60, 0.999999), 60.0, 1e-4);
	T_NEAR("backoff of a huge attempt stays capped", job_backoff_s(1000, 1, 60, 0), 30.0, 1e-9);
	T_CHECK("names", job_name_valid("a.b:c-d_e", 64) && !job_name_valid("", 64) && !job_name_valid("a/b", 64));
	T_DONE();
}
