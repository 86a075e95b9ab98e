/* The mail process: TRANSACTION and UPDATE states on a locked Maildir snapshot. Runs as the mail
 * owner (shared mode: many sessions per process) or as the user's own uid (per-connection mode).
 * Message bodies are streamed from the file as the socket drains, so a session's memory stays
 * bounded whatever the message size and however slowly the client reads. */
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
#include "lang.h"
#include "log.h"
#include "mechs.h"
#include "maildir.h"
#include "mbox.h"
#include "strnum.h"
#include "userdb.h"
#include "utf8.h"
#include "wthru.h"

/* How long a login waits for a maildrop lock that is about to be released: 20 x 50 ms. */
#define LOCK_RETRIES  20
#define LOCK_RETRY_MS 50

/* Bytes of pipelined input buffered per session before we stop reading the socket. */
#define MAIL_INPUT_MAX (16 * 1024)
/* glibc's largest mmap threshold (32 MiB on 64-bit): allocations below it come from the heap,
 * which keep_heap() stops trimming below twice that. */
#define MAIL_HEAP_MMAP_THRESHOLD (32 * 1024 * 1024)
/* LIST and UIDL listings are generated in slices of this size as the socket drains. */
#define LISTING_SLICE 4096

struct msess {
	uint64_t conn_id;
	char session[40];
	char ip[64];
	char tls[96];
	char user[USERNAME_MAX + 1];
	char maildir[GANNET_PATH_MAX];
	int fd;
	struct bufferevent *bev;
	struct wthru wt; /* writes the replies at once (wthru.h) */
	struct line_reader lr;
	unsigned bad;
	struct maildir_lockh lock;
	struct event *touch_ev; /* refreshes a dotlock */
	/* An mbox session (maildir "mbox:PATH", system accounts) keeps its messages in MSNAP and
	 * mirrors only count and total_size into SNAP; per-message data goes through msg_size()
	 * and msg_uidl(), never maildir_* on SNAP. */
	bool is_mbox;
	struct mbox_handle *mbox;
	struct mbox_snapshot msnap;
	uint64_t retr_off; /* mbox: octets of the message already read */
	struct maildir_snapshot snap;
	unsigned char *deleted; /* one byte per message: bitmaps save little at 100 bytes/message */
	size_t n_deleted;
	uint64_t deleted_bytes;
	/* a RETR/TOP or a listing being streamed */
	bool busy;
	int retr_fd;
	size_t retr_idx;
	bool retr_is_top;
	struct pop3_enc enc;
	enum { LISTING_NONE, LISTING_LIST, LISTING_UIDL } listing;
	size_t listing_pos;
	bool closing;
	bool logged_in; /* lock taken and snapshot read */
	unsigned lock_tries;
	struct event *retry_ev;
	bool quit; /* QUIT received: UPDATE ran */
	size_t retrieved;
	uint64_t retrieved_bytes;
	long expire_days; /* RFC 2449 policies in force for this user (userdb_policy_*) */
	long login_delay;
	bool utf8;      /* RFC 6856 UTF-8 mode, set before login */
	enum lang lang; /* LANG: the language of reply texts */
	struct msess *prev, *next;
};

static struct child_env *env;
static struct event_base *base;
static struct ipc_queue *master_q;
static struct msess *sessions;
static size_t n_sessions;
static bool draining;
static struct ipc_msg msgbuf;
static char readbuf[RETR_CHUNK];
/* Input encoded per reservation in the output buffer. Its worst case (2 * 16 KiB + 3, every
 * byte a bare LF) makes libevent allocate 64 KiB chains, under glibc's 128 KiB mmap threshold:
 * bigger chains were mmapped, faulted in and unmapped for every chunk of a 10 MB RETR. */
#define RETR_ENC_PIECE (16 * 1024)

static void process_input(struct msess *s);
static void pump(struct msess *s);
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

/* Per-message data of either store. */
static uint64_t msg_size(const struct msess *s, size_t i)
{
	return s->is_mbox ? mbox_msg_size(&s->msnap, i) : maildir_msg_size(&s->snap, i);
}

