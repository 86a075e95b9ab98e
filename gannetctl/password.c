/* Reading a new password from the terminal without echo, or as one line from stdin; its quality
 * check with passwdqc. */
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <passwdqc.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "gannetctl.h"
#include "gannet_limits.h"

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

/* Reads bytes up to '\n' or end of file into BUF. Returns the length, or -1 on a read error or
 * interruption, -2 when the line does not fit in SIZE - 1 bytes. Reads one byte at a time so
 * that nothing after the line is consumed. */
static ssize_t read_line(int fd, char *buf, size_t size)
{
	size_t n = 0;
	bool too_long = false;

	for (;;) {
		char c;
		ssize_t r = read(fd, &c, 1);

		if (r < 0)
			return -1;
		if (r == 0 || c == '\n')
			break;
		if (n + 1 < size)
			buf[n++] = c;
		else
			too_long = true;
	}
	buf[n] = '\0';
	return too_long ? -2 : (ssize_t)n;
}

static int check(const char *buf, size_t len)
{
	if (len == 0) {
		warnx("empty password refused");
		return -1;
	}
	if (memchr(buf, '\0', len) != NULL) {
		warnx("password contains a NUL byte");
		return -1;
	}
	return 0;
}

static int from_stdin(char *buf, size_t size, size_t *len_r)
{
	ssize_t n;

	/* PASSWORD_MAX bytes plus "\r" fit; one more byte means too long. */
	if (size < PASSWORD_MAX + 2)
		return -1;
	n = read_line(STDIN_FILENO, buf, PASSWORD_MAX + 2);
	if (n == -1) {
		warn("reading the password from stdin");
		return -1;
	}
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	if (n == -2 || n > PASSWORD_MAX) {
		warnx("password longer than %d bytes", PASSWORD_MAX);
		return -1;
	}
	*len_r = (size_t)n;
	return check(buf, *len_r);
}

static int prompt(int tty, const char *text, char *buf, size_t size, size_t *len_r)
{
	ssize_t n;

	if (write(tty, text, strlen(text)) < 0)
		return -1;
	n = read_line(tty, buf, size);
	(void)!write(tty, "\n", 1);
	if (n == -2 || n > PASSWORD_MAX) {
		warnx("password longer than %d bytes", PASSWORD_MAX);
		return -1;
	}
	if (n < 0) {
		if (got_signal == 0)
			warn("reading the password from /dev/tty");
		return -1;
	}
	*len_r = (size_t)n;
	return 0;
}

static int from_tty(char *buf, size_t size, size_t *len_r)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
	struct sigaction sa, old[sizeof(sigs) / sizeof(sigs[0])];
	struct termios saved, quiet;
	char again[PASSWORD_MAX + 2];
	size_t len2 = 0;
	int tty, ret = -1;

	tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (tty < 0) {
		warn("/dev/tty (use --password-stdin)");
		return -1;
	}
	if (tcgetattr(tty, &saved) < 0) {
		warn("/dev/tty");
		close(tty);
		return -1;
	}
	/* No SA_RESTART: a signal interrupts read() so the echo is restored before we die. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, &old[i]);
	quiet = saved;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	if (tcsetattr(tty, TCSAFLUSH, &quiet) < 0) {
		warn("/dev/tty");
		goto out;
	}
	if (prompt(tty, "Password: ", buf, PASSWORD_MAX + 2, len_r) < 0 ||
	    prompt(tty, "Retype password: ", again, sizeof(again), &len2) < 0)
		goto out;
	if (*len_r != len2 || memcmp(buf, again, len2) != 0) {
		warnx("passwords do not match");
		goto out;
	}
	ret = check(buf, *len_r);
out:
	explicit_bzero(again, sizeof(again));
	tcsetattr(tty, TCSAFLUSH, &saved);
	close(tty);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &old[i], NULL);
	if (got_signal != 0) {
		explicit_bzero(buf, size);
		raise(got_signal);
	}
	return ret;
}

int password_read(bool stdin_line, char *buf, size_t size, size_t *len_r)
{
	if (size < PASSWORD_MAX + 2) {
		warnx("internal error: password buffer too small");
		return -1;
	}
	return stdin_line ? from_stdin(buf, size, len_r) : from_tty(buf, size, len_r);
}

int password_quality(const char *password, const char *name, const char *gecos, const char *home)
{
	passwdqc_params_t params;
	struct passwd pw = {0};
	const char *reason;

	/* The compile-time defaults (min=disabled,24,11,8,7 max=72 passphrase=3 match=4): no
	 * /etc/passwdqc.conf, so that the rule is the same on every host. */
	passwdqc_params_reset(&params);
	/* passwdqc reads only these; it refuses a password built on any of them. */
	pw.pw_name = (char *)name;
	pw.pw_gecos = (char *)gecos;
	pw.pw_dir = (char *)home;
	reason = passwdqc_check(&params.qc, password, NULL, &pw);
	passwdqc_params_free(&params);
	if (reason != NULL) {
		warnx("weak password: %s; use --force to store it anyway", reason);
		return -1;
	}
	return 0;
}
