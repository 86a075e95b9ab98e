/* Helpers shared by the fetch client's modules: errors, clocks, paths and child commands. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "climits.h"

extern char **environ;

static void gerr_vset(struct gerr *e, int code, int errnum, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static void gerr_vset(struct gerr *e, int code, int errnum, const char *fmt, va_list ap)
{
	int n;

	if (e->code != 0)
		return;
	e->code = code;
	n = vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	if (errnum != 0 && n >= 0 && (size_t)n < sizeof(e->msg))
		snprintf(e->msg + n, sizeof(e->msg) - (size_t)n, ": %s", strerror(errnum));
}

void gerr_set(struct gerr *e, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	gerr_vset(e, code, 0, fmt, ap);
	va_end(ap);
}

void gerr_sys(struct gerr *e, int code, const char *fmt, ...)
{
	int errnum = errno;
	va_list ap;

	va_start(ap, fmt);
	gerr_vset(e, code, errnum, fmt, ap);
	va_end(ap);
}

void gerr_clear(struct gerr *e)
{
	e->code = 0;
	e->msg[0] = '\0';
}

int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int fmt_path(char *out, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int expand_home(const char *in, char *out, size_t size)
{
	const char *home;

	if (strncmp(in, "~/", 2) != 0)
		return fmt_path(out, size, "%s", in);
	home = getenv("HOME");
	if (home == NULL || home[0] != '/')
		return -1;
	return fmt_path(out, size, "%s/%s", home, in + 2);
}

int mkdir_p(const char *path, mode_t mode)
{
	char buf[GANNET_PATH_MAX];

	if (fmt_path(buf, sizeof(buf), "%s", path) < 0)
		return -1;
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -1;
		*p = saved;
		if (saved == '\0')
			return 0;
	}
}

int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void hex_encode(const unsigned char *data, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hex[data[i] >> 4];
		out[2 * i + 1] = hex[data[i] & 15];
	}
	out[2 * len] = '\0';
}

/* Build the child's environment: ours plus EXTRA. NULL on allocation failure. */
static char **child_env(char *const extra[])
{
	size_t n = 0, m = 0;
	char **env;

	while (environ[n] != NULL)
		n++;
	while (extra != NULL && extra[m] != NULL)
		m++;
	env = calloc(n + m + 1, sizeof(*env));
	if (env == NULL)
		return NULL;
	if (m > 0)
		memcpy(env, extra, m * sizeof(*env));
	memcpy(env + m, environ, n * sizeof(*env));
	return env;
}

/* Wait for PID until DEADLINE; kill it when the time is up. Returns the wait status or -1. */
static int wait_child(pid_t pid, int64_t deadline, bool *timed_out_r)
{
	int status, nap = 1;

	*timed_out_r = false;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0 && errno != EINTR)
			return -1;
		if (now_ms() >= deadline && !*timed_out_r) {
			kill(pid, SIGKILL);
			*timed_out_r = true;
		}
		/* short naps first: an MDA usually finishes within milliseconds */
		poll(NULL, 0, nap);
		nap = nap < 50 ? nap * 2 : 50;
	}
}

int run_command(const char *cmd, int in_fd, char *out, size_t outsize, size_t *outlen_r,
                char *const env[], int timeout_s, struct gerr *e)
{
	int64_t deadline = now_ms() + (int64_t)timeout_s * 1000;
	posix_spawn_file_actions_t fa;
	char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
	int pipefd[2] = {-1, -1}, status, rc = -1;
	size_t got = 0;
	bool timed_out, overflow = false;
	char **cenv;
	pid_t pid;

	if (outlen_r != NULL)
		*outlen_r = 0;
	if (out != NULL && pipe2(pipefd, O_CLOEXEC) < 0) {
		gerr_sys(e, EX_OSERR, "pipe");
		return -1;
	}
	cenv = child_env(env);
	posix_spawn_file_actions_init(&fa);
	if (in_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (out != NULL)
		posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	else
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	errno = cenv == NULL ? ENOMEM : posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, cenv);
	posix_spawn_file_actions_destroy(&fa);
	free(cenv);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	if (errno != 0) {
		gerr_sys(e, EX_OSERR, "cannot run '%s'", cmd);
		goto out;
	}
	while (out != NULL) {
		struct pollfd pfd = {.fd = pipefd[0], .events = POLLIN};
		int64_t left = deadline - now_ms();
		char sink[256];
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)left) == 0)
			break;
		if (got < outsize)
			n = read(pipefd[0], out + got, outsize - got);
		else
			n = read(pipefd[0], sink, sizeof(sink));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (got >= outsize)
			overflow = true;
		else
			got += (size_t)n;
	}
	status = wait_child(pid, deadline, &timed_out);
	if (timed_out)
		gerr_set(e, EX_TEMPFAIL, "'%s' did not finish within %d s", cmd, timeout_s);
	else if (status < 0)
		gerr_sys(e, EX_OSERR, "waitpid");
	else if (WIFSIGNALED(status))
		gerr_set(e, EX_SOFTWARE, "'%s' was killed by signal %d", cmd, WTERMSIG(status));
	else if (overflow)
		gerr_set(e, EX_DATAERR, "'%s' printed more than %zu bytes", cmd, outsize);
	else
		rc = WEXITSTATUS(status);
out:
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (outlen_r != NULL)
		*outlen_r = got;
	return rc;
}