static const char *msg_uidl(const struct msess *s, size_t i, size_t *len_r)
{
	return s->is_mbox ? mbox_msg_uidl(&s->msnap, i, len_r)
	                  : maildir_msg_uidl(&s->snap, i, len_r);
}

/* The next octets of the message being streamed: read(2) on a Maildir file; an mbox message is
 * read by offset from the open mailbox. -1 with errno on failure, 0 at its end. */
static ssize_t retr_read(struct msess *s, void *buf, size_t len)
{
	size_t got = 0;

	if (!s->is_mbox)
		return read(s->retr_fd, buf, len);
	if (mbox_msg_read(s->mbox, &s->msnap, s->retr_idx, s->retr_off, buf, len, &got) !=
	    MBOX_OK) {
		log_warnx("session=%s event=mbox_read_failed error=\"%s\"", s->session,
		          mbox_last_error());
		errno = EIO;
		return -1;
	}
	s->retr_off += got;
	return (ssize_t)got;
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
	if (env->conf.isolation == ISOLATION_PER_CONNECTION)
		draining = true;
	maybe_exit();
}

static void deferred_free_cb(evutil_socket_t fd, short what, void *arg)
{
	sess_free(arg, "closed");
}

/* Close once the output is flushed. Never frees S before returning: the command loop and the
 * RETR pump may still look at it. */
static void close_after_flush(struct msess *s)
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

/* Parse a message-number argument. Returns 0 with *IDX_R set; otherwise the reply is sent and
 * the result says whether it counts as a bad command: malformed numbers do, a well-formed number
 * naming a message that does not exist or is deleted does not (a client may simply be behind). */
static int msg_arg(struct msess *s, const char *arg, size_t len, size_t *idx_r)
{
	uint64_t n;

	if (strnum_u64(arg, len, 0, UINT64_MAX, &n) < 0) {
		lang_reply(s->bev, s->lang, TXT_BAD_MSGNUM);
		return CMD_ERR;
	}
	if (n == 0 || n > s->snap.count) {
		lang_reply(s->bev, s->lang, TXT_NO_SUCH_MSG);
		return CMD_OK;
	}
	if (s->deleted[n - 1]) {
		lang_reply(s->bev, s->lang, TXT_MSG_DELETED, n);
		return CMD_OK;
	}
	*idx_r = (size_t)(n - 1);
	return -1;
}

static bool args_ok(struct msess *s, struct pop3_cmd *cmd, int min, int max, const char *usage)
{
	if (cmd->argc < min || cmd->argc > max || cmd->bad_spacing) {
		lang_reply(s->bev, s->lang, TXT_USAGE, usage);
		return false;
	}
	return true;
}

static int cmd_stat(void *arg, struct pop3_cmd *cmd)
{
	struct msess *s = arg;

	if (!args_ok(s, cmd, 0, 0, "STAT"))
		return CMD_ERR;
	client_reply(s->bev, "+OK %zu %" PRIu64, s->snap.count - s->n_deleted,
	             s->snap.total_size - s->deleted_bytes);
	return CMD_OK;
}

static int listing(struct msess *s, struct pop3_cmd *cmd, int kind, const char *usage)
{
	size_t i;
	int r;

	if (!args_ok(s, cmd, 0, 1, usage))
		return CMD_ERR;
	if (cmd->argc == 1) {
		if ((r = msg_arg(s, cmd->argv[0], cmd->argl[0], &i)) >= 0)
			return r;
		if (kind == LISTING_LIST) {
			client_reply(s->bev, "+OK %zu %" PRIu64, i + 1, msg_size(s, i));
		} else {
			size_t len;
			const char *u = msg_uidl(s, i, &len);
			client_reply(s->bev, "+OK %zu %.*s", i + 1, (int)len, u);
		}
		return CMD_OK;
	}
	if (kind == LISTING_LIST)
		lang_reply(s->bev, s->lang, TXT_MAILDROP, s->snap.count - s->n_deleted,
		           s->snap.total_size - s->deleted_bytes);
	else
		lang_reply(s->bev, s->lang, TXT_UIDL_LIST);
	s->listing = kind;
	s->listing_pos = 0;
	s->busy = true;
	pump(s);
	return s->busy ? CMD_SUSPEND : CMD_OK;
}

