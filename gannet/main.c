/* gannet: the fetch client's command line (fetch, check, probe), parallel accounts and --every. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "fetch.h"
#include "log.h"
#include "probe.h"
#include "progress.h"

struct opts {
	const char *config;
	int verbose;
	bool quiet, json;
	uint64_t every; /* seconds; 0 = run once */
};

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void usage(FILE *f)
{
	fputs("usage: gannet [-c FILE] [-v|-q] [--json] [--every INTERVAL] fetch [ACCOUNT...]\n"
	      "       gannet [-c FILE] [-v] check ACCOUNT\n"
	      "       gannet [-v] probe [--tls|--starttls|--plain] [--ca-file FILE] HOST[:PORT]\n"
	      "See gannet(1).\n",
	      f);
}

/* Report one account's result the way the user asked for. */
static void report(const char *name, const struct fetch_stats *st, const struct opts *o)
{
	if (o->json)
		progress_json(name, st);
	else
		progress_summary(name, st);
	if (st->exit_code != 0 && !o->json)
		log_warnx("%s: %s", name, st->error);
}

/* Run one account in a child, which sends its stats through RESULT_FD. */
static pid_t spawn_account(const struct gconfig *cfg, const struct account *a, int slot,
                           int prog_fd, int *result_fd_r)
{
	int res[2];
	pid_t pid;

	if (pipe2(res, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(res[0]);
		close(res[1]);
		return -1;
	}
	if (pid == 0) {
		struct fetch_stats st;
		/* Dies with the parent: a killed gannet must not leave fetches running. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(EX_OSERR);
		close(res[0]);
		progress_to_parent(prog_fd, slot);
		fetch_account(cfg, a, &st);
		write_all(res[1], &st, sizeof(st));
		_exit(0);
	}
	close(res[1]);
	*result_fd_r = res[0];
	return pid;
}

static int run_parallel(const struct gconfig *cfg, struct account **acc, size_t n,
                        const struct opts *o)
{
	pid_t pids[GANNET_ACCOUNTS_MAX] = {0};
	int rfd[GANNET_ACCOUNTS_MAX], codes[GANNET_ACCOUNTS_MAX] = {0}, prog[2];
	size_t next = 0, running = 0, done = 0;

	if (pipe2(prog, O_CLOEXEC | O_NONBLOCK) < 0)
		fatal("pipe");
	while (done < n) {
		while (running < (size_t)cfg->jobs && next < n) {
			pids[next] = spawn_account(cfg, acc[next], (int)next, prog[1], &rfd[next]);
			if (pids[next] < 0)
				fatal("fork");
			next++;
			running++;
		}
		struct pollfd p = {.fd = prog[0], .events = POLLIN};
		poll(&p, 1, 100);
		progress_collect(prog[0]);
		int status;
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			size_t i;
			struct fetch_stats st;
			for (i = 0; i < next && pids[i] != pid; i++)
				;
			if (i == next)
				continue;
			if (read(rfd[i], &st, sizeof(st)) != (ssize_t)sizeof(st)) {
				memset(&st, 0, sizeof(st));
				st.exit_code = EX_SOFTWARE;
				st.errors = 1;
				snprintf(st.error, sizeof(st.error),
				         "the fetch process died (status %d)", status);
			}
			close(rfd[i]);
			codes[i] = st.exit_code;
			progress_collect_end();
			report(acc[i]->name, &st, o);
			running--;
			done++;
		}
	}
	close(prog[0]);
	close(prog[1]);
	for (size_t i = 0; i < n; i++)
		if (codes[i] != 0)
			return codes[i];
	return 0;
}

/* Fetch the accounts once; the exit code is the first failing account's, in config order. */
static int run_once(const struct gconfig *cfg, struct account **acc, size_t n, const struct opts *o,
                    uint64_t *login_delay_r)
{
	int rc = 0;

	*login_delay_r = 0;
	if (n > 1 && cfg->jobs > 1)
		return run_parallel(cfg, acc, n, o);
	for (size_t i = 0; i < n; i++) {
		struct fetch_stats st;
		fetch_account(cfg, acc[i], &st);
		report(acc[i]->name, &st, o);
		if (st.login_delay > *login_delay_r)
			*login_delay_r = st.login_delay;
		if (rc == 0)
			rc = st.exit_code;
	}
	return rc;
}

static int cmd_fetch(const struct gconfig *cfg, int argc, char **argv, const struct opts *o)
{
	struct account *acc[GANNET_ACCOUNTS_MAX];
	size_t n = 0;
	uint64_t delay;
	int rc;

	if (argc == 0) {
		memcpy(acc, cfg->acc, cfg->n_acc * sizeof(acc[0]));
		n = cfg->n_acc;
	}
	for (int i = 0; i < argc; i++) {
		if ((acc[n] = config_find(cfg, argv[i])) == NULL) {
			fprintf(stderr, "gannet: no account '%s' in %s\n", argv[i], cfg->path);
			return EX_USAGE;
		}
		if (++n == GANNET_ACCOUNTS_MAX)
			break;
	}
	for (;;) {
		rc = run_once(cfg, acc, n, o, &delay);
		if (o->every == 0 || stop_requested)
			return o->every ? 0 : rc;
		uint64_t wait_s = o->every;
		/* Never poll faster than the server allows (RFC 2449 §6.5, C-030). */
		if (delay > wait_s) {
			log_warnx("the server allows a login every %llu s only; waiting that long",
			          (unsigned long long)delay);
			wait_s = delay;
		}
		struct timespec ts = {(time_t)wait_s, 0};
		while (!stop_requested && nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		if (stop_requested)
			return 0;
	}
}

static int cmd_probe(int argc, char **argv, int timeout)
{
	static const struct option lo[] = {{"tls", no_argument, NULL, 't'},
	                                   {"starttls", no_argument, NULL, 's'},
	                                   {"plain", no_argument, NULL, 'p'},
	                                   {"ca-file", required_argument, NULL, 'C'},
	                                   {NULL, 0, NULL, 0}};
	const char *tls = NULL, *ca = NULL;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
		switch (c) {
		case 't':
			tls = "tls";
			break;
		case 's':
			tls = "starttls";
			break;
		case 'p':
			tls = "none";
			break;
		case 'C':
			ca = optarg;
			break;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (argc - optind != 1) {
		usage(stderr);
		return EX_USAGE;
	}
	return probe_host(argv[optind], tls, ca, timeout);
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {{"config", required_argument, NULL, 'c'},
	                                   {"verbose", no_argument, NULL, 'v'},
	                                   {"quiet", no_argument, NULL, 'q'},
	                                   {"json", no_argument, NULL, 'j'},
	                                   {"every", required_argument, NULL, 'e'},
	                                   {"help", no_argument, NULL, 'h'},
	                                   {NULL, 0, NULL, 0}};
	int c;

	while ((c = getopt_long(argc, argv, "+c:vqh", lo, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 'v':
			o->verbose++;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'j':
			o->json = true;
			break;
		case 'e':
			if (parse_duration(optarg, 1, GANNET_EVERY_MAX, &o->every) < 0) {
				fprintf(stderr, "gannet: --every wants a duration like 5m\n");
				return -1;
			}
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	char defpath[GANNET_PATH_MAX];
	struct gconfig cfg;
	struct gerr e = {0};
	const char *cmd;
	int rc;

	signal(SIGPIPE, SIG_IGN);
	if (parse_opts(argc, argv, &o) < 0)
		return EX_USAGE;
	log_init("gannet", true,
	         o.verbose >= 2   ? LOG_LEVEL_DEBUG
	         : o.verbose == 1 ? LOG_LEVEL_INFO
	         : o.quiet        ? LOG_LEVEL_ERR
	                          : LOG_LEVEL_WARN);
	if (optind >= argc) {
		usage(stderr);
		return EX_USAGE;
	}
	cmd = argv[optind];
	argc -= optind + 1;
	argv += optind + 1;
	if (strcmp(cmd, "probe") == 0)
		return cmd_probe(argc + 1, argv - 1, GANNET_HANDSHAKE_TIMEOUT);
	if (strcmp(cmd, "fetch") != 0 && strcmp(cmd, "check") != 0) {
		usage(stderr);
		return EX_USAGE;
	}
	if (o.config == NULL) {
		if (config_default_path(defpath, sizeof(defpath)) < 0) {
			fprintf(stderr, "gannet: HOME is not set; use -c FILE\n");
			return EX_CONFIG;
		}
		o.config = defpath;
	}
	if (config_load(o.config, &cfg, &e) < 0) {
		fprintf(stderr, "gannet: %s\n", e.msg);
		config_free(&cfg);
		return e.code;
	}
	if (strcmp(cmd, "check") == 0) {
		struct account *a = argc == 1 ? config_find(&cfg, argv[0]) : NULL;
		if (argc != 1) {
			usage(stderr);
			rc = EX_USAGE;
		} else if (a == NULL) {
			fprintf(stderr, "gannet: no account '%s' in %s\n", argv[0], cfg.path);
			rc = EX_USAGE;
		} else {
			rc = check_account(&cfg, a);
		}
	} else {
		struct sigaction sa = {.sa_handler = on_stop};
		progress_enable(isatty(STDERR_FILENO) && !o.json && !o.quiet);
		if (o.every > 0) {
			sigaction(SIGINT, &sa, NULL);
			sigaction(SIGTERM, &sa, NULL);
		}
		rc = cmd_fetch(&cfg, argc, argv, &o);
	}
	config_free(&cfg);
	return rc;
}
