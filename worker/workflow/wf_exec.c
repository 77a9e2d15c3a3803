/*
 * wf_exec: the exec step. Parameters: argv (array of strings; argv[0] an absolute path listed in
 * workflow_exec_programs), cwd, env {NAME: value}, stdin (string), timeout_s. No shell is involved unless
 * argv itself names one (and it is allowed). Output: {exit_code, stdout, stderr, json?, truncated}.
 *
 * The program runs in its own process group with an environment built from scratch - PATH plus the step's
 * env, whose names must be listed in workflow_exec_env_allow (wf_exec_env_name_ok: never a loader, shell or
 * interpreter hook such as LD_*, BASH_FUNC_*, BASH_ENV, ENV, IFS or PATH unless listed by its exact name) - and
 * dies with the worker (PR_SET_PDEATHSIG). When the job is asked to stop, or the step's deadline passes, or
 * the program exits, the whole group gets SIGKILL, so nothing it started outlives the step.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "jsonx.h"
#include "workflow.h"
#include "xmalloc.h"

#define WF_EXEC_ARGS_MAX 256
#define WF_EXEC_ENV_MAX  64
#define WF_EXEC_PATH     "PATH=/usr/local/bin:/usr/bin:/bin"
/* After the program exits, how long its pipes may stay open (a background child holding them) before the
 * group is killed and the output taken as it is. */
#define WF_EXEC_DRAIN_MS 200

/*
 * Names that change how a program (or the loader, a shell, an interpreter) behaves before it does its own
 * work: with one of these an allowlisted script runs arbitrary code. Refused unless the operator lists the
 * exact name in workflow_exec_env_allow (a "PREFIX*" entry never admits them). A trailing '*' here is a prefix.
 */
static const char *const dangerous_env[] = {"BASH_FUNC_*", "LD_*",        "PATH",
                                            "IFS",         "ENV",         "BASH_ENV",
                                            "BASHOPTS",    "SHELLOPTS",   "CDPATH",
                                            "GLOBIGNORE",  "PS4",         "PROMPT_COMMAND",
                                            "HOME",        "TMPDIR",      "GCONV_PATH",
                                            "LOCPATH",     "NLSPATH",     "HOSTALIASES",
                                            "RESOLV_*",    "MALLOC_*",    "GLIBC_TUNABLES",
                                            "PYTHON*",     "PERL5*",      "PERLLIB",
                                            "RUBY*",       "NODE_*",      "JAVA_TOOL_OPTIONS",
                                            "_JAVA_*",     "LUA_*",       "TCLLIBPATH",
                                            "GIT_*",       "SSL_CERT_*",  "CURL_CA_BUNDLE",
                                            "http_proxy",  "https_proxy", "HTTP_PROXY",
                                            "HTTPS_PROXY", "ALL_PROXY",   "all_proxy",
                                            NULL};

/* 1 if name matches pattern (a trailing '*' matches any rest). */
static int
env_match(const char *pattern, const char *name)
{
	size_t n = strlen(pattern);
	if (n > 0 && pattern[n - 1] == '*')
		return strncmp(pattern, name, n - 1) == 0;
	return strcmp(pattern, name) == 0;
}

int
wf_exec_env_name_ok(const struct wf_config *cfg, const char *name)
{
	/* A portable name only: "BASH_FUNC_echo%%" and friends are never passed, whatever the list says. */
	if (name[0] == '\0' || (name[0] >= '0' && name[0] <= '9'))
		return 0;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return 0;
	if (wf_list_has(cfg->exec_env_allow, name, 0))
		return 1; /* listed by its exact name: the operator's explicit choice */
	for (size_t i = 0; dangerous_env[i] != NULL; i++)
		if (env_match(dangerous_env[i], name))
			return 0;
	for (const char *p = cfg->exec_env_allow; *p;) {
		while (*p == ',' || *p == ' ')
			p++;
		size_t k = 0;
		while (p[k] && p[k] != ',' && p[k] != ' ')
			k++;
		char pat[128];
		if (k >= 1 && k < sizeof(pat) && p[k - 1] == '*') {
			memcpy(pat, p, k);
			pat[k] = '\0';
			if (env_match(pat, name))
				return 1;
		}
		p += k;
	}
	return 0;
}