static int cmd_list(void *arg, struct pop3_cmd *cmd)
{
	return listing(arg, cmd, LISTING_LIST, "LIST [message]");
}

static int cmd_uidl(void *arg, struct pop3_cmd *cmd)
{
	return listing(arg, cmd, LISTING_UIDL, "UIDL [message]");
}

/* RFC 6856 §2.1/§5, S-127/S-130: outside UTF-8 mode a message whose header holds 8-bit bytes
 * (SMTPUTF8 mail) is refused with [UTF8] before any +OK; a body may hold anything (8BITMIME).
 * The header is read through retr_read, rewound afterwards for the RETR itself; a read error
 * here shows up again there. refuse_8bit_headers = no sends such messages as stored instead, for
 * sites whose clients never send UTF8 (raw Latin-1 headers of old mailers count as 8-bit too).
 * True when refused (FD closed). */
static bool refuse_utf8(struct msess *s, int fd, size_t idx)
{
	struct utf8_hdr_scan h;
	uint64_t seen = 0;
	ssize_t r;

	if (s->utf8 || !env->conf.refuse_8bit_headers)
		return false;
	s->retr_fd = fd;
	s->retr_idx = idx;
	s->retr_off = 0;
	utf8_hdr_init(&h);
	while (!h.done && seen < UTF8_HEADER_SCAN_MAX &&
	       (r = retr_read(s, readbuf, sizeof(readbuf))) > 0) {
		utf8_hdr_feed(&h, readbuf, (size_t)r);
		seen += (uint64_t)r;
	}
	s->retr_off = 0;
	s->retr_fd = -1;
	if (fd >= 0 && lseek(fd, 0, SEEK_SET) < 0) {
		/* Sending from the wrong offset would corrupt the message: refuse it this time. */
		log_warn("session=%s event=rewind_failed msg=%zu", s->session, idx + 1);
		lang_reply(s->bev, s->lang, TXT_MSG_UNREADABLE, idx + 1);
		close(fd);
		return true;
	}
	if (!h.eight_bit)
		return false;
	log_info("session=%s ip=%s event=refused_utf8 user=%s msg=%zu", s->session, s->ip, s->user,
	         idx + 1);
	lang_reply(s->bev, s->lang, TXT_MSG_NEEDS_UTF8, idx + 1);
	if (fd >= 0)
		close(fd);
	return true;
}

static int start_retr(struct msess *s, size_t idx, bool top, uint64_t lines)
{
	int fd = s->is_mbox ? -1 : maildir_open_msg(s->maildir, &s->snap, idx);

	if (fd < 0 && !s->is_mbox) {
		/* Removed from outside since login (S-142): the session and numbering carry on. */
		log_warnx("session=%s ip=%s event=message_unreadable user=%s msg=%zu", s->session,
		          s->ip, s->user, idx + 1);
		lang_reply(s->bev, s->lang, errno == ENOENT ? TXT_MSG_REMOVED : TXT_MSG_UNREADABLE,
		           idx + 1);
		return CMD_OK;
	}
	if (refuse_utf8(s, fd, idx))
		return CMD_OK;
	if (top)
		lang_reply(s->bev, s->lang, TXT_TOP_FOLLOWS);
	else
		lang_reply(s->bev, s->lang, TXT_RETR_OCTETS, msg_size(s, idx));
	s->retr_fd = fd;
	s->retr_off = 0;
	s->retr_idx = idx;
	s->retr_is_top = top;
	pop3_enc_init(&s->enc, true, top ? lines : UINT64_MAX);
	s->busy = true;
	pump(s);
	return s->busy ? CMD_SUSPEND : CMD_OK;
}

