/* gannetctl penalty list | clear: talks to the running gannetd over its control socket
 * (state_dir/control), because the brute-force table lives in the auth process's memory. */
#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "gannetctl.h"

/* The longest answer we print: one IPC message of text. */
#define CONTROL_REPLY_MAX 65536
/* Seconds we wait for gannetd to answer. */
#define CONTROL_WAIT_SECONDS 10

/* Send LINE to the control socket of the gannetd configured in A; print the answer. */
static int control_command(const struct cmd_args *a, const char *line)
{
	const char *conf = a->conf_path != NULL ? a->conf_path : GANNETCTL_CONF_DEFAULT;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {CONTROL_WAIT_SECONDS, 0};
	static char reply[CONTROL_REPLY_MAX + 1];
	char dir[4096];
	size_t got = 0;
	ssize_t n;
	int fd, r;

	if ((r = conf_value(conf, "state_dir", dir, sizeof(dir))) <= 0) {
		if (r == 0)
			warnx("%s: state_dir is empty", conf);
		return EXIT_FAIL;
	}
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/control", dir) >=
	    sizeof(sun.sun_path)) {
		warnx("%s/control: path too long for a socket", dir);
		return EXIT_FAIL;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		err(EXIT_FAIL, "socket");
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		warn("%s (is gannetd running?)", sun.sun_path);
		close(fd);
		return EXIT_FAIL;
	}
	if (dprintf(fd, "%s\n", line) < 0) {
		warn("%s", sun.sun_path);
		close(fd);
		return EXIT_FAIL;
	}
	while (got < CONTROL_REPLY_MAX &&
	       (n = read(fd, reply + got, CONTROL_REPLY_MAX - got)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			warn("%s: no answer", sun.sun_path);
			close(fd);
			return EXIT_FAIL;
		}
		got += (size_t)n;
	}
	close(fd);
	reply[got] = '\0';
	if (strncmp(reply, "OK\n", 3) == 0) {
		fputs(reply + 3, stdout);
		return 0;
	}
	warnx("gannetd: %s", strncmp(reply, "ERR ", 4) == 0 ? reply + 4 : "unexpected answer");
	return EXIT_FAIL;
}

int cmd_penalty_list(const struct cmd_args *a)
{
	return control_command(a, "penalty list");
}

int cmd_penalty_clear(const struct cmd_args *a)
{
	const char *what = args_get(a, "WHAT");
	char line[512];

	if (what == NULL)
		return control_command(a, "penalty clear");
	if (what[0] == '\0' || strlen(what) > 300 || strpbrk(what, "\r\n ") != NULL) {
		warnx("penalty clear: give one address, address/64 or user name");
		return EXIT_USAGE;
	}
	snprintf(line, sizeof(line), "penalty clear %s", what);
	return control_command(a, line);
}