int
wf_exec_validate(const struct wf_def *def, const struct wf_step *st, const struct wf_config *cfg, char *err,
                 size_t errlen)
{
	json_t *argv = json_object_get(st->params, "argv"), *env = json_object_get(st->params, "env");
	if (!cfg->exec_enabled) {
		snprintf(err, errlen, "exec steps are disabled (workflow_exec_enabled = 0)");
		return -1;
	}
	if (!json_is_array(argv) || json_array_size(argv) == 0 || json_array_size(argv) > WF_EXEC_ARGS_MAX) {
		snprintf(err, errlen, "exec: \"argv\" must be a non-empty array of strings");
		return -1;
	}
	size_t i;
	json_t *a;
	json_array_foreach(argv, i, a) if (!json_is_string(a))
	{
		snprintf(err, errlen, "exec: argv[%zu] is not a string", i);
		return -1;
	}
	const char *prog = json_string_value(json_array_get(argv, 0));
	if (strstr(prog, "{{") != NULL || !wf_list_has(cfg->exec_programs, prog, 0)) {
		snprintf(err, errlen, "exec: program %.200s is not in workflow_exec_programs", prog);
		return -1;
	}
	if (env != NULL && (!json_is_object(env) || json_object_size(env) > WF_EXEC_ENV_MAX)) {
		snprintf(err, errlen, "exec: \"env\" must be an object of at most %d strings", WF_EXEC_ENV_MAX);
		return -1;
	}
	const char *k;
	json_t *v;
	json_object_foreach(env, k, v) if (!wf_exec_env_name_ok(cfg, k))
	{
		snprintf(err, errlen, "exec: env variable %.100s is not allowed (workflow_exec_env_allow)", k);
		return -1;
	}
	return 0;
}

/* In the child: never returns. */
static void
child_exec(char **argv, char **envp, const char *cwd, int in, int out, int errfd)
{
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(errfd, 2) < 0)
		_exit(126);
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	if (cwd != NULL && chdir(cwd) < 0) {
		dprintf(2, "cannot enter %s: %s\n", cwd, strerror(errno));
		_exit(126);
	}
	execve(argv[0], argv, envp);
	dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

struct capture {
	char *buf;
	size_t len, max;
	int truncated;
	int fd;
};

static void
capture_read(struct capture *c)
{
	char tmp[8192];
	ssize_t n = read(c->fd, tmp, sizeof(tmp));
	if (n <= 0) {
		if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
			close(c->fd);
			c->fd = -1;
		}
		return;
	}
	size_t take = (size_t)n;
	if (c->len + take > c->max) {
		take = c->max - c->len;
		c->truncated = 1;
	}
	memcpy(c->buf + c->len, tmp, take);
	c->len += take;
	c->buf[c->len] = '\0';
}

/* A JSON string of captured bytes; invalid UTF-8 is replaced by a note. New reference. */
static json_t *
capture_json(const struct capture *c)
{
	json_t *s = json_stringn(c->buf, c->len);
	return s ? s : json_string("(output is not valid UTF-8)");
}

static void
free_strv(char **v)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