static int cmd_retr(void *arg, struct pop3_cmd *cmd)
{
	struct msess *s = arg;
	size_t idx;

	int r;

	if (!args_ok(s, cmd, 1, 1, "RETR message"))
		return CMD_ERR;
	if ((r = msg_arg(s, cmd->argv[0], cmd->argl[0], &idx)) >= 0)
		return r;
	return start_retr(s, idx, false, 0);
}

static int cmd_top(void *arg, struct pop3_cmd *cmd)
{
	struct msess *s = arg;
	uint64_t lines;
	size_t idx;

	int r;

	if (!args_ok(s, cmd, 2, 2, "TOP message lines"))
		return CMD_ERR;
	if ((r = msg_arg(s, cmd->argv[0], cmd->argl[0], &idx)) >= 0)
		return r;
	if (strnum_u64(cmd->argv[1], cmd->argl[1], 0, UINT64_MAX - 1, &lines) < 0) {
		lang_reply(s->bev, s->lang, TXT_BAD_LINES);
		return CMD_ERR;
	}
	return start_retr(s, idx, true, lines);
}

static int cmd_dele(void *arg, struct pop3_cmd *cmd)
{
	struct msess *s = arg;
	size_t idx;

	int r;

	if (!args_ok(s, cmd, 1, 1, "DELE message"))
		return CMD_ERR;
	if ((r = msg_arg(s, cmd->argv[0], cmd->argl[0], &idx)) >= 0)
		return r;
	s->deleted[idx] = 1;
	s->n_deleted++;
	s->deleted_bytes += msg_size(s, idx);
	lang_reply(s->bev, s->lang, TXT_MSG_DELETED_OK, idx + 1);
	return CMD_OK;
}

static int cmd_noop(void *arg, struct pop3_cmd *cmd)
{
	struct msess *s = arg;

	if (!args_ok(s, cmd, 0, 0, "NOOP"))
		return CMD_ERR;
	client_reply(s->bev, "+OK");
	return CMD_OK;
}

static int cmd_rset(void *arg, struct pop3_cmd *cmd)
{
	struct msess *s = arg;

	if (!args_ok(s, cmd, 0, 0, "RSET"))
		return CMD_ERR;
	memset(s->deleted, 0, s->snap.count);
	s->n_deleted = 0;
	s->deleted_bytes = 0;
	lang_reply(s->bev, s->lang, TXT_MAILDROP, s->snap.count, s->snap.total_size);
	return CMD_OK;
}

static int cmd_capa(void *arg, struct pop3_cmd *cmd)
{
	struct msess *s = arg;
	static const char head[] = "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
	                           "USER\r\n";
	static const char tail[] = "IMPLEMENTATION Gannet\r\n.\r\n";
	char line[POP3_RESP_MAX];
	size_t n = 0;
	bool tls = s->tls[0] != '\0';

	if (!args_ok(s, cmd, 0, 0, "CAPA"))
		return CMD_ERR;
	lang_reply(s->bev, s->lang, TXT_CAPA_HEAD);
	bufferevent_write(s->bev, head, sizeof(head) - 1);
	/* SASL stays listed after login (RFC 5034 §3, S-063), like USER: every capability of
	 * AUTHORIZATION is listed again (S-040); only STLS drops out. */
	for (const struct mech_info *m = mech_table; m->name != NULL; m++) {
		if (!mech_offered(&env->conf, m, true, tls, tls) ||
		    n + strlen(m->name) + 8 > sizeof(line))
			continue;
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s", n == 0 ? "SASL " : " ",
		                      m->name);
	}
	if (n > 0) {
		bufferevent_write(s->bev, line, n);
		bufferevent_write(s->bev, "\r\n", 2);
	}
	/* RFC 2449 §6.7, S-041/S-042: this user's own value, EXPIRE NEVER included; §6.5:
	 * LOGIN-DELAY whenever AUTHORIZATION listed it (S-040), with this user's value. */
	if (s->expire_days < 0)
		bufferevent_write(s->bev, "EXPIRE NEVER\r\n", 14);
	else
		evbuffer_add_printf(bufferevent_get_output(s->bev), "EXPIRE %ld\r\n",
		                    s->expire_days);
	if (env->conf.login_delay > 0)
		evbuffer_add_printf(bufferevent_get_output(s->bev), "LOGIN-DELAY %ld\r\n",
		                    s->login_delay);
	bufferevent_write(s->bev, LANG_CAPA_LINES, sizeof(LANG_CAPA_LINES) - 1);
	bufferevent_write(s->bev, tail, sizeof(tail) - 1);
	return CMD_OK;
}

