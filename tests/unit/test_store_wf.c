/* test_store_wf: the execution log's workflow tables (migration 002): step rows linked to their attempt and
 * pruned with it, and stored workflows put/get/list/rm. On a real database file in a temp dir. */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "t.h"

static int64_t
q_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	int64_t v = -1;
	sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void
collect(const struct store_workflow *w, void *arg)
{
	char *names = arg;
	strcat(names, w->name);
	strcat(names, w->definition == NULL ? "!" : ",");
}

int
main(void)
{
	char dir[] = "/tmp/hopper-test-store-wf-XXXXXX", path[128];
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/wf.db", dir);
	char *cause = NULL;
	struct store *st = store_open(path, &cause);
	T_CHECK("open applies migration 002", st != NULL);
	if (st == NULL)
		return 1;
	struct store_attempt a = {
	        .job_id = "j1", .type = "workflow.run", .queue = "q", .node = "n", .attempt = 1, .started_at = 100};
	int64_t row = store_attempt_start(st, &a);
	struct store_step s1 = {.attempt_row = row,
	                        .job_id = "j1",
	                        .step_id = "fetch",
	                        .type = "http",
	                        .state = "succeeded",
	                        .step_attempt = 1,
	                        .run_attempt = 1,
	                        .started_at = 100,
	                        .finished_at = 100.25,
	                        .output = "{\"status\":200}"};
	struct store_step s2 = {.attempt_row = 999999,
	                        .job_id = "j1",
	                        .step_id = "lost",
	                        .state = "failed",
	                        .started_at = 1,
	                        .finished_at = 2,
	                        .error = "boom"};
	T_CHECK("step row written", store_step(st, &s1) == 0);
	T_CHECK("a step of an unknown attempt row is kept, unlinked", store_step(st, &s2) == 0);
	store_flush(st);
	T_CHECK("two rows", q_int(path, "SELECT count(*) FROM workflow_steps WHERE job_id='j1'") == 2);
	T_CHECK("linked to the attempt",
	        q_int(path, "SELECT attempt_id FROM workflow_steps WHERE step_id='fetch'") == row);
	T_CHECK("unknown attempt -> NULL",
	        q_int(path, "SELECT attempt_id IS NULL FROM workflow_steps WHERE step_id='lost'") == 1);
	T_CHECK("duration computed",
	        q_int(path, "SELECT duration_ms FROM workflow_steps WHERE step_id='fetch'") == 250);
	json_t *log = store_job_log(st, "j1", NULL, 100, 1 << 20);
	json_t *steps = json_object_get(log, "steps"), *first = json_array_get(steps, 0);
	T_CHECK("logs carry the step rows in order",
	        json_array_size(steps) == 2 &&
	                strcmp(json_string_value(json_object_get(first, "step")), "fetch") == 0 &&
	                json_integer_value(json_object_get(first, "step_attempt")) == 1 &&
	                strcmp(json_string_value(json_object_get(first, "output")), "{\"status\":200}") == 0 &&
	                json_real_value(json_object_get(first, "duration_ms")) == 250 &&
	                strcmp(json_string_value(json_object_get(json_array_get(steps, 1), "error")), "boom") == 0);
	json_decref(log);
	log = store_job_log(st, "j1", NULL, 100, 130);
	T_CHECK("a size cap cuts the step rows and says so",
	        json_array_size(json_object_get(log, "steps")) < 2 && json_is_true(json_object_get(log, "truncated")));
	json_decref(log);
	log = store_job_log(st, "other", NULL, 100, 1 << 20);
	T_CHECK("other jobs have no step rows", json_array_size(json_object_get(log, "steps")) == 0);
	json_decref(log);
	store_attempt_finish(st, row, "succeeded", 101, NULL, NULL);
	store_flush(st);
	while (store_prune_step(st, 200, 1) > 0)
		;
	T_CHECK("pruning the attempt removes its step rows",
	        q_int(path, "SELECT count(*) FROM workflow_steps WHERE step_id='fetch'") == 0);
	T_CHECK("and old unlinked rows", q_int(path, "SELECT count(*) FROM workflow_steps") == 0);
	/* A reused id (005_attempt_owner.sql): B's attempt of "j2", then A's; each owner reads only its own. */
	struct store_attempt ab = {.job_id = "j2", .type = "t", .attempt = 1, .started_at = 100, .owner = "B"};
	int64_t rb = store_attempt_start(st, &ab);
	store_event(st, rb, 100, "log", "info", -1, NULL, "B's secret line");
	struct store_step sb = {.attempt_row = rb, .job_id = "j2", .step_id = "b", .state = "succeeded"};
	store_step(st, &sb);
	ab.owner = "A";
	ab.started_at = 200;
	store_attempt_start(st, &ab);
	store_flush(st);
	log = store_job_log(st, "j2", "A", 100, 1 << 20);
	T_CHECK("owner A sees only its attempt, no line or step row of B",
	        json_array_size(json_object_get(log, "attempts")) == 1 &&
	                json_array_size(json_object_get(log, "lines")) == 0 &&
	                json_array_size(json_object_get(log, "steps")) == 0);
	json_decref(log);
	log = store_job_log(st, "j2", NULL, 100, 1 << 20);
	T_CHECK("admin (NULL) sees both attempts, B's line and step",
	        json_array_size(json_object_get(log, "attempts")) == 2 &&
	                json_array_size(json_object_get(log, "lines")) == 1 &&
	                json_array_size(json_object_get(log, "steps")) == 1);
	json_decref(log);

	char greet[] = "greet", d[] = "d", def0[] = "{\"steps\":[]}", def1[] = "{\"steps\":[1]}", o[] = "o";
	char alpha[] = "alpha", empty[] = "{}";
	struct store_workflow w = {
	        .name = greet, .description = d, .definition = def0, .owner = o, .active = 1, .updated_at = 10};
	T_CHECK("put", store_workflow_put(st, &w) == 0);
	w.definition = def1;
	w.updated_at = 20;
	w.active = 0;
	T_CHECK("put again replaces", store_workflow_put(st, &w) == 0);
	struct store_workflow w2 = {.name = alpha, .definition = empty, .active = 1, .updated_at = 30};
	store_workflow_put(st, &w2);
	struct store_workflow got;
	T_CHECK("get finds it", store_workflow_get(st, "greet", &got) == 1);
	T_STREQ("definition replaced", got.definition, "{\"steps\":[1]}");
	T_CHECK("created kept, updated moved, active stored",
	        got.created_at == 10 && got.updated_at == 20 && got.active == 0);
	T_STREQ("owner", got.owner, "o");
	store_workflow_free(&got);
	T_CHECK("get of an unknown name", store_workflow_get(st, "nope", &got) == 0);
	char names[64] = "";
	T_CHECK("list counts", store_workflow_list(st, collect, names) == 2);
	T_STREQ("list by name", names, "alpha,greet,");
	T_CHECK("rm", store_workflow_rm(st, "alpha") == 1);
	T_CHECK("rm again", store_workflow_rm(st, "alpha") == 0);
	store_close(st);
	T_CHECK("rm is durable", q_int(path, "SELECT count(*) FROM workflows") == 1);
	free(cause);
	char side[160];
	static const char *const suffixes[] = {"", "-wal", "-shm"};
	for (int i = 0; i < 3; i++) {
		snprintf(side, sizeof(side), "%s%s", path, suffixes[i]);
		unlink(side);
	}
	T_CHECK("temp dir removed", rmdir(dir) == 0);
	T_DONE();
}
