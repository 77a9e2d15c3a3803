/* A job message's "rate_limit" and "concurrency" fields: forms, bounds, refusals and the Redis argument forms. */
#include "job.h"
#include <math.h>

#include "t.h"
#include "t_job.h"

/* Configured limits: rate_limits / queue_rate_limits parsing, a job naming one, a queue's default. */
static void
test_configured(void)
{
	static struct job_rl_config cfg;
	char err[256] = "";
	T_CHECK("config parses",
	        job_rl_config_parse("stripe:25/s:50, mail:100/m", "slow:mail", &cfg, err, sizeof(err)) == 0 &&
	                cfg.nnamed == 2 && cfg.nqueue == 1);
	T_CHECK("config: rate and burst", cfg.named[0].burst == 50 && cfg.named[0].rate_per_s == 25 &&
	                                          cfg.named[1].burst == 1 &&
	                                          fabs(cfg.named[1].rate_per_s - 100.0 / 60) < 1e-9);
	struct job_rl_config bad;
	static const char *const bads[][3] = {
	        {"stripe", "", "'stripe' is not"}, {"stripe:25/x", "", "'stripe:25/x'"},
	        {"a:1/s:0", "", "'a:1/s:0'"},      {"a:1/s a:2/s", "", "named twice"},
	        {"a b:1/s", "", "'a' is not"},     {"a:1/s", "slow:b", "'slow:b'"},
	        {"a:1/s", "slow", "'slow'"},       {"a:1/s", "slow:a slow:a", "once per queue"}};
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		char name[96];
		err[0] = '\0';
		snprintf(name, sizeof(name), "config refused: '%s' / '%s'", bads[i][0], bads[i][1]);
		int r = job_rl_config_parse(bads[i][0], bads[i][1], &bad, err, sizeof(err));
		T_CHECK(name, r == -1 && strstr(err, bads[i][2]) != NULL && bad.nnamed == 0);
	}
	T_CHECK("empty config", job_rl_config_parse("", NULL, &bad, err, sizeof(err)) == 0 && bad.nnamed == 0);
	struct job_defaults d = defs;
	d.rl = &cfg;
	struct job_spec spec;
	const char *named = "{\"type\":\"noop\",\"rate_limit\":\"stripe\"}";
	T_CHECK("a job naming a configured limit",
	        job_parse(named, strlen(named), "default", &d, &spec, err, sizeof(err)) == 0);
	T_STREQ("... takes its deployment-wide key =NAME", spec.limits.rl_key, "=stripe");
	T_CHECK("... and its rate and burst", spec.limits.rate_per_s == 25 && spec.limits.burst == 50);
	job_spec_free(&spec);
	const char *plain = "{\"type\":\"noop\"}";
	T_CHECK("queue slow's default applies to a job naming none",
	        job_parse(plain, strlen(plain), "slow", &d, &spec, err, sizeof(err)) == 0 &&
	                strcmp(spec.limits.rl_key, "=mail") == 0);
	job_spec_free(&spec);
	T_CHECK("... not to another queue's",
	        job_parse(plain, strlen(plain), "default", &d, &spec, err, sizeof(err)) == 0 &&
	                spec.limits.rl_key[0] == '\0');
	job_spec_free(&spec);
	const char *own = "{\"type\":\"noop\",\"rate_limit\":{\"key\":\"k\",\"rate\":\"1/s\"}}";
	T_CHECK("a job's own limit wins over the queue's default",
	        job_parse(own, strlen(own), "slow", &d, &spec, err, sizeof(err)) == 0 &&
	                strcmp(spec.limits.rl_key, "k") == 0);
	job_spec_free(&spec);
	const char *eq = "{\"type\":\"noop\",\"rate_limit\":{\"key\":\"=stripe\",\"rate\":\"1/s\"}}";
	T_CHECK("a job cannot name a configured limit's key itself", refused(eq, "'key'"));
}