/* A message file name for the log: anyone who can write to the Maildir picks these names, so
 * control bytes are escaped (a newline would forge a log line fail2ban believes). */
static const char *log_name(const struct maildir_snapshot *snap, size_t i, char *out, size_t size)
{
	char name[MAILDIR_NAME_BUF];
	const char *n = maildir_msg_name(snap, i, name);

	return log_sanitize(out, size, n, strlen(n));
}

/* UPDATE (RFC 1939 §6): add what EXPIRE removes, journal it all (crash-safe: the next login
 * finishes an UPDATE a crash cut short, see lib/maildir.h), remove the files, drop the journal,
 * then release the maildrop. */
static int quit_mbox(struct msess *s);

static int cmd_quit(void *arg, struct pop3_cmd *cmd)
{
	struct msess *s = arg;
	size_t failed = 0, asked, expired, total;
	const char *error = NULL;
	int jr;

	if (!args_ok(s, cmd, 0, 0, "QUIT"))
		return CMD_ERR;
	if (s->is_mbox)
		return quit_mbox(s);
	/* A dotlock taken over after a stall (lib/maildir.h): the maildrop may be another's now. */
	if (maildir_lock_refresh(&s->lock) < 0) {
		lang_reply(s->bev, s->lang, TXT_LOCK_LOST);
		return CMD_CLOSE;
	}
	asked = s->n_deleted;
	/* RFC 2449 §6.7, S-043: retrieved (whole RETR, never TOP) long enough ago. */
	expired = maildir_expire_mark(&s->snap, s->deleted, time(NULL), s->expire_days);
	if (expired > 0) {
		s->n_deleted = 0;
		s->deleted_bytes = 0;
		for (size_t i = 0; i < s->snap.count; i++) {
			if (!s->deleted[i])
				continue;
			s->n_deleted++;
			s->deleted_bytes += maildir_msg_size(&s->snap, i);
		}
	}
	total = s->n_deleted;
	jr = maildir_journal_write(s->maildir, &s->snap, s->deleted, &error);
	if (jr != MAILDIR_OK) {
		/* Nothing is removed without a journal: the UPDATE did not start. */
		log_warnx("session=%s ip=%s event=update_failed user=%s error=\"%s\"", s->session,
		          s->ip, s->user, error);
		failed = total;
	}
	for (size_t i = 0; i < s->snap.count && jr == MAILDIR_OK; i++) {
		char name[4 * MAILDIR_NAME_BUF];

		if (!s->deleted[i])
			continue;
		if (maildir_unlink_msg(s->maildir, &s->snap, i) < 0) {
			log_warn("session=%s ip=%s event=delete_failed user=%s file=%s", s->session,
			         s->ip, s->user, log_name(&s->snap, i, name, sizeof(name)));
			failed++;
		}
		/* Tests only: widen the window a crash test aims at. */
		if (env->conf.test_update_delay_ms > 0)
			usleep((useconds_t)env->conf.test_update_delay_ms * 1000);
	}
	if (jr == MAILDIR_OK && total > 0 &&
	    maildir_journal_finish(s->maildir, &error) != MAILDIR_OK)
		log_warnx("session=%s ip=%s event=update_journal_kept user=%s error=\"%s\"",
		          s->session, s->ip, s->user, error);
	if (expired > 0)
		log_info("session=%s ip=%s event=expire user=%s expired=%zu expire_days=%ld",
		         s->session, s->ip, s->user, expired, s->expire_days);
	s->n_deleted -= failed;
	s->quit = true;
	/* The index drops the removed messages; written before the lock goes. */
	maildir_snapshot_save(s->maildir, &s->snap);
	/* Unlock before answering, so a client that reconnects at once is not told [IN-USE]. */
	maildir_lock_drop(&s->lock);
	if (failed)
		lang_reply(s->bev, s->lang, TXT_UPDATE_FAILED,
		           jr == MAILDIR_ERR_PERM ? "SYS/PERM" : "SYS/TEMP", failed);
	else if (expired > 0)
		lang_reply(s->bev, s->lang, TXT_BYE_EXPIRED, asked, expired);
	else
		lang_reply(s->bev, s->lang, TXT_BYE_DELETED, s->n_deleted);
	return CMD_CLOSE;
}

