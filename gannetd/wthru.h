/* Write-through output for socket bufferevents (login and mail processes).
 *
 * A libevent socket bufferevent never writes when data is queued: it arms EPOLLOUT, waits for
 * the next epoll_wait to say the socket is writable (a socket with room always is), writes,
 * and disarms: two epoll_ctl calls and a loop turn for every reply. A POP3 session is a dozen
 * short replies, and on a virtual machine, where every system call costs a paravirtual exit,
 * that churn was a large share of a login (perf: epoll_ctl was the login process's most
 * frequent system call, 30 a TLS session). libevent offers no write-now mode for sockets, so
 * this small engine does it on top of the bufferevent, which keeps doing the reading, the
 * buffers and the callbacks:
 *
 *  - the bufferevent's EV_WRITE stays disabled, so libevent never arms the socket itself;
 *  - anything added to its output activates a flush event, which runs later in the same loop
 *    turn (no system call: several replies queued by one batch of commands go out in one
 *    writev) and writes until the output is empty or the socket is full;
 *  - only a full socket arms a persistent EV_WRITE event, with the write-stall timeout, and
 *    disarms it once the output is empty;
 *  - when the output falls to the write low-watermark the bufferevent's write callback runs
 *    (bufferevent_trigger), a write error or a stall reaches its event callback as
 *    BEV_EVENT_WRITING | BEV_EVENT_ERROR or BEV_EVENT_TIMEOUT, exactly as libevent would.
 *
 * Callbacks may free the connection, so the engine touches nothing after it calls one. Not
 * for TLS bufferevents, which encrypt in OpenSSL's own write path. */
#ifndef GANNETD_WTHRU_H
#define GANNETD_WTHRU_H

#include <stdbool.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

struct wthru {
	struct bufferevent *bev;
	struct event *flush; /* activated by additions to the output */
	struct event *wev;   /* EV_WRITE | EV_PERSIST on the socket, added only while it is full */
	struct timeval stall;
	bool armed;
};

/* Take over BEV's writing (BEV must be a socket bufferevent with a descriptor set). STALL:
 * how long a full socket may make no progress (NULL: no limit). 0, or -1 with errno. */
int wthru_start(struct wthru *w, struct event_base *base, struct bufferevent *bev,
                const struct timeval *stall);

/* Release the engine's events; call before freeing the bufferevent. Safe on a zeroed or
 * already stopped struct. */
void wthru_stop(struct wthru *w);

#endif
