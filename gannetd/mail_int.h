/* The mail process's session, shared by mail.c (life cycle: login, lock, snapshot, input,
 * close) and mail_cmd.c (the TRANSACTION commands and UPDATE). Internal to the mail process. */
#ifndef GANNETD_MAIL_INT_H
#define GANNETD_MAIL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>

#include "client.h"
#include "gannet_limits.h"
#include "lang.h"
#include "lineio.h"
#include "maildir.h"
#include "mbox.h"
#include "pop3.h"
#include "userdb.h"
#include "wthru.h"

/* LIST and UIDL listings are generated in slices of this size as the socket drains. */
#define LISTING_SLICE 4096

struct msess {
	uint64_t conn_id;
	char session[40];
	char ip[64];
	char tls[96];
	char user[USERNAME_MAX + 1];
	char *maildir; /* heap, exact size: idle sessions are many */
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

/* The configuration this process runs (mail.c). */
extern struct child_env *mail_env;

/* The TRANSACTION command table (mail_cmd.c), terminated by a NULL keyword. */
extern const struct cmd_def mail_trans_cmds[];

/* Queue more of the listing or message S is streaming while its output is below the
 * high-water mark; clears S->busy at its end (mail_cmd.c). */
void mail_pump(struct msess *s);

/* Stop reading and close S once its output is flushed; never frees S before returning, so
 * callers up the stack may still look at it (mail.c). */
void mail_close_after_flush(struct msess *s);

#endif
