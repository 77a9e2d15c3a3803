/* job_ns: owner-scoped job ids (prefix, make, strip, reserved form, length limit). */
#include <sodium.h>

#include "job_ns.h"
#include "t.h"

int
main(void)
{
	if (sodium_init() < 0)
		return 1;
	char p[JOB_NS_PREFIX_LEN + 1], out[JOB_ID_MAX + 1], err[128];
	job_ns_prefix("alice", p);
	T_STREQ("prefix is _ + 24 hex of SHA-256(owner) + :", p, "_2bd806c97f0e00af1a1fc332:");
	char q[JOB_NS_PREFIX_LEN + 1];
	job_ns_prefix("bob", q);
	T_CHECK("owners get different prefixes", strcmp(p, q) != 0);
	T_CHECK("make", job_ns_make("alice", "victim", out, sizeof(out), err, sizeof(err)) == 0 &&
	                        strcmp(out, "_2bd806c97f0e00af1a1fc332:victim") == 0);
	T_STREQ("strip own", job_ns_strip(p, out), "victim");
	T_STREQ("strip leaves another's", job_ns_strip(q, out), out);
	T_STREQ("strip leaves a plain id", job_ns_strip(p, "plain"), "plain");
	T_CHECK("prefixed id is reserved", job_ns_reserved(out));
	T_CHECK("plain ids are not", !job_ns_reserved("victim") && !job_ns_reserved("_x:y") &&
	                                     !job_ns_reserved("_2BD806C97F0E00AF1A1FC332:v") && !job_ns_reserved(""));
	T_CHECK("a reserved id is refused", job_ns_make("alice", out, out + 0, 0, err, sizeof(err)) == -1);
	char id[JOB_ID_MAX + 1];
	memset(id, 'a', JOB_NS_ID_MAX);
	id[JOB_NS_ID_MAX] = '\0';
	T_CHECK("max 102 fits", JOB_NS_ID_MAX == 102 &&
	                                job_ns_make("alice", id, out, sizeof(out), err, sizeof(err)) == 0 &&
	                                strlen(out) == JOB_ID_MAX);
	id[JOB_NS_ID_MAX] = 'a';
	id[JOB_NS_ID_MAX + 1] = '\0';
	T_CHECK("103 is refused",
	        job_ns_make("alice", id, out, sizeof(out), err, sizeof(err)) == -1 && strstr(err, "102") != NULL);
	T_DONE();
}
