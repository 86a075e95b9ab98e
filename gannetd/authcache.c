/* Verified-credential cache of the auth process (see authcache.h). */
#include "authcache.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "log.h"

#define MAC_LEN 32 /* HMAC-SHA256 */

struct slot {
	unsigned char mac[MAC_LEN];
	int64_t expires; /* CLOCK_MONOTONIC milliseconds; 0 = free */
	uint64_t stamp;  /* insertion order: the oldest of a full set goes */
};

/* What identifies one version of the user file. ctime is in the list because no tool can set
 * it back: an edit that restores the mtime (cp -p, touch -r) still changes it. */
struct file_id {
	bool valid;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot *slots;
static size_t n_sets, n_used;
static uint64_t next_stamp;
static long cache_ttl;
static const char *userdb_path;
static struct file_id seen;
/* Keys the MACs; random per process, so entries mean nothing outside this process and die with
 * it (a reload starts a new auth process, hence an empty cache). */
static unsigned char mac_key[32];

static int64_t now_ms(void)
{
	struct timespec ts;

	/* Monotonic: setting the clock back must not make entries live longer. Milliseconds, so
	 * that an entry lives the TTL, not up to a second less. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int authcache_init(const char *userdb, long ttl, long size, const char **error_r)
{
	size_t n;

	if (ttl <= 0 || size <= 0)
		return 0;
	if (ttl > AUTH_CACHE_TTL_MAX || size > AUTH_CACHE_SIZE_MAX) {
		*error_r = "auth cache settings out of bounds";
		return -1;
	}
	n = ((size_t)size + AUTH_CACHE_WAYS - 1) / AUTH_CACHE_WAYS;
	if (RAND_bytes(mac_key, sizeof(mac_key)) != 1) {
		*error_r = "no random key for the auth cache";
		return -1;
	}
	if ((slots = calloc(n * AUTH_CACHE_WAYS, sizeof(*slots))) == NULL) {
		*error_r = "out of memory for the auth cache";
		return -1;
	}
	n_sets = n;
	cache_ttl = ttl;
	userdb_path = userdb;
	return 0;
}

bool authcache_enabled(void)
{
	return slots != NULL;
}

/* MAC over user NUL password NUL stored-hash. The stored hash is in it so that an entry can only
 * ever match the hash it was verified against: a changed password invalidates it even if the
 * file's stat data were somehow unchanged. 0, or -1 when an input is too long or HMAC fails. */
static int make_mac(const char *user, const char *pw, size_t len, const char *stored,
                    unsigned char mac[MAC_LEN])
{
	unsigned char in[AUTH_CACHE_INPUT_MAX];
	size_t ulen = strnlen(user, USERNAME_MAX + 1), slen = strnlen(stored, PWHASH_MAX + 1), n;
	unsigned maclen = 0;
	int ret = 0;

	if (ulen > USERNAME_MAX || len > PASSWORD_MAX || slen > PWHASH_MAX ||
	    memchr(pw, '\0', len) != NULL)
		return -1;
	memcpy(in, user, ulen);
	in[ulen] = '\0';
	memcpy(in + ulen + 1, pw, len);
	in[ulen + 1 + len] = '\0';
	memcpy(in + ulen + 2 + len, stored, slen);
	n = ulen + 2 + len + slen;
	if (HMAC(EVP_sha256(), mac_key, sizeof(mac_key), in, n, mac, &maclen) == NULL ||
	    maclen != MAC_LEN)
		ret = -1;
	explicit_bzero(in, n);
	return ret;
}

static void flush_locked(void)
{
	explicit_bzero(slots, n_sets * AUTH_CACHE_WAYS * sizeof(*slots));
	n_used = 0;
}

/* Drop everything when the user file is not the one the entries were made under. Under the
 * lock. False when the file cannot be examined (then nothing may be trusted). */
static bool userdb_unchanged_locked(void)
{
	struct stat st;
	struct file_id now = {0};

	if (stat(userdb_path, &st) == 0) {
		now.valid = true;
		now.dev = st.st_dev;
		now.ino = st.st_ino;
		now.size = st.st_size;
		now.mtim = st.st_mtim;
		now.ctim = st.st_ctim;
	}
	if (now.valid && seen.valid && now.dev == seen.dev && now.ino == seen.ino &&
	    now.size == seen.size && now.mtim.tv_sec == seen.mtim.tv_sec &&
	    now.mtim.tv_nsec == seen.mtim.tv_nsec && now.ctim.tv_sec == seen.ctim.tv_sec &&
	    now.ctim.tv_nsec == seen.ctim.tv_nsec)
		return true;
	if (n_used > 0)
		log_debug("event=auth_cache_flush reason=userdb_changed entries=%zu", n_used);
	flush_locked();
	seen = now;
	return false;
}

static struct slot *set_of(const unsigned char mac[MAC_LEN])
{
	uint64_t h;

	memcpy(&h, mac, sizeof(h)); /* a keyed MAC: its bits are already uniform */
	return &slots[(size_t)(h % n_sets) * AUTH_CACHE_WAYS];
}

int authcache_lookup(const char *user, const char *password, size_t len, const char *stored)
{
	unsigned char mac[MAC_LEN];
	int64_t now = now_ms();
	int hit = 0;

	if (slots == NULL || make_mac(user, password, len, stored, mac) < 0)
		return 0;
	pthread_mutex_lock(&cache_lock);
	if (userdb_unchanged_locked()) {
		struct slot *set = set_of(mac);

		for (size_t i = 0; i < AUTH_CACHE_WAYS; i++) {
			if (set[i].expires == 0)
				continue;
			if (set[i].expires <= now) {
				explicit_bzero(&set[i], sizeof(set[i]));
				n_used--;
				continue;
			}
			if (CRYPTO_memcmp(set[i].mac, mac, MAC_LEN) == 0)
				hit = 1;
		}
	}
	pthread_mutex_unlock(&cache_lock);
	explicit_bzero(mac, sizeof(mac));
	return hit;
}

void authcache_add(const char *user, const char *password, size_t len, const char *stored)
{
	unsigned char mac[MAC_LEN];
	int64_t now = now_ms();
	struct slot *set, *victim = NULL;

	if (slots == NULL || make_mac(user, password, len, stored, mac) < 0)
		return;
	pthread_mutex_lock(&cache_lock);
	/* An entry made under a user file that changed meanwhile would never match (the stored
	 * hash is in the MAC), but do not keep it either. */
	userdb_unchanged_locked();
	set = set_of(mac);
	for (size_t i = 0; i < AUTH_CACHE_WAYS; i++) {
		struct slot *s = &set[i];

		if (s->expires != 0 && CRYPTO_memcmp(s->mac, mac, MAC_LEN) == 0) {
			victim = s; /* the same credential again: refresh it */
			break;
		}
		if (s->expires != 0 && s->expires <= now) {
			explicit_bzero(s, sizeof(*s));
			n_used--;
		}
		if (victim == NULL ||
		    (victim->expires != 0 && (s->expires == 0 || s->stamp < victim->stamp)))
			victim = s;
	}
	if (victim->expires == 0)
		n_used++;
	memcpy(victim->mac, mac, MAC_LEN);
	victim->expires = now + (int64_t)cache_ttl * 1000;
	victim->stamp = ++next_stamp;
	pthread_mutex_unlock(&cache_lock);
	explicit_bzero(mac, sizeof(mac));
}

void authcache_flush(void)
{
	if (slots == NULL)
		return;
	pthread_mutex_lock(&cache_lock);
	flush_locked();
	pthread_mutex_unlock(&cache_lock);
}

size_t authcache_count(void)
{
	size_t n;

	pthread_mutex_lock(&cache_lock);
	n = n_used;
	pthread_mutex_unlock(&cache_lock);
	return n;
}