/* LANG (RFC 6856 §3) is valid in TRANSACTION too. */
static int cmd_lang(void *arg, struct pop3_cmd *cmd)
{
	struct msess *s = arg;

	return lang_cmd(s->bev, cmd, s->utf8, &s->lang);
}

static const struct cmd_def trans_cmds[] = {
    {"STAT", cmd_stat, 0},   {"LIST", cmd_list, 0},   {"RETR", cmd_retr, 0},
    {"DELE", cmd_dele, 0},   {"NOOP", cmd_noop, 0},   {"RSET", cmd_rset, 0},
    {"QUIT", cmd_quit, 0},   {"TOP", cmd_top, 0},     {"UIDL", cmd_uidl, 0},
    {"CAPA", cmd_capa, 0},   {"USER", NULL, CMD_BAD}, {"PASS", NULL, CMD_BAD},
    {"APOP", NULL, CMD_BAD}, {"AUTH", NULL, CMD_BAD}, {"STLS", NULL, CMD_BAD},
    {"LANG", cmd_lang, 0},   {"UTF8", NULL, CMD_BAD}, /* UTF8: AUTHORIZATION only (S-128) */
    {NULL, NULL, 0},
};

/* Encode IN[0..LEN) straight into OUT's last chain: no private buffer, no copy into the
 * evbuffer. -1 when no memory can be reserved. */
static int retr_encode(struct evbuffer *out, struct pop3_enc *enc, const char *in, size_t len)
{
	while (len > 0 && !pop3_enc_done(enc)) {
		struct evbuffer_iovec v;
		size_t k = len < RETR_ENC_PIECE ? len : RETR_ENC_PIECE;

		if (evbuffer_reserve_space(out, (ev_ssize_t)(2 * k + 3), &v, 1) != 1)
			return -1;
		/* The chain may have more room than asked: use it, within the worst case. */
		if ((v.iov_len - 3) / 2 > k)
			k = len < (v.iov_len - 3) / 2 ? len : (v.iov_len - 3) / 2;
		v.iov_len = pop3_enc_feed(enc, in, k, v.iov_base);
		if (evbuffer_commit_space(out, &v, 1) < 0)
			return -1;
		in += k;
		len -= k;
	}
	return 0;
}

