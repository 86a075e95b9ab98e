/* gannet-bench: POP3 load generator (modes sessions, retr, bigbox, idle) and the deterministic
 * corpus tools that feed it. Prints one "result key=value ..." line per run for bench/run.sh. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "bench.h"
#include "strnum.h"

static double t_start;

void bench_die(const char *fmt, ...)
{
	va_list ap;

	fputs("gannet-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

void bench_result(const struct bench_opts *o, const char *fmt, ...)
{
	struct rusage ru;
	double wall = bench_now() - t_start, cpu;
	va_list ap;

	getrusage(RUSAGE_SELF, &ru);
	cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	      (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	printf("result mode=%s label=%s tls=%d ", o->mode, o->label, o->tls ? 1 : 0);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	/* The client shares the machine with the server: its CPU share tells whether the numbers
	 * measure the server or the load generator. */
	printf(" wall_s=%.3f client_cpu_s=%.3f client_cpu_pct=%.1f\n", wall, cpu,
	       wall > 0 ? 100.0 * cpu / wall : 0.0);
	fflush(stdout);
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: gannet-bench sessions|retr|bigbox|idle --port N [options]\n"
	        "       gannet-bench corpus tiny|small|big|huge SEED MAILDIR\n"
	        "       gannet-bench users PREFIX COUNT HOME_BASE HASH PASSWD_FILE\n"
	        "       gannet-bench freeport\n"
	        "       gannet-bench encode MAILDIR   (profiling driver)\n"
	        "options: --host 127.x.y.z --tls --tls-resume --user U --user-prefix P --users N\n"
	        "         --password PW --concurrency N --seconds S --max-sessions N --passes N\n"
	        "         --pipeline N (retr: RETRs in flight, 1..%d)\n"
	        "         --src-addrs N --server-pid PID --label L --ramp-timeout S\n",
	        BENCH_PIPELINE_MAX);
	exit(2);
}

static uint64_t opt_num(const char *name, const char *s, uint64_t min, uint64_t max)
{
	uint64_t v;

	if (strnum_parse(s, min, max, &v) < 0)
		bench_die("--%s: expected a number in %llu..%llu, got \"%s\"", name,
		          (unsigned long long)min, (unsigned long long)max, s);
	return v;
}

static double opt_seconds(const char *name, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v <= 0 ||
	    v > BENCH_SECONDS_MAX)
		bench_die("--%s: expected seconds in (0, %d], got \"%s\"", name, BENCH_SECONDS_MAX,
		          s);
	return v;
}

/* A free TCP port on 127.0.0.1 at this moment, for scripts that start servers. */
static int freeport(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		bench_die("freeport: %s", strerror(errno));
	printf("%u\n", ntohs(a.sin_port));
	close(fd);
	return 0;
}

static void raise_nofile(unsigned need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur >= need + 64)
		return;
	rl.rlim_cur = rl.rlim_max < need + 64 ? rl.rlim_max : need + 64;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < need + 64)
		bench_die("descriptor limit %llu is too low for %u connections (ulimit -n)",
		          (unsigned long long)rl.rlim_cur, need);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"host", required_argument, NULL, 'H'},
	    {"port", required_argument, NULL, 'p'},
	    {"tls", no_argument, NULL, 't'},
	    {"tls-resume", no_argument, NULL, 'R'},
	    {"user", required_argument, NULL, 'u'},
	    {"user-prefix", required_argument, NULL, 'P'},
	    {"users", required_argument, NULL, 'U'},
	    {"password", required_argument, NULL, 'w'},
	    {"concurrency", required_argument, NULL, 'c'},
	    {"seconds", required_argument, NULL, 's'},
	    {"max-sessions", required_argument, NULL, 'n'},
	    {"passes", required_argument, NULL, 'k'},
	    {"pipeline", required_argument, NULL, 'L'},
	    {"src-addrs", required_argument, NULL, 'a'},
	    {"server-pid", required_argument, NULL, 'S'},
	    {"label", required_argument, NULL, 'l'},
	    {"ramp-timeout", required_argument, NULL, 'r'},
	    {NULL, 0, NULL, 0},
	};
	struct bench_opts o = {
	    .user = "bench",
	    .user_prefix = "u",
	    .user_count = 1,
	    .password = "bench",
	    .concurrency = 1,
	    .seconds = 5,
	    .max_sessions = BENCH_SESSIONS_MAX,
	    .passes = 1,
	    .pipeline = 1,
	    .src_addrs = 1,
	    .label = "-",
	    .ramp_timeout = 120,
	};
	const char *host = "127.0.0.1";
	uint64_t port = 0;
	int ch;

	if (argc < 2)
		usage();
	o.mode = argv[1];
	if (strcmp(o.mode, "corpus") == 0)
		return corpus_main(argc - 1, argv + 1);
	if (strcmp(o.mode, "users") == 0)
		return users_main(argc - 1, argv + 1);
	if (strcmp(o.mode, "freeport") == 0)
		return freeport();
	if (strcmp(o.mode, "encode") == 0)
		return profile_encode_main(argc - 1, argv + 1);
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'H':
			host = optarg;
			break;
		case 'p':
			port = opt_num("port", optarg, 1, 65535);
			break;
		case 't':
			o.tls = true;
			break;
		case 'R':
			o.tls_resume = true;
			break;
		case 'u':
			o.user = optarg;
			break;
		case 'P':
			o.user_prefix = optarg;
			break;
		case 'U':
			o.user_count = (unsigned)opt_num("users", optarg, 1, 1000000);
			break;
		case 'w':
			o.password = optarg;
			break;
		case 'c':
			o.concurrency =
			    (unsigned)opt_num("concurrency", optarg, 1, BENCH_CONNS_MAX);
			break;
		case 's':
			o.seconds = opt_seconds("seconds", optarg);
			break;
		case 'n':
			o.max_sessions = opt_num("max-sessions", optarg, 1, BENCH_SESSIONS_MAX);
			break;
		case 'k':
			o.passes = (unsigned)opt_num("passes", optarg, 1, 1000);
			break;
		case 'L':
			o.pipeline = (unsigned)opt_num("pipeline", optarg, 1, BENCH_PIPELINE_MAX);
			break;
		case 'a':
			o.src_addrs = (unsigned)opt_num("src-addrs", optarg, 1, 250);
			break;
		case 'S':
			o.server_pid = (int)opt_num("server-pid", optarg, 1, 1u << 30);
			break;
		case 'l':
			o.label = optarg;
			break;
		case 'r':
			o.ramp_timeout = opt_seconds("ramp-timeout", optarg);
			break;
		default:
			usage();
		}
	}
	if (optind != argc || port == 0)
		usage();
	o.server.sin_family = AF_INET;
	o.server.sin_port = htons((uint16_t)port);
	/* Load is only ever sent to this machine. */
	if (inet_pton(AF_INET, host, &o.server.sin_addr) != 1 ||
	    (ntohl(o.server.sin_addr.s_addr) >> 24) != 127)
		bench_die("--host must be an IPv4 loopback address (127.0.0.0/8), got \"%s\"",
		          host);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile(o.concurrency + 16);
	bconn_engine_init(&o);
	t_start = bench_now();
	if (strcmp(o.mode, "sessions") == 0)
		return mode_sessions(&o);
	if (strcmp(o.mode, "retr") == 0)
		return mode_retr(&o);
	if (strcmp(o.mode, "bigbox") == 0)
		return mode_bigbox(&o);
	if (strcmp(o.mode, "idle") == 0)
		return mode_idle(&o);
	usage();
}
