/* The mail process: TRANSACTION and UPDATE states on a locked Maildir snapshot. Runs as the mail
 * owner (shared mode: many sessions per process) or as the user's own uid (per-connection mode).
 * Message bodies are streamed from the file as the socket drains, so a session's memory stays
 * bounded whatever the message size and however slowly the client reads. The TRANSACTION
 * commands and UPDATE are in mail_cmd.c. */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "child.h"
#include "client.h"
#include "ipc.h"
#include "log.h"
#include "maildir.h"
#include "mbox.h"
#include "mail_int.h"
#include "wthru.h"

/* How long a login waits for a maildrop lock that is about to be released: 20 x 50 ms. */
#define LOCK_RETRIES  20
#define LOCK_RETRY_MS 50

/* Bytes of pipelined input buffered per session before we stop reading the socket. */
#define MAIL_INPUT_MAX (16 * 1024)
/* glibc's largest mmap threshold (32 MiB on 64-bit): allocations below it come from the heap,
 * which keep_heap() stops trimming below twice that. */
#define MAIL_HEAP_MMAP_THRESHOLD (32 * 1024 * 1024)

struct child_env *mail_env;
static struct event_base *base;
static struct ipc_queue *master_q;
static struct msess *sessions;
static size_t n_sessions;
static bool draining;
static struct ipc_msg msgbuf;

static void process_input(struct msess *s);
static void open_maildrop(evutil_socket_t fd, short what, void *arg);
static void open_mbox(struct msess *s);

static void exit_check_cb(evutil_socket_t fd, short what, void *arg);

static void maybe_exit(void)
{
	if (!draining || n_sessions != 0)
		return;
	if (ipc_queue_pending(master_q) == 0)
		exit(0);
	event_base_once(base, -1, EV_TIMEOUT, exit_check_cb, NULL, &(struct timeval){0, 10000});
}

static void exit_check_cb(evutil_socket_t fd, short what, void *arg)
{
	maybe_exit();
}

static void sess_free(struct msess *s, const char *reason)
{
	if (s->logged_in) {
		if (s->quit)
			reason = "quit";
		/* Counts as they stand: reason=quit means UPDATE ran, anything else deleted
		 * nothing. */
		log_info("session=%s ip=%s event=logout user=%s reason=%s retrieved=%zu "
		         "retrieved_bytes=%" PRIu64 " deleted=%zu deleted_bytes=%" PRIu64
		         " left=%zu left_bytes=%" PRIu64,
		         s->session, s->ip, s->user, reason, s->retrieved, s->retrieved_bytes,
		         strcmp(reason, "quit") == 0 ? s->n_deleted : 0,
		         strcmp(reason, "quit") == 0 ? s->deleted_bytes : 0,
		         s->snap.count - (strcmp(reason, "quit") == 0 ? s->n_deleted : 0),
		         s->snap.total_size - (strcmp(reason, "quit") == 0 ? s->deleted_bytes : 0));
	}
	if (s->lock.fd >= 0) {
		/* Seen renames and retrieval times for the next login (still under the lock). */
		if (s->logged_in)
			maildir_snapshot_save(s->maildir, &s->snap);
		maildir_lock_drop(&s->lock);
	}
	if (s->retr_fd >= 0)
		close(s->retr_fd);
	if (s->retry_ev != NULL)
		event_free(s->retry_ev);
	if (s->touch_ev != NULL)
		event_free(s->touch_ev);
	wthru_stop(&s->wt);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	if (s->fd >= 0)
		close(s->fd);
	maildir_snapshot_free(&s->snap);
	mbox_snapshot_free(&s->msnap);
	mbox_close(s->mbox);
	free(s->deleted);
	free(s->maildir);
	ipc_msg_init(&msgbuf, MSG_CONN_DONE);
	ipc_put_u64(&msgbuf, s->conn_id);
	ipc_queue_send(master_q, &msgbuf, -1);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	free(s);
	n_sessions--;
	if (mail_env->conf.isolation == ISOLATION_PER_CONNECTION)
		draining = true;
	maybe_exit();
}