/* Queue more of a listing or a message while the output buffer is below the high-water mark. */
static void pump(struct msess *s)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);

	while (s->busy && evbuffer_get_length(out) < RETR_HIGH_WATER) {
		if (s->listing != LISTING_NONE) {
			char buf[LISTING_SLICE + 128];
			size_t n = 0;

			while (s->listing_pos < s->snap.count && n < LISTING_SLICE) {
				size_t i = s->listing_pos++;
				int w;

				if (s->deleted[i])
					continue;
				if (s->listing == LISTING_LIST) {
					w = snprintf(buf + n, sizeof(buf) - n,
					             "%zu %" PRIu64 "\r\n", i + 1, msg_size(s, i));
				} else {
					size_t len;
					const char *u = msg_uidl(s, i, &len);
					w = snprintf(buf + n, sizeof(buf) - n, "%zu %.*s\r\n",
					             i + 1, (int)len, u);
				}
				if (w > 0)
					n += (size_t)w;
			}
			if (s->listing_pos >= s->snap.count) {
				memcpy(buf + n, ".\r\n", 3);
				n += 3;
				s->listing = LISTING_NONE;
				s->busy = false;
			}
			evbuffer_add(out, buf, n);
			continue;
		}

		ssize_t r = retr_read(s, readbuf, sizeof(readbuf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			/* Half a message is on the wire already; no -ERR can follow it. */
			log_warn("session=%s ip=%s event=read_failed user=%s msg=%zu", s->session,
			         s->ip, s->user, s->retr_idx + 1);
			close_after_flush(s);
			return;
		}
		if (r > 0 && retr_encode(out, &s->enc, readbuf, (size_t)r) < 0) {
			log_warnx("session=%s ip=%s event=out_of_memory user=%s msg=%zu",
			          s->session, s->ip, s->user, s->retr_idx + 1);
			close_after_flush(s);
			return;
		}
		if (r == 0 || pop3_enc_done(&s->enc)) {
			uint64_t listed = msg_size(s, s->retr_idx);
			char name[4 * MAILDIR_NAME_BUF];
			char end[3 + 3]; /* pop3_enc_finish's CRLF at most, then ".\r\n" */
			size_t n = pop3_enc_finish(&s->enc, end);

			memcpy(end + n, ".\r\n", 3);
			evbuffer_add(out, end, n + 3);
			if (s->retr_fd >= 0)
				close(s->retr_fd);
			s->retr_fd = -1;
			s->busy = false;
			if (!s->retr_is_top && s->is_mbox) {
				/* mbox keeps no seen flags or retrieval times (no EXPIRE). */
				s->retrieved++;
				s->retrieved_bytes += s->enc.size;
			} else if (!s->retr_is_top) {
				if (s->enc.size != listed)
					log_warnx(
					    "session=%s ip=%s event=size_changed user=%s "
					    "file=%s listed=%" PRIu64 " sent=%" PRIu64,
					    s->session, s->ip, s->user,
					    log_name(&s->snap, s->retr_idx, name, sizeof(name)),
					    listed, s->enc.size);
				s->retrieved++;
				s->retrieved_bytes += s->enc.size;
				/* For EXPIRE, kept in the index. */
				maildir_msg_set_retrieved(&s->snap, s->retr_idx, time(NULL));
				/* Seen for IMAP on the same Maildir; the UIDL does not change. */
				if (maildir_mark_seen(s->maildir, &s->snap, s->retr_idx) < 0 &&
				    errno != ENOENT)
					log_warn(
					    "session=%s event=mark_seen_failed file=%s", s->session,
					    log_name(&s->snap, s->retr_idx, name, sizeof(name)));
			}
		}
	}
}

