/*
 * hopper-web: the HTTP front of hopperd (see web.h and hopper-web(8)). Reads its options from the command
 * line and an optional config file of "name = value" lines (the long option names, _ for - allowed), its own token from
 * a file, then serves until SIGTERM/SIGINT. Runs as any unprivileged user that may connect to the control socket; it
 * holds no Redis or SQLite handle.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "web.h"
#include "xmalloc.h"

static struct web_config cfg = {
        .listen = "127.0.0.1:8080",
        .socket = "/var/lib/hopper/hopper.sock",
        .token_file = NULL,
        .pool_max = 32,
        .watch_conns_max = 128,
        .sse_max = 2000,
        .conn_max = 4000,
        .conn_timeout_s = 30,
        .body_max = 1024 * 1024,
        .webhook_body_max = 256 * 1024,
        .webhook_rate = 60,
        .webhook_burst = 20,
        .stripe_tolerance_s = 300,
        .auth_fail_budget = 3,
        .session_ttl_s = 43200,
        .cookie_secure = 0,
        .timeout_ms = 30000,
};

enum opt_type { OT_STR, OT_INT, OT_SIZE, OT_BOOL };
static const struct opt {
	const char *name;
	enum opt_type type;
	void *at;
	long long min, max;
	const char *help;
} opts[] = {
        {"listen", OT_STR, &cfg.listen, 0, 0, "HOST:PORT to serve on (127.0.0.1:8080; [::1]:PORT for IPv6)"},
        {"socket", OT_STR, &cfg.socket, 0, 0, "hopperd's control socket (/var/lib/hopper/hopper.sock)"},
        {"token-file", OT_STR, &cfg.token_file, 0, 0, "file holding hopper-web's own token (or HOPPER_WEB_TOKEN)"},
        {"metrics-token-file", OT_STR, &cfg.metrics_token_file, 0, 0,
         "file holding the bearer token /metrics then requires (unset: /metrics is open)"},
        {"pool-max", OT_INT, &cfg.pool_max, 1, 1024, "control connections for requests, all tokens (32)"},
        {"watch-conns-max", OT_INT, &cfg.watch_conns_max, 1, 1024, "control connections for event streams (128)"},
        {"sse-max", OT_INT, &cfg.sse_max, 1, 100000, "open event streams (2000)"},
        {"conn-max", OT_INT, &cfg.conn_max, 1, 100000, "open HTTP connections (4000)"},
        {"conn-timeout", OT_INT, &cfg.conn_timeout_s, 2, 3600,
         "seconds before an idle or slow connection is closed (30)"},
        {"body-max", OT_SIZE, &cfg.body_max, 1024, 64 * 1024 * 1024, "largest /v1 request body, bytes (1048576)"},
        {"webhook-body-max", OT_SIZE, &cfg.webhook_body_max, 1024, 512 * 1024, "largest webhook body, bytes (262144)"},
        {"webhook-rate", OT_INT, &cfg.webhook_rate, 1, 1000000, "webhook requests per minute, per webhook (60)"},
        {"webhook-burst", OT_INT, &cfg.webhook_burst, 1, 1000000, "... of which at once (20)"},
        {"auth-fail-budget", OT_INT, &cfg.auth_fail_budget, 0, 100,
         "failed daemon auths per minute before unknown tokens wait (3)"},
        {"session-ttl", OT_INT, &cfg.session_ttl_s, 60, 30 * 86400, "dashboard login lifetime, seconds (43200)"},
        {"cookie-secure", OT_BOOL, &cfg.cookie_secure, 0, 1, "mark the session cookie Secure (behind TLS)"},
        {"timeout-ms", OT_INT, &cfg.timeout_ms, 100, 600000, "bound of each control request (30000)"},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static int
set_opt(const struct opt *o, const char *v, char *err, size_t errlen)
{
	char *end;
	long long n;
	switch (o->type) {
	case OT_STR: *(const char **)o->at = xstrdup(v); return 0;
	case OT_BOOL:
		if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
			*(int *)o->at = 1;
		else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
			*(int *)o->at = 0;
		else {
			snprintf(err, errlen, "%s: want yes or no, got %s", o->name, v);
			return -1;
		}
		return 0;
	default:
		n = strtoll(v, &end, 10);
		if (*v == '\0' || *end != '\0' || n < o->min || n > o->max) {
			snprintf(err, errlen, "%s: want an integer in %lld..%lld, got %s", o->name, o->min, o->max, v);
			return -1;
		}
		if (o->type == OT_SIZE)
			*(size_t *)o->at = (size_t)n;
		else
			*(int *)o->at = (int)n;
		return 0;
	}
}

static const struct opt *
find_opt(const char *name)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (strcmp(opts[i].name, name) == 0)
			return &opts[i];
	return NULL;
}

/* "name = value" lines; # comments. Errors name file:line. */
static void
read_config(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		fatal("%s: %s", path, strerror(errno));
	char line[1024], err[256];
	for (int ln = 1; fgets(line, sizeof(line), f) != NULL; ln++) {
		char *p = line + strspn(line, " \t");
		p[strcspn(p, "\r\n")] = '\0';
		if (*p == '#' || *p == '\0')
			continue;
		char *eq = strchr(p, '=');
		if (eq == NULL)
			fatal("%s:%d: want name = value: %s", path, ln, p);
		char *k = p, *v = eq + 1;
		for (char *e = eq; e > k && (e[-1] == ' ' || e[-1] == '\t'); e--)
			e[-1] = '\0';
		*eq = '\0';
		v += strspn(v, " \t");
		for (char *e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t'); e--)
			e[-1] = '\0';
		for (char *u = k; *u != '\0'; u++) /* metrics_token_file = metrics-token-file, as in hopperd.conf */
			if (*u == '_')
				*u = '-';
		const struct opt *o = find_opt(k);
		if (o == NULL)
			fatal("%s:%d: unknown option %s", path, ln, k);
		if (set_opt(o, v, err, sizeof(err)) != 0)
			fatal("%s:%d: %s", path, ln, err);
	}
	fclose(f);
}

static void
usage(FILE *to)
{
	fprintf(to, "usage: hopper-web [--config FILE] [--OPTION VALUE ...] [-n] [--routes]\n"
	            "The HTTP API (/v1), webhooks (/webhook/TOKEN), Prometheus metrics (/metrics) and the dashboard\n"
	            "(/) of hopperd, over its control socket. Options (also \"name = value\" lines in --config):\n");
	for (size_t i = 0; i < NOPTS; i++)
		fprintf(to, "  --%-18s %s\n", opts[i].name, opts[i].help);
	fprintf(to, "  --config FILE        read options from FILE first\n"
	            "  --log-level L        error, warn, info (default), debug\n"
	            "  -n, --check-config   check the options and exit\n"
	            "  --routes             print the HTTP API's route table as JSON and exit\n"
	            "  -h, --help           this text\n"
	            "See hopper-web(8).\n");
}

static char *
read_token(void)
{
	const char *env = getenv("HOPPER_WEB_TOKEN");
	if (cfg.token_file == NULL)
		return env != NULL && *env ? xstrdup(env) : NULL;
	FILE *f = fopen(cfg.token_file, "r");
	if (f == NULL)
		fatal("token-file %s: %s", cfg.token_file, strerror(errno));
	char buf[WEB_TOKEN_MAX + 2] = "";
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\r\n \t")] = '\0';
	if (buf[0] == '\0')
		fatal("token-file %s is empty", cfg.token_file);
	return xstrdup(buf);
}

/*
 * The first word of a secret file (a regular file: O_NONBLOCK so that a FIFO cannot block the open, and the
 * type check refuses it). Fatal when it cannot be read or is empty. Caller frees.
 */
static char *
read_secret_file(const char *what, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		fatal("%s %s: %s", what, path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		fatal("%s %s: not a regular file", what, path);
	if (st.st_mode & S_IRWXO)
		log_warn("%s %s is accessible by others (mode %04o): chmod o-rwx it", what, path,
		         (unsigned)(st.st_mode & 07777));
	char buf[WEB_TOKEN_MAX + 2];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		fatal("%s %s: %s", what, path, strerror(errno));
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n \t")] = '\0';
	if (buf[0] == '\0')
		fatal("%s %s is empty", what, path);
	if ((size_t)n == sizeof(buf) - 1 && strlen(buf) == (size_t)n)
		fatal("%s %s: longer than %d bytes", what, path, WEB_TOKEN_MAX);
	char *t = xstrdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return t;
}

int
main(int argc, char **argv)
{
	enum log_level lvl = LOG_LVL_INFO;
	int check = 0;
	struct option lo[NOPTS + 6];
	size_t k = 0;
	for (; k < NOPTS; k++)
		lo[k] = (struct option){opts[k].name, required_argument, NULL, 1000 + (int)k};
	lo[k++] = (struct option){"config", required_argument, NULL, 'c'};
	lo[k++] = (struct option){"log-level", required_argument, NULL, 'l'};
	lo[k++] = (struct option){"check-config", no_argument, NULL, 'n'};
	lo[k++] = (struct option){"routes", no_argument, NULL, 'r'};
	lo[k++] = (struct option){"help", no_argument, NULL, 'h'};
	lo[k] = (struct option){NULL, 0, NULL, 0};
	log_init("hopper-web", LOG_LVL_INFO);
	/* The config file first, so the command line wins over it. */
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "--config") == 0)
			read_config(argv[i + 1]);
	int c;
	char err[256];
	while ((c = getopt_long(argc, argv, "nh", lo, NULL)) != -1) {
		if (c >= 1000) {
			if (set_opt(&opts[c - 1000], optarg, err, sizeof(err)) != 0) {
				fprintf(stderr, "hopper-web: %s\n", err);
				return 2;
			}
		} else if (c == 'c')
			;
		else if (c == 'l') {
			if (log_level_parse(optarg, &lvl) != 0) {
				fprintf(stderr, "hopper-web: --log-level: error, warn, info or debug\n");
				return 2;
			}
		} else if (c == 'n')
			check = 1;
		else if (c == 'r') {
			json_t *r = routes_json();
			json_dumpf(r, stdout, JSON_INDENT(2));
			putchar('\n');
			json_decref(r);
			return 0;
		} else if (c == 'h') {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	log_init("hopper-web", lvl);
	cfg.token = read_token();
	if (cfg.token == NULL)
		fatal("no token of its own: give --token-file FILE or HOPPER_WEB_TOKEN (needs scopes submit,read)");
	if (cfg.metrics_token_file != NULL)
		cfg.metrics_token = read_secret_file("metrics-token-file", cfg.metrics_token_file);
	if (check) {
		printf("hopper-web: configuration ok\n");
		return 0;
	}
	/* Every open event stream is a socket: take the hard limit of descriptors. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	pool_init(&cfg);
	sse_init(&cfg);
	session_init(&cfg);
	webhook_init(&cfg);
	if (http_start(&cfg) != 0)
		return 1;
	log_info("serving on http://%s (control socket %s)", cfg.listen, cfg.socket);
	int sig = 0;
	sigwait(&set, &sig);
	log_info("signal %d: stopping", sig);
	http_stop();
	sse_shutdown();
	pool_shutdown();
	free(cfg.token);
	free(cfg.metrics_token);
	return 0;
}
