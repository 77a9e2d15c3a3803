/*
 * ctl_ns: owner-scoped job ids on the control socket (common/job_ns.h). A non-admin request's job ids are
 * rewritten to the owner's stored ids before any op sees them, and every reply to that connection shows
 * them back without the prefix; so an id of another owner is never even looked up, and every path (submit,
 * batch, idempotency, status, watch, cancel, retry, logs, list) answers for it exactly as for a free id.
 * Admin works on stored ids as they are (and sees other owners' prefixes).
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "job_ns.h"
#include "xmalloc.h"

int
ctl_ns_active(const struct ctl_conn *c)
{
	return c->authed && (c->cred.scopes & CTL_SCOPE_ADMIN) == 0;
}

int
ctl_ns_id(const struct ctl_conn *c, const char *id, char *out, size_t outlen, char *err, size_t errlen)
{
	if (!ctl_ns_active(c)) {
		snprintf(out, outlen, "%s", id);
		return 0;
	}
	return job_ns_make(c->cred.owner, id, out, outlen, err, errlen);
}

/* Replaces the string member key of o (when it is a string) by its stored form. 0, or -1 with err. */
static int
ns_member(const struct ctl_conn *c, json_t *o, const char *key, char *err, size_t errlen)
{
	const char *v = json_string_value(json_object_get(o, key));
	char out[JOB_ID_MAX + 1];
	if (v == NULL)
		return 0;
	if (ctl_ns_id(c, v, out, sizeof(out), err, errlen) != 0)
		return -1;
	json_object_set_new(o, key, json_string(out));
	return 0;
}

/* The list cursor "<score>|<id>" names an id too (given back stripped). */
static int
ns_cursor(const struct ctl_conn *c, json_t *root, char *err, size_t errlen)
{
	const char *v = json_string_value(json_object_get(root, "cursor"));
	const char *sep = v != NULL ? strchr(v, '|') : NULL;
	char out[JOB_ID_MAX + 1];
	if (sep == NULL)
		return 0;
	if (ctl_ns_id(c, sep + 1, out, sizeof(out), err, errlen) != 0)
		return -1;
	char *cur = xasprintf("%.*s|%s", (int)(sep - v), v, out);
	json_object_set_new(root, "cursor", json_string(cur));
	free(cur);
	return 0;
}

/*
 * A submitted job's id: the owner's namespace for a non-admin; for admin, the named owner's when it submits
 * for one (field "owner"), so that owner finds the job under the id admin gave; else as given.
 */
static int
ns_job(const struct ctl_conn *c, json_t *job, char *err, size_t errlen)
{
	if (!json_is_object(job))
		return 0;
	if (ctl_ns_active(c))
		return ns_member(c, job, "id", err, errlen);
	const char *owner = json_string_value(json_object_get(job, "owner"));
	const char *id = json_string_value(json_object_get(job, "id"));
	char out[JOB_ID_MAX + 1];
	if (owner == NULL || id == NULL)
		return 0;
	if (job_ns_make(owner, id, out, sizeof(out), err, errlen) != 0)
		return -1;
	json_object_set_new(job, "id", json_string(out));
	return 0;
}

int
ctl_ns_request(const struct ctl_conn *c, struct ctl_request *req, char *err, size_t errlen)
{
	if (!c->authed || req->root == NULL || req->op == NULL)
		return 0;
	json_t *root = req->root, *jobs, *e;
	size_t i;
	if (req->op->id == CTL_OP_SUBMIT) {
		if (ns_job(c, json_object_get(root, "job"), err, errlen) != 0)
			return -1;
		jobs = json_object_get(root, "jobs");
		json_array_foreach(jobs, i, e)
		{
			if (ns_job(c, e, err, errlen) != 0) {
				char tmp[256];
				snprintf(tmp, sizeof(tmp), "jobs[%zu]: %s", i, err);
				snprintf(err, errlen, "%s", tmp);
				return -1;
			}
		}
		return 0;
	}
	if (!ctl_ns_active(c))
		return 0;
	switch (req->op->id) {
	case CTL_OP_STATUS:
	case CTL_OP_WATCH:
	case CTL_OP_CANCEL:
	case CTL_OP_RETRY:
	case CTL_OP_LOGS: return ns_member(c, root, "job", err, errlen);
	case CTL_OP_WORKFLOW_RUN: return ns_member(c, root, "job_id", err, errlen);
	case CTL_OP_LIST: return ns_cursor(c, root, err, errlen);
	default: return 0;
	}
}

/* Strips every occurrence of prefix from s; NULL when it holds none. */
static char *
strip_all(const char *s, const char *prefix)
{
	const char *hit = strstr(s, prefix);
	if (hit == NULL)
		return NULL;
	size_t n = strlen(prefix), len = strlen(s);
	char *out = xmalloc(len + 1), *o = out;
	while (hit != NULL) {
		memcpy(o, s, (size_t)(hit - s));
		o += hit - s;
		s = hit + n;
		hit = strstr(s, prefix);
	}
	strcpy(o, s);
	return out;
}

static void
strip_value(json_t *v, const char *prefix)
{
	const char *k;
	json_t *e;
	size_t i;
	void *tmp;
	if (json_is_object(v)) {
		json_object_foreach_safe(v, tmp, k, e)
		{
			if (json_is_string(e)) {
				char *s = strip_all(json_string_value(e), prefix);
				if (s != NULL)
					json_object_set_new(v, k, json_string(s));
				free(s);
			} else
				strip_value(e, prefix);
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, e)
		{
			if (json_is_string(e)) {
				char *s = strip_all(json_string_value(e), prefix);
				if (s != NULL)
					json_array_set_new(v, i, json_string(s));
				free(s);
			} else
				strip_value(e, prefix);
		}
	}
}

void
ctl_ns_strip_owner(json_t *msg, const char *owner)
{
	char prefix[JOB_NS_PREFIX_LEN + 1];
	job_ns_prefix(owner, prefix);
	strip_value(msg, prefix);
}

void
ctl_ns_reply(const struct ctl_conn *c, json_t *msg)
{
	if (ctl_ns_active(c))
		ctl_ns_strip_owner(msg, c->cred.owner);
}