static void deferred_free_cb(evutil_socket_t fd, short what, void *arg)
{
	sess_free(arg, "closed");
}

/* Close once the output is flushed. Never frees S before returning: the command loop and the
 * RETR pump may still look at it. */
void mail_close_after_flush(struct msess *s)
{
	s->closing = true;
	bufferevent_disable(s->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
		bufferevent_setcb(s->bev, NULL, NULL, NULL, NULL);
		bufferevent_disable(s->bev, EV_READ | EV_WRITE);
		if (event_base_once(base, -1, EV_TIMEOUT, deferred_free_cb, s,
		                    &(struct timeval){0, 0}) < 0)
			fatal("event_base_once");
	}
}

static void handle_line(struct msess *s, char *line, size_t len)
{
	struct pop3_cmd cmd;
	const struct cmd_def *def;
	int r;

	if (pop3_parse_cmd(line, len, &cmd) < 0 ||
	    (def = cmd_lookup(mail_trans_cmds, cmd.keyword)) == NULL) {
		lang_reply(s->bev, s->lang, TXT_UNKNOWN_COMMAND);
		r = CMD_ERR;
	} else if (def->flags & CMD_BAD) {
		lang_reply(s->bev, s->lang, TXT_WRONG_STATE);
		r = CMD_ERR;
	} else {
		r = def->handler(s, &cmd);
	}
	if (r == CMD_ERR && client_bad_command(s->bev, s->lang, &s->bad,
	                                       mail_env->conf.max_bad_commands, s->session, s->ip))
		r = CMD_CLOSE;
	if (r == CMD_CLOSE)
		mail_close_after_flush(s);
}

static void process_input(struct msess *s)
{
	char line[POP3_CMD_MAX + 1];
	size_t len;

	while (!s->busy && !s->closing) {
		enum line_result r = client_read_line(bufferevent_get_input(s->bev), &s->lr, line,
		                                      sizeof(line), &len);
		if (r == LINE_NEED_MORE)
			return;
		if (r == LINE_OK) {
			handle_line(s, line, len);
			continue;
		}
		client_reply_dropped(s->bev, s->lang, r);
		if (client_bad_command(s->bev, s->lang, &s->bad, mail_env->conf.max_bad_commands,
		                       s->session, s->ip)) {
			mail_close_after_flush(s);
			return;
		}
	}
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	process_input(arg);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct msess *s = arg;

	if (s->closing) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			sess_free(s, "closed");
		return;
	}
	if (s->busy) {
		mail_pump(s);
		if (s->busy || s->closing)
			return;
	}
	process_input(s);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct msess *s = arg;

	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING)) {
		/* A client reading a long message slowly is not idle (S-076): the write-stall
		 * timeout watches it instead. */
		if (s->busy || evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
			bufferevent_enable(bev, EV_READ);
			return;
		}
		sess_free(s, "idle_timeout");
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		sess_free(s, "write_stalled");
		return;
	}
	sess_free(s, (what & BEV_EVENT_EOF) ? "client_closed" : "connection_error");
}

/* A dotlock is a file that outlives its holder: refresh it while the session lasts, and end the
 * session (without UPDATE) if it was taken over as stale meanwhile (lib/maildir.h). */
static void lock_touch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct msess *s = arg;

	if (maildir_lock_refresh(&s->lock) == 0 || s->closing)
		return;
	log_warnx("session=%s ip=%s event=lock_lost user=%s", s->session, s->ip, s->user);
	sess_free(s, "lock_lost");
}

