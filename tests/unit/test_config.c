/* The config table: file parsing with file:line errors, flags, ranges, derived checks. */
#include <stdlib.h>
#include <unistd.h>

#include "hopperd.h"
#include "t.h"

static char *
write_file(const char *text)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/hopper-test-config-XXXXXX");
	int fd = mkstemp(path);
	if (write(fd, text, strlen(text)) < 0)
		return NULL;
	close(fd);
	return path;
}

int
main(void)
{
	struct config c;
	char *cause = NULL;
	config_defaults(&c);
	T_CHECK("defaults", c.redis_port == 6379 && c.max_attempts == 3 && strcmp(c.key_prefix, "hopper:") == 0);
	char *path = write_file("# comment\n\nredis_port = 7000\nqueues = high:3, default\nqueue_mode=weighted\n"
	                        "timeout_s = 2.5 # trailing comment\n");
	T_CHECK("good file loads", config_load_file(&c, path, &cause) == 0);
	T_CHECK("values read", c.redis_port == 7000 && c.timeout_s == 2.5);
	T_CHECK("finish ok", config_finish(&c, &cause) == 0);
	T_CHECK("queues parsed", c.nqueues == 2 && strcmp(c.queues[0].name, "high") == 0 && c.queues[0].weight == 3 &&
	                                 strcmp(c.queues[1].name, "default") == 0 && c.queues[1].weight == 1);
	unlink(path);
	T_CHECK("flag with dashes",
	        config_set(&c, "redis-unix", "/tmp/r.sock", &cause) == 0 && strcmp(c.redis_unix, "/tmp/r.sock") == 0);
	T_CHECK("unknown option", config_set(&c, "bogus", "1", &cause) < 0 && strstr(cause, "unknown option"));
	free(cause);
	cause = NULL;
	T_CHECK("out of range", config_set(&c, "redis_port", "70000", &cause) < 0 && strstr(cause, "out of range"));
	free(cause);
	cause = NULL;
	T_CHECK("not a number", config_set(&c, "workers", "two", &cause) < 0 && strstr(cause, "not a number"));
	free(cause);
	cause = NULL;
	T_CHECK("integer wanted", config_set(&c, "workers", "1.5", &cause) < 0);
	free(cause);
	cause = NULL;
	config_free(&c);

	config_defaults(&c);
	path = write_file("redis_port = 6380\nthis line is wrong\n");
	T_CHECK("bad line refused", config_load_file(&c, path, &cause) < 0);
	T_CHECK("error names file:line and quotes the line",
	        cause && strstr(cause, ":2:") && strstr(cause, "this line is wrong"));
	free(cause);
	cause = NULL;
	unlink(path);
	T_CHECK("heartbeat must fit twice in the lease", config_set(&c, "heartbeat_s", "10", &cause) == 0 &&
	                                                         config_finish(&c, &cause) < 0 &&
	                                                         strstr(cause, "lease_s"));
	free(cause);
	cause = NULL;
	config_free(&c);
	config_defaults(&c);
	config_set(&c, "queues", "ok,bad/name", &cause);
	T_CHECK("bad queue name refused", config_finish(&c, &cause) < 0 && strstr(cause, "bad/name"));
	free(cause);
	cause = NULL;
	config_free(&c);
	config_defaults(&c);
	config_set(&c, "log_level", "loud", &cause);
	T_CHECK("bad log level refused", config_finish(&c, &cause) < 0);
	free(cause);
	config_free(&c);
	T_CHECK("missing file", config_load_file(&c, "/nonexistent/hopperd.conf", &cause) < 0);
	free(cause);
	cause = NULL;
	config_free(&c);

	/* Redis Sentinel: both or neither; HOST:PORT entries */
	static const struct {
		const char *sentinels, *name, *err; /* err NULL: accepted */
	} sc[] = {
	        {"", "", NULL},
	        {"10.0.0.1:26379, s2.example:26380", "mymaster", NULL},
	        {"10.0.0.1:26379", "", "go together"},
	        {"", "mymaster", "go together"},
	        {"10.0.0.1", "m", "bad entry"},
	        {"10.0.0.1:", "m", "bad entry"},
	        {":26379", "m", "bad entry"},
	        {"h:0", "m", "bad entry"},
	        {"h:65536", "m", "bad entry"},
	        {"h:1x", "m", "bad entry"},
	        {",", "m", "no HOST:PORT"},
	};
	for (size_t i = 0; i < sizeof(sc) / sizeof(sc[0]); i++) {
		config_defaults(&c);
		config_set(&c, "redis_sentinels", sc[i].sentinels, &cause);
		config_set(&c, "redis_master_name", sc[i].name, &cause);
		int rc = config_finish(&c, &cause);
		char what[160];
		snprintf(what, sizeof(what), "sentinels '%s' name '%s'", sc[i].sentinels, sc[i].name);
		T_CHECK(what, sc[i].err == NULL ? rc == 0 : rc < 0 && strstr(cause, sc[i].err) != NULL);
		free(cause);
		cause = NULL;
		config_free(&c);
	}
	config_defaults(&c);
	config_set(&c, "redis_sentinels", "10.0.0.1:26379, s2.example:26380", &cause);
	config_set(&c, "redis_master_name", "mymaster", &cause);
	T_CHECK("sentinels parsed",
	        config_finish(&c, &cause) == 0 && c.nsentinels == 2 && strcmp(c.sentinels[0].host, "10.0.0.1") == 0 &&
	                c.sentinels[0].port == 26379 && strcmp(c.sentinels[1].host, "s2.example") == 0 &&
	                c.sentinels[1].port == 26380);
	config_free(&c);
	T_DONE();
}