enum wf_status
wf_exec_run(struct wf_step_call *call, json_t **output, char *err, size_t errlen)
{
	json_t *p = call->params, *jargv = json_object_get(p, "argv"), *jenv = json_object_get(p, "env");
	const char *cwd = json_string_value(json_object_get(p, "cwd"));
	const char *in = json_string_value(json_object_get(p, "stdin"));
	/* argv[0] was checked before rendering; check it again in case a template changed it. */
	if (!json_is_array(jargv) ||
	    !wf_list_has(call->cfg->exec_programs,
	                 json_string_value(json_array_get(jargv, 0)) ? json_string_value(json_array_get(jargv, 0)) : "",
	                 0)) {
		snprintf(err, errlen, "exec: program not allowed");
		return WF_FATAL;
	}
	size_t n = json_array_size(jargv), i;
	char **argv = xcalloc(n + 1, sizeof(char *)), **envp = xcalloc(WF_EXEC_ENV_MAX + 2, sizeof(char *));
	for (i = 0; i < n; i++) {
		json_t *a = json_array_get(jargv, i);
		argv[i] = json_is_string(a) ? xstrdup(json_string_value(a)) : jsonx_dump(a); /* a rendered number */
	}
	size_t ne = 0;
	/* From scratch: nothing of the worker's own environment. A PATH the operator allows replaces this one. */
	if (json_object_get(jenv, "PATH") == NULL || !wf_exec_env_name_ok(call->cfg, "PATH"))
		envp[ne++] = xstrdup(WF_EXEC_PATH);
	const char *k;
	json_t *v;
	json_object_foreach(jenv, k, v)
	{
		if (ne > WF_EXEC_ENV_MAX)
			break;
		if (!wf_exec_env_name_ok(call->cfg, k)) { /* checked at validation; again, as for argv[0] */
			snprintf(err, errlen, "exec: env variable %.100s is not allowed (workflow_exec_env_allow)", k);
			free_strv(argv);
			free_strv(envp);
			return WF_FATAL;
		}
		if (wf_mask_name(call->cfg, k) && json_is_string(v))
			json_array_append_new(call->host->secrets, json_string(json_string_value(v)));
		char *val = json_is_string(v) ? xstrdup(json_string_value(v)) : jsonx_dump(v);
		envp[ne++] = xasprintf("%s=%s", k, val);
		free(val);
	}
	int pin[2], pout[2], perr[2];
	if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "exec: pipe: %s", strerror(errno));
		free_strv(argv);
		free_strv(envp);
		return WF_FAIL;
	}
	pid_t pid = fork();
	if (pid == 0)
		child_exec(argv, envp, cwd, pin[0], pout[1], perr[1]);
	setpgid(pid, pid);
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	free_strv(argv);
	free_strv(envp);
	if (pid < 0) {
		snprintf(err, errlen, "exec: fork: %s", strerror(errno));
		close(pin[1]);
		close(pout[0]);
		close(perr[0]);
		return WF_FAIL;
	}
	struct capture out = {xmalloc(call->cfg->max_output + 1), 0, call->cfg->max_output, 0, pout[0]};
	struct capture errc = {xmalloc(call->cfg->max_output + 1), 0, call->cfg->max_output, 0, perr[0]};
	out.buf[0] = errc.buf[0] = '\0';
	int infd = pin[1];
	size_t in_len = in ? strlen(in) : 0, in_off = 0;
	fcntl(infd, F_SETFL, O_NONBLOCK);
	if (in_len == 0) {
		close(infd);
		infd = -1;
	}
	int status = 0, exited = 0, stopped = 0, timed_out = 0;
	double exited_at = 0;
	for (;;) {
		if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
			exited = 1;
			exited_at = clock_monotonic_ms();
		}
		if (exited && ((out.fd < 0 && errc.fd < 0) || clock_monotonic_ms() - exited_at > WF_EXEC_DRAIN_MS))
			break;
		if (!exited && call->host->should_stop()) {
			stopped = 1;
			break;
		}
		if (!exited && call->host->deadline > 0 && clock_monotonic_ms() > call->host->deadline) {
			timed_out = 1;
			break;
		}
		struct pollfd pf[3] = {{out.fd, POLLIN, 0}, {errc.fd, POLLIN, 0}, {infd, POLLOUT, 0}};
		if (poll(pf, 3, 50) <= 0)
			continue;
		if (pf[0].revents)
			capture_read(&out);
		if (pf[1].revents)
			capture_read(&errc);
		if (infd >= 0 && pf[2].revents) {
			ssize_t w = write(infd, in + in_off, in_len - in_off);
			if (w > 0)
				in_off += (size_t)w;
			if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off == in_len) {
				close(infd);
				infd = -1;
			}
		}
	}
	/* The whole group goes: the program if it is still running, and anything it left behind. */
	kill(-pid, SIGKILL);
	if (!exited)
		waitpid(pid, &status, 0);
	if (infd >= 0)
		close(infd);
	if (out.fd >= 0)
		close(out.fd);
	if (errc.fd >= 0)
		close(errc.fd);
	enum wf_status st = WF_OK;
	if (stopped || timed_out) {
		snprintf(err, errlen, "exec: %s; killed process group %d", stopped ? "stopped" : "step timed out",
		         (int)pid);
		st = stopped ? WF_STOPPED : WF_FAIL;
	} else if (WIFSIGNALED(status)) {
		snprintf(err, errlen, "exec: %s killed by signal %d", json_string_value(json_array_get(jargv, 0)),
		         WTERMSIG(status));
		st = WF_FAIL;
	} else if (WEXITSTATUS(status) != 0) {
		snprintf(err, errlen, "exec: %s exited with status %d: %.300s",
		         json_string_value(json_array_get(jargv, 0)), WEXITSTATUS(status), errc.buf);
		st = WF_FAIL;
	} else {
		*output = json_pack("{s:i,s:o,s:o,s:b,s:i}", "exit_code", 0, "stdout", capture_json(&out), "stderr",
		                    capture_json(&errc), "truncated", out.truncated || errc.truncated, "pid", (int)pid);
		json_t *j = out.len ? json_loadb(out.buf, out.len, JSON_DECODE_ANY, NULL) : NULL;
		if (j != NULL)
			json_object_set_new(*output, "json", j);
	}
	free(out.buf);
	free(errc.buf);
	return st;
}