int
main(void)
{
	struct job_spec spec;
	char err[256], arg[JOB_RL_ARG_MAX];

	T_CHECK("no rate_limit", parse("{\"type\":\"noop\"}", &spec, err) == 0 && spec.limits.rl_key[0] == '\0');
	job_limits_arg(&spec.limits, arg, sizeof(arg));
	T_STREQ("none: empty argument", arg, "");
	job_spec_free(&spec);

	T_CHECK("10/s burst 20",
	        parse("{\"type\":\"noop\",\"rate_limit\":{\"key\":\"api.example.com\",\"rate\":\"10/s\",\"burst\":20}}",
	              &spec, err) == 0);
	T_STREQ("key", spec.limits.rl_key, "api.example.com");
	T_NEAR("rate", spec.limits.rate_per_s, 10, 1e-9);
	T_CHECK("burst", spec.limits.burst == 20);
	job_limits_arg(&spec.limits, arg, sizeof(arg));
	T_STREQ("argument", arg, "100.000\t20");
	job_spec_free(&spec);

	T_CHECK("30/m, burst defaults to 1",
	        parse("{\"type\":\"noop\",\"rate_limit\":{\"key\":\"k\",\"rate\":\"30/m\"}}", &spec, err) == 0 &&
	                spec.limits.burst == 1);
	T_NEAR("30/m is 0.5/s", spec.limits.rate_per_s, 0.5, 1e-9);
	job_spec_free(&spec);
	T_CHECK("2.5/h",
	        parse("{\"type\":\"noop\",\"rate_limit\":{\"key\":\"k\",\"rate\":\"2.5/h\"}}", &spec, err) == 0);
	T_NEAR("2.5/h per second", spec.limits.rate_per_s, 2.5 / 3600, 1e-12);
	job_spec_free(&spec);

	T_CHECK("unknown unit",
	        refused("{\"type\":\"noop\",\"rate_limit\":{\"key\":\"k\",\"rate\":\"10/d\"}}", "'rate'"));
	T_CHECK("no unit", refused("{\"type\":\"noop\",\"rate_limit\":{\"key\":\"k\",\"rate\":\"10\"}}", "'rate'"));
	T_CHECK("zero rate", refused("{\"type\":\"noop\",\"rate_limit\":{\"key\":\"k\",\"rate\":\"0/s\"}}", "'rate'"));
	T_CHECK("number rate", refused("{\"type\":\"noop\",\"rate_limit\":{\"key\":\"k\",\"rate\":10}}", "'rate'"));
	T_CHECK("trailing junk",
	        refused("{\"type\":\"noop\",\"rate_limit\":{\"key\":\"k\",\"rate\":\"10/sec\"}}", "'rate'"));
	T_CHECK("no key", refused("{\"type\":\"noop\",\"rate_limit\":{\"rate\":\"1/s\"}}", "'key'"));
	T_CHECK("bad key", refused("{\"type\":\"noop\",\"rate_limit\":{\"key\":\"a b\",\"rate\":\"1/s\"}}", "'key'"));
	T_CHECK("burst 0",
	        refused("{\"type\":\"noop\",\"rate_limit\":{\"key\":\"k\",\"rate\":\"1/s\",\"burst\":0}}", "burst"));
	T_CHECK("unknown member",
	        refused("{\"type\":\"noop\",\"rate_limit\":{\"key\":\"k\",\"rate\":\"1/s\",\"brust\":2}}", "'brust'"));
	T_CHECK("an unconfigured named limit refused clearly",
	        refused("{\"type\":\"noop\",\"rate_limit\":\"api\"}", "no configured limit 'api'"));
	T_CHECK("not an object", refused("{\"type\":\"noop\",\"rate_limit\":[1]}", "must be an object"));

	T_CHECK("concurrency 2",
	        parse("{\"type\":\"noop\",\"concurrency\":{\"key\":\"customer:42\",\"limit\":2}}", &spec, err) == 0);
	T_STREQ("concurrency key", spec.limits.cc_key, "customer:42");
	T_CHECK("concurrency limit", spec.limits.cc_limit == 2);
	T_CHECK("no rate limit beside it", spec.limits.rl_key[0] == '\0');
	job_limits_cc_arg(&spec.limits, arg, sizeof(arg));
	T_STREQ("concurrency argument", arg, "2");
	job_spec_free(&spec);
	T_CHECK("both", parse("{\"type\":\"noop\",\"rate_limit\":{\"key\":\"a\",\"rate\":\"5/s\"},"
	                      "\"concurrency\":{\"key\":\"b\",\"limit\":1}}",
	                      &spec, err) == 0 &&
	                        strcmp(spec.limits.rl_key, "a") == 0 && strcmp(spec.limits.cc_key, "b") == 0);
	job_spec_free(&spec);
	T_CHECK("no concurrency: empty argument", parse("{\"type\":\"noop\"}", &spec, err) == 0);
	job_limits_cc_arg(&spec.limits, arg, sizeof(arg));
	T_STREQ("no concurrency argument", arg, "");
	job_spec_free(&spec);
	T_CHECK("limit required",
	        refused("{\"type\":\"noop\",\"concurrency\":{\"key\":\"k\"}}", "'limit' is required"));
	T_CHECK("limit 0", refused("{\"type\":\"noop\",\"concurrency\":{\"key\":\"k\",\"limit\":0}}", "between 1"));
	T_CHECK("limit not an integer",
	        refused("{\"type\":\"noop\",\"concurrency\":{\"key\":\"k\",\"limit\":1.5}}", "integer"));
	T_CHECK("concurrency bad key", refused("{\"type\":\"noop\",\"concurrency\":{\"key\":\"\",\"limit\":1}}",
	                                       "field 'concurrency': 'key'"));
	T_CHECK("concurrency unknown member",
	        refused("{\"type\":\"noop\",\"concurrency\":{\"key\":\"k\",\"limit\":1,\"max\":3}}", "'max'"));
	T_CHECK("concurrency not an object", refused("{\"type\":\"noop\",\"concurrency\":3}", "must be an object"));
	T_CHECK("a bad concurrency after a good rate_limit",
	        refused("{\"type\":\"noop\",\"rate_limit\":{\"key\":\"a\",\"rate\":\"5/s\"},\"concurrency\":[]}",
	                "'concurrency'"));
	test_configured();
	T_DONE();
}
