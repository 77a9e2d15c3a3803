/*
 * celery_send: hand work from C to stock Celery workers with libhopper. Publishes one task in Celery's
 * format (through hopperd's celery.send op) and prints its id; a Celery worker consuming the queue runs it
 * and its result appears in Celery's result backend (AsyncResult(id), celery-task-meta-ID).
 *
 *   cc celery_send.c $(pkg-config --cflags --libs hopper) -o celery_send
 *   ./celery_send /var/lib/hopper/hopper.sock proj.tasks.add '[2, 3]' '{}' celery 0
 *                 (token from $HOPPER_TOKEN, or peer credentials as root; needs the submit scope)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hopper.h"

/* argv[i] as JSON of the wanted kind, or def when absent. NULL (message printed) when it is not. */
static json_t *
json_arg(int argc, char **argv, int i, const char *def, int array)
{
	json_error_t jerr;
	json_t *v = json_loads(i < argc ? argv[i] : def, 0, &jerr);
	if (v == NULL || (array ? !json_is_array(v) : !json_is_object(v))) {
		fprintf(stderr, "%s must be a JSON %s\n", array ? "ARGS" : "KWARGS", array ? "array" : "object");
		json_decref(v);
		return NULL;
	}
	return v;
}

int
main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s SOCKET_PATH|HOST:PORT TASK [ARGS_JSON [KWARGS_JSON [QUEUE [PRIORITY]]]]\n",
		        argv[0]);
		return 2;
	}
	struct hopper_opts o = {.token = getenv("HOPPER_TOKEN"), .client = "celery_send/1"};
	if (strchr(argv[1], '/') != NULL)
		o.socket = argv[1];
	else
		o.host = argv[1];
	json_t *args = json_arg(argc, argv, 3, "[]", 1), *kwargs = json_arg(argc, argv, 4, "{}", 0);
	if (args == NULL || kwargs == NULL) {
		json_decref(args);
		json_decref(kwargs);
		return 2;
	}
	struct hopper_celery_task t = {
	        .task = argv[2],
	        .args = args,
	        .kwargs = kwargs,
	        .queue = argc > 5 ? argv[5] : NULL,
	        .priority = argc > 6 ? atoi(argv[6]) : 0,
	};
	char err[256], *id = NULL;
	int code, rc;
	struct hopper *h = hopper_connect(&o, &code, err, sizeof(err));
	if (h == NULL) {
		fprintf(stderr, "connect: %s: %s\n", hopper_err_name(code), err);
		rc = hopper_exit_code(code);
	} else if ((code = hopper_celery_send(h, &t, &id)) != HOPPER_OK) {
		fprintf(stderr, "celery.send: %s: %s\n", hopper_err_name(code), hopper_errmsg(h));
		rc = hopper_exit_code(code);
	} else {
		printf("%s\n", id);
		free(id); /* ours to free */
		rc = 0;
	}
	hopper_close(h);
	json_decref(args);
	json_decref(kwargs);
	return rc;
}
