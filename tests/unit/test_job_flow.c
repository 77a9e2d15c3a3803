/* A job message's "unique" and "debounce" fields: parsing, bounds, refusals and the Redis argument form. */
#include "job.h"
#include "t.h"
#include "t_job.h"

int
main(void)
{
	struct job_spec spec;
	char err[256], arg[JOB_FLOW_ARG_MAX];

	T_CHECK("no flow fields", parse("{\"type\":\"noop\"}", &spec, err) == 0 && spec.flow.kind == JOB_FLOW_NONE);
	job_flow_arg(&spec.flow, arg, sizeof(arg));
	T_STREQ("no flow: empty argument", arg, "");
	job_spec_free(&spec);
	T_CHECK("null fields are absent",
	        parse("{\"type\":\"noop\",\"unique\":null,\"debounce\":null}", &spec, err) == 0 &&
	                spec.flow.kind == JOB_FLOW_NONE);
	job_spec_free(&spec);

	T_CHECK("unique parses", parse("{\"type\":\"noop\",\"unique\":{\"key\":\"upload-123\"}}", &spec, err) == 0);
	T_CHECK("unique: until defaults to finished, no TTL",
	        spec.flow.kind == JOB_FLOW_UNIQUE && spec.flow.until == JOB_UNTIL_FINISHED && spec.flow.ttl_s == 0);
	T_STREQ("unique: lock name", spec.flow.lock, "u:upload-123");
	job_flow_arg(&spec.flow, arg, sizeof(arg));
	T_STREQ("unique: argument", arg, "u\tfinished\t0.000");
	job_spec_free(&spec);

	T_CHECK("unique until started with a bound",
	        parse("{\"type\":\"noop\",\"unique\":{\"key\":\"k\",\"until\":\"started\",\"ttl_s\":600}}", &spec,
	              err) == 0 &&
	                spec.flow.until == JOB_UNTIL_STARTED && spec.flow.ttl_s == 600);
	job_flow_arg(&spec.flow, arg, sizeof(arg));
	T_STREQ("unique started: argument", arg, "u\tstarted\t600.000");
	job_spec_free(&spec);
	T_CHECK("unique until ttl",
	        parse("{\"type\":\"noop\",\"unique\":{\"key\":\"k\",\"until\":\"ttl\",\"ttl_s\":1.5}}", &spec, err) ==
	                        0 &&
	                spec.flow.until == JOB_UNTIL_TTL && spec.flow.ttl_s == 1.5);
	job_spec_free(&spec);

	T_CHECK("unique must be an object",
	        refused("{\"type\":\"noop\",\"unique\":\"k\"}", "'unique' must be an object"));
	T_CHECK("unique needs a key", refused("{\"type\":\"noop\",\"unique\":{}}", "needs a 'key'"));
	T_CHECK("unique key is a name", refused("{\"type\":\"noop\",\"unique\":{\"key\":\"a b\"}}", "may hold only"));
	T_CHECK("unique key not empty", refused("{\"type\":\"noop\",\"unique\":{\"key\":\"\"}}", "1 to 200"));
	T_CHECK("unique key is a string", refused("{\"type\":\"noop\",\"unique\":{\"key\":5}}", "must be a string"));
	T_CHECK("unique: unknown until", refused("{\"type\":\"noop\",\"unique\":{\"key\":\"k\",\"until\":\"done\"}}",
	                                         "started, finished or ttl"));
	T_CHECK("unique: ttl needs ttl_s",
	        refused("{\"type\":\"noop\",\"unique\":{\"key\":\"k\",\"until\":\"ttl\"}}", "needs 'ttl_s'"));
	T_CHECK("unique: ttl_s bounded",
	        refused("{\"type\":\"noop\",\"unique\":{\"key\":\"k\",\"ttl_s\":99999999}}", "'unique'"));
	T_CHECK("unique: ttl_s not below 1 s",
	        refused("{\"type\":\"noop\",\"unique\":{\"key\":\"k\",\"ttl_s\":0}}", "ttl_s"));
	T_CHECK("unique: a misspelt member is refused",
	        refused("{\"type\":\"noop\",\"unique\":{\"key\":\"k\",\"ttl\":5}}", "unknown member 'ttl'"));

	T_CHECK("debounce parses",
	        parse("{\"type\":\"noop\",\"debounce\":{\"key\":\"k\",\"delay_s\":5,\"max_wait_s\":60}}", &spec, err) ==
	                        0 &&
	                spec.flow.kind == JOB_FLOW_DEBOUNCE && spec.flow.delay_s == 5 && spec.flow.max_wait_s == 60);
	T_STREQ("debounce: lock name", spec.flow.lock, "d:k");
	job_flow_arg(&spec.flow, arg, sizeof(arg));
	T_STREQ("debounce: argument", arg, "d\t5.000\t60.000");
	job_spec_free(&spec);
	T_CHECK("debounce: max_wait_s defaults to ten delays",
	        parse("{\"type\":\"noop\",\"debounce\":{\"key\":\"k\",\"delay_s\":0.5}}", &spec, err) == 0 &&
	                spec.flow.max_wait_s == 5);
	job_spec_free(&spec);
	T_CHECK("debounce needs delay_s",
	        refused("{\"type\":\"noop\",\"debounce\":{\"key\":\"k\"}}", "needs 'delay_s'"));
	T_CHECK("debounce: max_wait_s not below delay_s",
	        refused("{\"type\":\"noop\",\"debounce\":{\"key\":\"k\",\"delay_s\":5,\"max_wait_s\":1}}",
	                "max_wait_s"));
	T_CHECK("debounce: delay bounded",
	        refused("{\"type\":\"noop\",\"debounce\":{\"key\":\"k\",\"delay_s\":100000}}", "delay_s"));
	T_CHECK("debounce excludes run_at",
	        refused("{\"type\":\"noop\",\"run_at\":5,\"debounce\":{\"key\":\"k\",\"delay_s\":1}}",
	                "excludes 'run_at'"));
	T_CHECK("unique and debounce exclude each other",
	        refused("{\"type\":\"noop\",\"unique\":{\"key\":\"k\"},\"debounce\":{\"key\":\"k\",\"delay_s\":1}}",
	                "not both"));
	T_CHECK("a bad flow field leaves nothing to free",
	        refused("{\"type\":\"noop\",\"owner\":\"a\",\"idempotency_key\":\"i\",\"unique\":{}}",
	                "needs a 'key'"));
	T_DONE();
}