static void handle_line(struct msess *s, char *line, size_t len)
{
	struct pop3_cmd cmd;
	const struct cmd_def *def;
	int r;

	if (pop3_parse_cmd(line, len, &cmd) < 0 ||
	    (def = cmd_lookup(trans_cmds, cmd.keyword)) == NULL) {
		lang_reply(s->bev, s->lang, TXT_UNKNOWN_COMMAND);
		r = CMD_ERR;
	} else if (def->flags & CMD_BAD) {
		lang_reply(s->bev, s->lang, TXT_WRONG_STATE);
		r = CMD_ERR;
	} else {
		r = def->handler(s, &cmd);
	}
	if (r == CMD_ERR && client_bad_command(s->bev, s->lang, &s->bad, env->conf.max_bad_commands,
	                                       s->session, s->ip))
		r = CMD_CLOSE;
	if (r == CMD_CLOSE)
		close_after_flush(s);
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
		if (client_bad_command(s->bev, s->lang, &s->bad, env->conf.max_bad_commands,
		                       s->session, s->ip)) {
			close_after_flush(s);
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
		pump(s);
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
	    ipc_get_u32(m, &gid) < 0 || ipc_get_str(m, s->maildir, sizeof(s->maildir)) < 0 ||
	    ipc_get_u32(m, &expire_w) < 0 || ipc_get_u32(m, &delay_w) < 0 ||
	    ipc_get_u32(m, &utf8_w) < 0 || ipc_get_str(m, lang, sizeof(lang)) < 0 ||
	    lang_from_tag(lang) < 0 || (lang_needs_utf8(lang_from_tag(lang)) && !utf8_w) ||
	    ipc_get_data(m, &input, &inlen) < 0 || ipc_end(m) < 0 || s->fd < 0 ||
	    (s->maildir[0] != '/' && strncmp(s->maildir, "mbox:/", 6) != 0) ||
	    policy_from_wire(expire_w, USERDB_EXPIRE_DAYS_MAX, true, &has_expire, &expire) < 0 ||
	    policy_from_wire(delay_w, USERDB_LOGIN_DELAY_MAX, false, &has_delay, &delay) < 0) {
		log_warnx("event=bad_message from=master type=session");
		if (s->fd >= 0)
			close(s->fd);
		free(s);
		return;
	}
	s->is_mbox = strncmp(s->maildir, "mbox:", 5) == 0;
	s->utf8 = utf8_w != 0;
	s->lang = (enum lang)lang_from_tag(lang);
	s->expire_days = userdb_policy_expire(env->conf.expire_days, has_expire, expire);
	s->login_delay = userdb_policy_login_delay(env->conf.login_delay, has_delay, delay);
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
	bufferevent_set_timeouts(s->bev, &(struct timeval){conf_idle_timeout(&env->conf), 0},
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
	if (env->conf.isolation == ISOLATION_PER_CONNECTION && geteuid() == 0) {
		struct passwd *pw = NULL;

		if (uid == (uint32_t)-1 && env->conf.mail_user[0] != '\0' &&
		    (pw = getpwnam(env->conf.mail_user)) != NULL) {
			uid = pw->pw_uid;
			gid = pw->pw_gid;
		}
		if (uid != (uint32_t)-1 && child_setids_user(&env->conf, s->user, uid,
		                                             gid == (uint32_t)-1 ? uid : gid) < 0) {
			log_warn("session=%s ip=%s event=setuid_failed user=%s", s->session, s->ip,
			         s->user);
			lang_reply(s->bev, s->lang, TXT_INTERNAL_PERM);
			close_after_flush(s);
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
	lr =
	    maildir_lock_mode(s->maildir, (enum maildir_lock_kind)env->conf.maildir_lock, &s->lock);
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
		close_after_flush(s);
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
			close_after_flush(s);
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
		r = maildir_scan(s->maildir, (enum uidl_source)env->conf.uidl_source, &s->snap,
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
		close_after_flush(s);
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
static int quit_mbox(struct msess *s)
{
	const char *error = NULL;
	size_t asked = s->n_deleted;
	int r = asked > 0 ? mbox_update(s->mbox, &s->msnap, s->deleted, &error) : MBOX_OK;

	if (r != MBOX_OK) {
		log_warnx("session=%s ip=%s event=update_failed user=%s error=\"%s\"", s->session,
		          s->ip, s->user, error);
		s->n_deleted = 0;
		s->deleted_bytes = 0;
	}
	s->quit = true;
	/* Unlock before answering, so a client that reconnects at once is not told [IN-USE]. */
	mbox_close(s->mbox);
	s->mbox = NULL;
	if (r != MBOX_OK)
		lang_reply(s->bev, s->lang, TXT_UPDATE_FAILED,
		           r == MBOX_ERR_PERM ? "SYS/PERM" : "SYS/TEMP", asked);
	else
		lang_reply(s->bev, s->lang, TXT_BYE_DELETED, asked);
	return CMD_CLOSE;
}

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
		close_after_flush(s);
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
		close_after_flush(s);
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

	env = e;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	atexit(drop_all_locks);
	if (env->conf.isolation == ISOLATION_SHARED) {
		child_drop_privileges(env->conf.mail_user, "mail_user", "");
		keep_heap();
	}
	/* dotlock means shared storage, where directory times cannot vouch for an index. */
	maildir_scan_trust_stamps(env->conf.maildir_lock != MAILDIR_LOCK_DOTLOCK);
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