static void lock_touch_start(struct msess *s)
{
	struct timeval tv = {MAILDIR_DOTLOCK_TOUCH_SEC, 0};

	if (s->lock.kind != MAILDIR_LOCK_DOTLOCK)
		return;
	s->touch_ev = event_new(base, -1, EV_PERSIST, lock_touch_cb, s);
	if (s->touch_ev == NULL || event_add(s->touch_ev, &tv) < 0)
		log_warnx("session=%s ip=%s event=lock_refresh_off user=%s", s->session, s->ip,
		          s->user);
}

/* At any exit (SIGTERM, the master gone): the kernel drops a flock, but not a dotlock file. */
static void drop_all_locks(void)
{
	for (struct msess *s = sessions; s != NULL; s = s->next)
		maildir_lock_drop(&s->lock);
}

/* A session arrives from the master: lock, snapshot, answer the PASS, then serve. */
static void new_session(struct ipc_msg *m)
{
	struct msess *s = calloc(1, sizeof(*s));
	uint32_t uid, gid, expire_w, delay_w, utf8_w;
	char lang[LANG_TAG_MAX + 1];
	char maildir[GANNET_PATH_MAX];
	bool has_expire, has_delay;
	long expire, delay;
	const void *input;
	size_t inlen;

	if (s == NULL)
		fatal("calloc");
	s->fd = m->fd;
	m->fd = -1;
	s->lock.fd = -1;
	s->retr_fd = -1;
	if (ipc_get_u64(m, &s->conn_id) < 0 || ipc_get_str(m, s->session, sizeof(s->session)) < 0 ||
	    ipc_get_str(m, s->ip, sizeof(s->ip)) < 0 ||
	    ipc_get_str(m, s->tls, sizeof(s->tls)) < 0 ||
	    ipc_get_str(m, s->user, sizeof(s->user)) < 0 || ipc_get_u32(m, &uid) < 0 ||
	    ipc_get_u32(m, &gid) < 0 || ipc_get_str(m, maildir, sizeof(maildir)) < 0 ||
	    ipc_get_u32(m, &expire_w) < 0 || ipc_get_u32(m, &delay_w) < 0 ||
	    ipc_get_u32(m, &utf8_w) < 0 || ipc_get_str(m, lang, sizeof(lang)) < 0 ||
	    lang_from_tag(lang) < 0 || (lang_needs_utf8(lang_from_tag(lang)) && !utf8_w) ||
	    ipc_get_data(m, &input, &inlen) < 0 || ipc_end(m) < 0 || s->fd < 0 ||
	    (maildir[0] != '/' && strncmp(maildir, "mbox:/", 6) != 0) ||
	    policy_from_wire(expire_w, USERDB_EXPIRE_DAYS_MAX, true, &has_expire, &expire) < 0 ||
	    policy_from_wire(delay_w, USERDB_LOGIN_DELAY_MAX, false, &has_delay, &delay) < 0) {
		log_warnx("event=bad_message from=master type=session");
		if (s->fd >= 0)
			close(s->fd);
		free(s);
		return;
	}
	if ((s->maildir = strdup(maildir)) == NULL)
		fatal("strdup");
	s->is_mbox = strncmp(s->maildir, "mbox:", 5) == 0;
	s->utf8 = utf8_w != 0;
	s->lang = (enum lang)lang_from_tag(lang);
	s->expire_days = userdb_policy_expire(mail_env->conf.expire_days, has_expire, expire);
	s->login_delay = userdb_policy_login_delay(mail_env->conf.login_delay, has_delay, delay);
	s->next = sessions;
	if (sessions != NULL)
		sessions->prev = s;
	sessions = s;
	n_sessions++;
	line_reader_init(&s->lr, POP3_CMD_MAX);
	s->bev = bufferevent_socket_new(base, s->fd, 0);
	if (s->bev == NULL) {
		sess_free(s, "bufferevent_failed");
		return;
	}
	bufferevent_setcb(s->bev, read_cb, write_cb, event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, MAIL_INPUT_MAX);
	bufferevent_setwatermark(s->bev, EV_WRITE, RETR_HIGH_WATER / 2, 0);
	bufferevent_set_timeouts(s->bev, &(struct timeval){conf_idle_timeout(&mail_env->conf), 0},
	                         &(struct timeval){WRITE_STALL_TIMEOUT_DEFAULT, 0});
	if (wthru_start(&s->wt, base, s->bev, &(struct timeval){WRITE_STALL_TIMEOUT_DEFAULT, 0}) <
	    0) {
		sess_free(s, "bufferevent_failed");
		return;
	}
	/* Commands the client pipelined behind PASS go first. A socket bufferevent keeps its input
	 * closed to callers, so open it for this one insertion. */
	evbuffer_unfreeze(bufferevent_get_input(s->bev), 0);
	evbuffer_add(bufferevent_get_input(s->bev), input, inlen);
	evbuffer_freeze(bufferevent_get_input(s->bev), 0);

	/* Per-connection mode as root: this process belongs to the user from here on. */
	if (mail_env->conf.isolation == ISOLATION_PER_CONNECTION && geteuid() == 0) {
		struct passwd *pw = NULL;

		if (uid == (uint32_t)-1 && mail_env->conf.mail_user[0] != '\0' &&
		    (pw = getpwnam(mail_env->conf.mail_user)) != NULL) {
			uid = pw->pw_uid;
			gid = pw->pw_gid;
		}
		if (uid != (uint32_t)-1 && child_setids_user(&mail_env->conf, s->user, uid,
		                                             gid == (uint32_t)-1 ? uid : gid) < 0) {
			log_warn("session=%s ip=%s event=setuid_failed user=%s", s->session, s->ip,
			         s->user);
			lang_reply(s->bev, s->lang, TXT_INTERNAL_PERM);
			mail_close_after_flush(s);
			return;
		}
	}

	open_maildrop(-1, 0, s);
}

