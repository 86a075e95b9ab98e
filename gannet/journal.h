/* The per-account journal of seen messages: an append-only file of records, loaded into a hash
 * table, locked for the run, compacted by an atomic rewrite. A message is recorded as seen only
 * after its delivery is durable, so a crash at any point loses nothing. */
#ifndef GANNET_JOURNAL_H
#define GANNET_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "climits.h"
#include "util.h"

enum {
	J_SEEN = 1,    /* delivered in full and durable */
	J_HEADERS = 2, /* only the header was delivered (oversize = headers) */
	J_DROPPED = 4, /* the filter dropped it */
	J_PENDING = 8, /* a delivery started and its outcome is unknown (in memory only) */
};

struct jentry {
	uint32_t key_off; /* into the key arena */
	uint8_t key_len;
	uint8_t flags;
	bool live;          /* listed by the server in this session */
	int64_t first_seen; /* Unix time of the first download, for keep = N days */
};

struct journal {
	int fd;     /* the journal, opened O_APPEND */
	int lockfd; /* flock held for the whole run */
	char path[GANNET_PATH_MAX];
	char dir[GANNET_PATH_MAX];
	struct jentry *ent;
	size_t n, cap;
	char *keys;
	size_t keys_len, keys_cap;
	uint32_t *slot; /* hash table of entry index + 1 (0 = empty) */
	size_t nslots;
	uint64_t records; /* lines in the file: compaction happens when most are stale */
	bool unsynced;
};

/* Lock and load the journal of ACCOUNT in STATE_DIR (created 0700). A journal whose last line
 * was cut off by a crash is repaired; damage anywhere else is an error (EX_DATAERR) rather than
 * a silent refetch. Another gannet holding the lock gives EX_TEMPFAIL. 0 or -1 with E. */
int journal_open(struct journal *j, const char *state_dir, const char *account, struct gerr *e);

/* The entry for KEY, or NULL. */
struct jentry *journal_get(struct journal *j, const char *key);

/* Record that a delivery of KEY starts (for an MDA, whose outcome a crash leaves unknown). With
 * SYNC the record is on disk before we return. 0 or -1 with E. */
int journal_pending(struct journal *j, const char *key, bool sync, struct gerr *e);

/* Record KEY as seen with FLAGS (J_SEEN ...), first seen at WHEN (kept if already known). The
 * record is written but not synced: call journal_sync before anything depends on it. */
int journal_seen(struct journal *j, const char *key, int flags, int64_t when, struct gerr *e);

/* fsync the journal if anything was written since the last sync. 0 or -1 with E. */
int journal_sync(struct journal *j, struct gerr *e);

/* Forget entries that are not live (no longer on the server) by rewriting the file atomically,
 * when they and superseded "P" records make up a third of it. Only call after a complete
 * listing. 0 or -1 with E. */
int journal_compact(struct journal *j, struct gerr *e);

/* Release the lock and the memory. */
void journal_close(struct journal *j);

/* The key of entry E. */
const char *journal_key(const struct journal *j, const struct jentry *e, size_t *len_r);

#endif
