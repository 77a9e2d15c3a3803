/*
 * submit_and_wait: the libhopper example. Submits one job, prints its progress events as they come, and
 * exits 0 if it succeeded.
 *
 *   cc submit_and_wait.c $(pkg-config --cflags --libs hopper) -o submit_and_wait
 *   ./submit_and_wait /var/lib/hopper/hopper.sock sleep '{"ms":500}'      (token from $HOPPER_TOKEN, or
 *                                                                          peer credentials as root)
 *   HOPPER_TOKEN=hop_... ./submit_and_wait 127.0.0.1:7070 noop '{}'        (TCP: needs a token)
 *   HOPPER_QUEUE=q2 HOPPER_JOB_ID=j1 ./submit_and_wait SOCKET noop            (that queue and id: the watch
 *                                     and the final status name the queue, since ids are unique per queue)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hopper.h"

/* Called for every event of the job: stored ones first, then live ones, in order. */
static int
on_event(const json_t *ev, void *ud)
{
	const char *stage = json_string_value(json_object_get(ev, "stage"));
	(void)ud;
	printf("event %-8s state=%-9s progress=%3lld%%%s%s\n", json_string_value(json_object_get(ev, "event")),
	       json_string_value(json_object_get(ev, "state")),
	       (long long)json_integer_value(json_object_get(ev, "progress")), stage != NULL ? " stage=" : "",
	       stage != NULL ? stage : "");
	return 0; /* go on */
}

int
main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s SOCKET_PATH|HOST:PORT TYPE [ARGS_JSON]\n", argv[0]);
		return 2;
	}
	/* TCP pins the daemon's key: given ($HOPPER_SERVER_KEY, from hopperd --print-pubkey) or from a
	 * known_hosts file ($HOPPER_KNOWN_HOSTS; recorded there on first use). */
	struct hopper_opts o = {.token = getenv("HOPPER_TOKEN"),
	                        .client = "submit_and_wait/1",
	                        .server_key = getenv("HOPPER_SERVER_KEY"),
	                        .known_hosts = getenv("HOPPER_KNOWN_HOSTS")};
	if (strchr(argv[1], '/') != NULL)
		o.socket = argv[1];
	else
		o.host = argv[1];
	char err[256];
	int code;
	struct hopper *h = hopper_connect(&o, &code, err, sizeof(err));
	if (h == NULL) {
		fprintf(stderr, "connect: %s: %s\n", hopper_err_name(code), err);
		return hopper_exit_code(code);
	}
	json_error_t jerr;
	json_t *args = json_loads(argc > 3 ? argv[3] : "{}", 0, &jerr);
	if (args == NULL) {
		fprintf(stderr, "ARGS_JSON: %s\n", jerr.text);
		hopper_close(h);
		return 2;
	}
	json_t *job = json_pack("{s:s, s:o}", "type", argv[2], "args", args); /* takes args */
	const char *queue = getenv("HOPPER_QUEUE"), *jid = getenv("HOPPER_JOB_ID");
	if (queue != NULL && queue[0] != '\0')
		json_object_set_new(job, "queue", json_string(queue));
	if (jid != NULL && jid[0] != '\0')
		json_object_set_new(job, "id", json_string(jid));
	json_t *res = NULL, *final = NULL;
	int rc = hopper_submit(h, job, &res);
	json_decref(job);
	if (rc == HOPPER_OK) {
		const char *id = json_string_value(json_object_get(res, "id"));
		printf("submitted %s\n", id);
		rc = hopper_watch_in(h, id, queue, on_event, NULL, 0, &final);
	}
	if (rc == HOPPER_OK) { /* the job view once more, by queue and id (hopper_status_in) */
		json_decref(final);
		final = NULL;
		rc = hopper_status_in(h, json_string_value(json_object_get(res, "id")), queue, &final);
	}
	int exit_code;
	if (rc != HOPPER_OK) {
		fprintf(stderr, "%s: %s\n", hopper_err_name(rc), hopper_errmsg(h));
		exit_code = hopper_exit_code(rc);
	} else {
		const char *state = json_string_value(json_object_get(final, "state"));
		printf("final state %s\n", state);
		if (queue != NULL && queue[0] != '\0')
			fprintf(stderr, "queue %s\n", json_string_value(json_object_get(final, "queue")));
		exit_code = strcmp(state, "succeeded") == 0 ? 0 : 1;
	}
	json_decref(res);
	json_decref(final);
	hopper_close(h);
	return exit_code;
}