/* Lock and snapshot the maildrop, then answer the PASS. A session the same client just dropped
 * may still hold the lock for a moment (its EOF not yet processed): retry briefly before
 * answering [IN-USE]. */
static void open_maildrop(evutil_socket_t fd, short what, void *arg)
{
	struct msess *s = arg;
	const char *error = NULL;
	int r, lr;

	if (s->is_mbox) {
		open_mbox(s);
		return;
	}
	lr = maildir_lock_mode(s->maildir, (enum maildir_lock_kind)mail_env->conf.maildir_lock,
	                       &s->lock);
	if (lr == -2 && s->lock_tries++ < LOCK_RETRIES) {
		struct timeval tv = {0, LOCK_RETRY_MS * 1000};

		if (s->retry_ev == NULL)
			s->retry_ev = evtimer_new(base, open_maildrop, s);
		if (s->retry_ev != NULL && evtimer_add(s->retry_ev, &tv) == 0)
			return;
	}
	if (lr == -2) {
		log_info("session=%s ip=%s event=login_failed user=%s reason=in_use", s->session,
		         s->ip, s->user);
		lang_reply(s->bev, s->lang, TXT_IN_USE);
		mail_close_after_flush(s);
		return;
	}
	/* RFC 2449 §6.5, S-036/S-037: refused only now, after the password was found correct, and
	 * before anything changes (no recovery, no scan, no new login time). */
	if (lr == 0 && s->login_delay > 0) {
		long wait =
		    maildir_login_wait(maildir_last_login(s->maildir), time(NULL), s->login_delay);

		if (wait > 0) {
			log_info("session=%s ip=%s event=login_refused user=%s reason=login_delay "
			         "wait=%ld",
			         s->session, s->ip, s->user, wait);
			lang_reply(s->bev, s->lang, TXT_LOGIN_DELAY, s->login_delay, wait);
			mail_close_after_flush(s);
			return;
		}
	}
	/* Finish an UPDATE a crash interrupted, before the scan sees its files. */
	r = lr < 0 ? MAILDIR_ERR_PERM : MAILDIR_OK;
	if (r == MAILDIR_OK) {
		size_t removed;
		bool ignored;

		r = maildir_journal_recover(s->maildir, &removed, &ignored, &error);
		if (r == MAILDIR_OK && (removed > 0 || ignored))
			log_info("session=%s ip=%s event=update_recovered user=%s removed=%zu "
			         "journal=%s",
			         s->session, s->ip, s->user, removed,
			         ignored ? "ignored" : "applied");
	}
	if (r == MAILDIR_OK)
		r = maildir_scan(s->maildir, (enum uidl_source)mail_env->conf.uidl_source, &s->snap,
		                 &error);
	if (r == MAILDIR_OK && s->snap.count > 0 && (s->deleted = calloc(s->snap.count, 1)) == NULL)
		r = MAILDIR_ERR_TEMP;
	if (r == MAILDIR_OK && s->snap.count == 0 && (s->deleted = calloc(1, 1)) == NULL)
		r = MAILDIR_ERR_TEMP;
	if (r != MAILDIR_OK) {
		log_warnx("session=%s ip=%s event=login_failed user=%s reason=maildir "
		          "maildir=%s error=\"%s\"",
		          s->session, s->ip, s->user, s->maildir,
		          error ? error : (lr < 0 ? "cannot create lock file" : "out of memory"));
		lang_reply(s->bev, s->lang,
		           r == MAILDIR_ERR_TEMP ? TXT_MAILBOX_TEMP : TXT_MAILBOX_PERM);
		mail_close_after_flush(s);
		return;
	}
	s->logged_in = true;
	lock_touch_start(s);
	if (s->login_delay > 0 && maildir_set_last_login(s->maildir, time(NULL)) < 0)
		log_warn("session=%s ip=%s event=login_time_not_saved user=%s", s->session, s->ip,
		         s->user);
	log_info("session=%s ip=%s event=login user=%s tls=%s messages=%zu "
	         "bytes=%" PRIu64,
	         s->session, s->ip, s->user, s->tls[0] ? s->tls : "no", s->snap.count,
	         s->snap.total_size);
	lang_reply(s->bev, s->lang, TXT_LOGGED_IN, s->snap.count, s->snap.total_size);
	bufferevent_enable(s->bev, EV_READ);
	process_input(s);
}

