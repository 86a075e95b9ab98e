/* The control socket (see control.h). Answers are "OK\n" or "ERR reason\n", then the text. */
#include "control.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "gannet_limits.h"
#include "log.h"

struct ctl_client {
	bool used;
	uint32_t id;
	bool waiting;  /* the command went to the auth process */
	bool answered; /* close once the answer has been written */
	struct bufferevent *bev;
};

static struct event_base *base;
static control_relay_fn relay;
static struct ctl_client clients[CONTROL_CLIENTS_MAX];
static uint32_t next_id = 1;
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static int listen_fd = -1;

static void client_free(struct ctl_client *c)
{
	bufferevent_free(c->bev);
	memset(c, 0, sizeof(*c));
}

static void client_write_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_client *c = arg;

	if (c->answered && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		client_free(c);
}

static void answer(struct ctl_client *c, const char *status_line, const void *text, size_t len)
{
	c->waiting = false;
	c->answered = true;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_enable(c->bev, EV_WRITE);
	bufferevent_write(c->bev, status_line, strlen(status_line));
	if (len > 0)
		bufferevent_write(c->bev, text, len);
}

/* Only commands we know travel on: the auth process checks them again. */
static bool command_known(const char *cmd)
{
	return strcmp(cmd, "penalty list") == 0 || strcmp(cmd, "penalty clear") == 0 ||
	       strncmp(cmd, "penalty clear ", 14) == 0;
}

static void client_read_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_client *c = arg;
	size_t len;
	char *line;

	if (c->waiting || c->answered)
		return;
	line = evbuffer_readln(bufferevent_get_input(bev), &len, EVBUFFER_EOL_LF);
	if (line == NULL) {
		if (evbuffer_get_length(bufferevent_get_input(bev)) > CONF_LINE_MAX)
			answer(c, "ERR command too long\n", NULL, 0);
		return;
	}
	if (len >= CONF_LINE_MAX || !command_known(line)) {
		answer(c, "ERR unknown command\n", NULL, 0);
	} else {
		log_info("event=control command=\"%s\"", line);
		c->waiting = true;
		if (relay(c->id, line) < 0)
			answer(c, "ERR the auth process is not running\n", NULL, 0);
	}
	free(line);
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	client_free(arg);
}

static void accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_client *c = NULL;
	struct timeval tv = {CONTROL_TIMEOUT, 0};
	int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (cfd < 0)
		return;
	for (size_t i = 0; i < CONTROL_CLIENTS_MAX; i++)
		if (!clients[i].used) {
			c = &clients[i];
			break;
		}
	if (c == NULL) {
		static const char busy[] = "ERR busy\n";
		if (write(cfd, busy, sizeof(busy) - 1) < 0)
			log_debug("control: busy reply not sent");
		close(cfd);
		return;
	}
	c->bev = bufferevent_socket_new(base, cfd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		close(cfd);
		return;
	}
	c->used = true;
	c->id = next_id++;
	bufferevent_setcb(c->bev, client_read_cb, client_write_cb, client_event_cb, c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_setwatermark(c->bev, EV_READ, 0, CONF_LINE_MAX + 1);
	bufferevent_enable(c->bev, EV_READ);
}

void control_reply(uint32_t id, uint32_t status, const void *text, size_t len)
{
	for (size_t i = 0; i < CONTROL_CLIENTS_MAX; i++) {
		struct ctl_client *c = &clients[i];

		if (c->used && c->waiting && c->id == id) {
			answer(c, status == 0 ? "OK\n" : "ERR command failed\n", text, len);
			return;
		}
	}
}

int control_open(struct event_base *b, const char *state_dir, control_relay_fn fn)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct event *ev;
	mode_t old;
	int n;

	base = b;
	relay = fn;
	n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/control", state_dir);
	if (n < 0 || (size_t)n >= sizeof(sun.sun_path)) {
		log_warnx("event=control_disabled reason=\"state_dir path too long for a socket\"");
		return -1;
	}
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (listen_fd < 0) {
		log_warn("control socket");
		return -1;
	}
	unlink(sun.sun_path);
	old = umask(0077); /* root only: penalty clear lifts a brute-force block */
	if (bind(listen_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(listen_fd, CONTROL_CLIENTS_MAX) < 0) {
		umask(old);
		log_warn("control socket %s", sun.sun_path);
		close(listen_fd);
		listen_fd = -1;
		return -1;
	}
	umask(old);
	snprintf(sock_path, sizeof(sock_path), "%s", sun.sun_path);
	ev = event_new(base, listen_fd, EV_READ | EV_PERSIST, accept_cb, NULL);
	if (ev == NULL || event_add(ev, NULL) < 0)
		fatal("event_new");
	return 0;
}

void control_close(void)
{
	if (sock_path[0] != '\0')
		unlink(sock_path);
}
