/* Write-through output for socket bufferevents: see wthru.h for why. */
#include "wthru.h"

#include <errno.h>

#include <event2/buffer.h>

static void wthru_write(struct wthru *w)
{
	struct bufferevent *bev = w->bev;
	struct evbuffer *out = bufferevent_get_output(bev);
	evutil_socket_t fd = bufferevent_getfd(bev);

	while (evbuffer_get_length(out) > 0) {
		int n;

		/* A socket bufferevent keeps the start of its output frozen against callers; its
		 * own write path unfreezes it for the write, and so does this one. */
		evbuffer_unfreeze(out, 1);
		errno = 0;
		n = evbuffer_write(out, fd);
		evbuffer_freeze(out, 1);

		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!w->armed) {
				const struct timeval *tv =
				    w->stall.tv_sec || w->stall.tv_usec ? &w->stall : NULL;

				if (event_add(w->wev, tv) < 0)
					break; /* reported as a write error below */
				w->armed = true;
			}
			return;
		}
		break; /* an error, or a socket that accepted nothing */
	}
	if (w->armed) {
		event_del(w->wev);
		w->armed = false;
	}
	if (evbuffer_get_length(out) > 0) {
		/* May free the connection: nothing after it. */
		bufferevent_trigger_event(bev, BEV_EVENT_WRITING | BEV_EVENT_ERROR, 0);
		return;
	}
	/* The output is empty: the write callback runs if its low-watermark allows (it may queue
	 * more, which activates the flush event again, or free the connection). */
	bufferevent_trigger(bev, EV_WRITE, 0);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wthru *w = arg;

	(void)fd;
	(void)what;
	if (!w->armed) /* while armed, the socket's writability drives the writing */
		wthru_write(w);
}

static void wev_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wthru *w = arg;

	(void)fd;
	if (what & EV_TIMEOUT) {
		event_del(w->wev);
		w->armed = false;
		bufferevent_trigger_event(w->bev, BEV_EVENT_WRITING | BEV_EVENT_TIMEOUT, 0);
		return;
	}
	wthru_write(w);
}

static void outbuf_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct wthru *w = arg;

	(void)buf;
	if (info->n_added > 0 && !w->armed)
		event_active(w->flush, EV_WRITE, 0);
}

int wthru_start(struct wthru *w, struct event_base *base, struct bufferevent *bev,
                const struct timeval *stall)
{
	evutil_socket_t fd = bufferevent_getfd(bev);

	*w = (struct wthru){.bev = bev};
	if (stall != NULL)
		w->stall = *stall;
	if (fd < 0) {
		errno = EBADF;
		return -1;
	}
	bufferevent_disable(bev, EV_WRITE);
	w->flush = event_new(base, -1, 0, flush_cb, w);
	w->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, wev_cb, w);
	if (w->flush == NULL || w->wev == NULL ||
	    evbuffer_add_cb(bufferevent_get_output(bev), outbuf_cb, w) == NULL) {
		wthru_stop(w);
		errno = ENOMEM;
		return -1;
	}
	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		event_active(w->flush, EV_WRITE, 0);
	return 0;
}

void wthru_stop(struct wthru *w)
{
	if (w->bev != NULL && (w->flush != NULL || w->wev != NULL))
		evbuffer_remove_cb(bufferevent_get_output(w->bev), outbuf_cb, w);
	if (w->flush != NULL)
		event_free(w->flush);
	if (w->wev != NULL)
		event_free(w->wev);
	*w = (struct wthru){0};
}