/* --- mbox sessions (system accounts, lib/mbox.h) --------------------------------------------- */

/* UPDATE of an mbox: lib/mbox.c writes the kept messages (and mail that arrived since the scan)
 * to a temporary file and renames it over the mailbox, so a crash leaves the old file or the new
 * one, whole. On failure nothing is deleted. */
/* Lock and scan an mbox, with the answers a Maildir login gets. EXPIRE and LOGIN-DELAY need
 * state an mbox has no place for: they do not apply (CAPA says EXPIRE NEVER, LOGIN-DELAY 0). */
static void open_mbox(struct msess *s)
{
	const char *error = NULL;
	int r = s->mbox != NULL ? MBOX_OK : mbox_open(s->maildir + 5, &s->mbox, &error);

	if (r == MBOX_ERR_INUSE && s->lock_tries++ < LOCK_RETRIES) {
		struct timeval tv = {0, LOCK_RETRY_MS * 1000};

		if (s->retry_ev == NULL)
			s->retry_ev = evtimer_new(base, open_maildrop, s);
		if (s->retry_ev != NULL && evtimer_add(s->retry_ev, &tv) == 0)
			return;
	}
	if (r == MBOX_ERR_INUSE) {
		log_info("session=%s ip=%s event=login_failed user=%s reason=in_use", s->session,
		         s->ip, s->user);
		lang_reply(s->bev, s->lang, TXT_IN_USE);
		mail_close_after_flush(s);
		return;
	}
	if (r == MBOX_OK)
		r = mbox_scan(s->mbox, &s->msnap, &error);
	if (r == MBOX_OK &&
	    (s->deleted = calloc(s->msnap.count > 0 ? s->msnap.count : 1, 1)) == NULL) {
		r = MBOX_ERR_TEMP;
		error = "out of memory";
	}
	if (r != MBOX_OK) {
		log_warnx("session=%s ip=%s event=login_failed user=%s reason=mbox error=\"%s\"",
		          s->session, s->ip, s->user, error);
		lang_reply(s->bev, s->lang,
		           r == MBOX_ERR_TEMP ? TXT_MAILBOX_TEMP : TXT_MAILBOX_PERM);
		mail_close_after_flush(s);
		return;
	}
	s->snap.count = s->msnap.count;
	s->snap.total_size = s->msnap.total_size;
	s->expire_days = USERDB_EXPIRE_NEVER;
	s->login_delay = 0;
	s->logged_in = true;
	log_info("session=%s ip=%s event=login user=%s tls=%s store=mbox messages=%zu "
	         "bytes=%" PRIu64,
	         s->session, s->ip, s->user, s->tls[0] ? s->tls : "no", s->snap.count,
	         s->snap.total_size);
	lang_reply(s->bev, s->lang, TXT_LOGGED_IN, s->snap.count, s->snap.total_size);
	bufferevent_enable(s->bev, EV_READ);
	process_input(s);
}

