/*
 * libFuzzer harness for the Celery envelope parser: any input is a task, a refusal or malformed, always
 * with a reason; a parsed task converts to a hopper job (or is refused with a reason), and its embed's
 * signatures encode and re-parse as messages. The same input also goes through the bounded scan of an
 * oversized envelope and the remote-control parser.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "celery_msg.h"

static void
check_task(const struct celery_task *t)
{
	static const struct celery_route route = {.task = "t", .type = "noop", .argnames = {"a", "b"}, .nargnames = 2};
	char err[512] = "";
	if (!json_is_array(t->args) || !json_is_object(t->kwargs) || !json_is_object(t->embed) || t->id[0] == '\0')
		__builtin_trap();
	char *job = celery_job_json(t, &route, "default", 3, 1e9, err, sizeof(err));
	if (job == NULL && err[0] == '\0')
		__builtin_trap();
	free(job);
	/* Re-encode the task itself and parse it back: the same id, task and arguments. */
	struct celery_send m = {.task = t->task,
	                        .id = t->id,
	                        .queue = "q",
	                        .priority = 0,
	                        .args = t->args,
	                        .kwargs = t->kwargs,
	                        .insert_result = 1};
	struct celery_encoded e;
	if (celery_encode_task(&m, &e, err, sizeof(err)) < 0)
		return;
	char *env = celery_encoded_join(&e, "null");
	struct celery_task back;
	if (celery_parse(env, strlen(env), 1 << 24, &back, err, sizeof(err)) != CELERY_OK ||
	    strcmp(back.id, t->id) != 0 || strcmp(back.task, t->task) != 0 ||
	    json_array_size(back.args) != json_array_size(t->args) + 1 || !json_equal(back.kwargs, t->kwargs))
		__builtin_trap();
	celery_task_free(&back);
	free(env);
	celery_encoded_free(&e);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct celery_task t;
	char err[512];
	err[0] = '\0';
	int v = celery_parse((const char *)data, size, 65536, &t, err, sizeof(err));
	if (v == CELERY_OK) {
		check_task(&t);
		celery_task_free(&t);
	} else if (err[0] == '\0' || (v == CELERY_REFUSED && t.id[0] == '\0'))
		__builtin_trap(); /* a refusal says why, and names the task it refuses */
	/* The same bytes over a small limit: the bounded scan of an oversized envelope never overruns. */
	if (celery_parse((const char *)data, size, size / 2, &t, err, sizeof(err)) == CELERY_OK)
		celery_task_free(&t);
	/* ... and as a remote-control message (Celery v2, daemon/celery/pidbox.c). */
	struct celery_control c;
	if (celery_control_parse((const char *)data, size, "w@h", 0, &c, err, sizeof(err)) == 0)
		celery_control_free(&c);
	return 0;
}