static void master_cb(evutil_socket_t fd, short what, void *arg)
{
	for (int i = 0; i < 64; i++) {
		int r = ipc_recv(fd, &msgbuf);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0)
			exit(0); /* the master is gone; no UPDATE for anyone */
		switch (msgbuf.type) {
		case MSG_SESSION:
			new_session(&msgbuf);
			break;
		case MSG_SHUTDOWN:
			draining = true;
			maybe_exit();
			break;
		default:
			log_warnx("event=bad_message from=master type=%u", msgbuf.type);
		}
		if (msgbuf.fd >= 0) {
			close(msgbuf.fd);
			msgbuf.fd = -1;
		}
	}
}

static void term_cb(evutil_socket_t sig, short what, void *arg)
{
	/* Sessions end without UPDATE (RFC 1939 §6): nothing is deleted. */
	exit(0);
}

/* A long-lived mail process keeps the memory of its biggest maildrop for the next session:
 * glibc would hand a 10 MB snapshot straight back to the kernel (mmap, or a heap trim), and the
 * next login of that maildrop would fault every page in again, which on a virtual machine cost
 * more than the rest of a warm 100,000-message login (bench bigbox). What is kept is bounded by
 * the largest session, once per process, never per connection. */
static void keep_heap(void)
{
	mallopt(M_MMAP_THRESHOLD, MAIL_HEAP_MMAP_THRESHOLD);
	mallopt(M_TRIM_THRESHOLD, 2 * MAIL_HEAP_MMAP_THRESHOLD);
}

void mail_main(struct child_env *e)
{
	struct event *ev;

	mail_env = e;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	atexit(drop_all_locks);
	if (mail_env->conf.isolation == ISOLATION_SHARED) {
		child_drop_privileges(mail_env->conf.mail_user, "mail_user", "");
		keep_heap();
	}
	/* dotlock means shared storage, where directory times cannot vouch for an index. */
	maildir_scan_trust_stamps(mail_env->conf.maildir_lock != MAILDIR_LOCK_DOTLOCK);
	base = event_base_new();
	if (base == NULL)
		fatal("event_base_new");
	master_q = ipc_queue_new(base, CHILD_CHANNEL_FD);
	ev = event_new(base, CHILD_CHANNEL_FD, EV_READ | EV_PERSIST, master_cb, NULL);
	if (master_q == NULL || ev == NULL || event_add(ev, NULL) < 0)
		fatal("event_new");
	ev = evsignal_new(base, SIGTERM, term_cb, NULL);
	if (ev == NULL || event_add(ev, NULL) < 0)
		fatal("event_new");
	event_base_dispatch(base);
	fatalx("event loop ended");
}
