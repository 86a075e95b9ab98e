/* libFuzzer target for the gannet.index reader: arbitrary bytes, checked against a round trip.
 * Input: one control byte, then the index (see LLVMFuzzerTestOneInput). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mindex.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

/* Entries are copied out of the reader's buffer (valid during the callback only). */
#define KEEP_MAX 64

struct kept {
	size_t n, calls;
	struct mindex_entry e[KEEP_MAX];
	char name[KEEP_MAX][MINDEX_NAME_MAX];
	char uidl[KEEP_MAX][70];
	bool stop; /* abort at the third entry */
};

static int keep_cb(void *arg, const struct mindex_entry *e)
{
	struct kept *k = arg;

	/* What the reader hands out is always within its documented bounds. */
	CHECK(e->name_len >= 1 && e->name_len <= MINDEX_NAME_MAX);
	CHECK(e->uidl_len >= 1 && e->uidl_len <= 70);
	CHECK(e->name[0] != '.' && memchr(e->name, '/', e->name_len) == NULL);
	for (size_t i = 0; i < e->uidl_len; i++)
		CHECK(e->uidl[i] >= 0x21 && e->uidl[i] <= 0x7e);
	CHECK(e->size <= (uint64_t)INT64_MAX && e->first_seen >= 0 && e->first_retrieved >= 0);
	if (k->stop && k->calls == 2)
		return -1;
	k->calls++;
	if (k->n < KEEP_MAX) {
		memcpy(k->name[k->n], e->name, e->name_len);
		memcpy(k->uidl[k->n], e->uidl, e->uidl_len);
		k->e[k->n] = *e;
		k->e[k->n].name = k->name[k->n];
		k->e[k->n].uidl = k->uidl[k->n];
		k->n++;
	}
	return 0;
}

static int give_cb(void *arg, size_t i, struct mindex_entry *e)
{
	*e = ((struct kept *)arg)->e[i];
	return 0;
}

static bool same(const struct mindex_entry *a, const struct mindex_entry *b)
{
	return a->name_len == b->name_len && a->uidl_len == b->uidl_len && a->in_new == b->in_new &&
	       a->size == b->size && a->mtime == b->mtime && a->first_seen == b->first_seen &&
	       a->first_retrieved == b->first_retrieved &&
	       memcmp(a->name, b->name, a->name_len) == 0 &&
	       memcmp(a->uidl, b->uidl, a->uidl_len) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kept k, again;
	struct mindex_head head, head2;
	size_t grow;
	bool v1;
	const char *why = NULL;
	uint8_t *copy, *out;
	bool fix;
	int rc, fd;
	ssize_t n;

	/* Byte 0 is not part of the index: bit 0 set means "fix the checksum first", so that the
	 * fuzzer also explores what lies behind it (field checks, round trip) and not only the
	 * rejection of its own random CRCs. */
	if (size < 1)
		return 0;
	fix = data[0] & 1;
	data++;
	size--;
	/* An exact-size heap copy, so that ASan catches any read past the end. */
	copy = malloc(size ? size : 1);
	CHECK(copy != NULL);
	memcpy(copy, data, size);
	if (fix && size >= MINDEX_HDR_V1) {
		uint32_t crc = mindex_crc32c(0, copy, MINDEX_CRC_GAP);
		crc = mindex_crc32c(crc, copy + MINDEX_HDR_V1, size - MINDEX_HDR_V1);
		for (int i = 0; i < 4; i++)
			copy[20 + i] = (uint8_t)(crc >> (8 * i));
	}
	memset(&k, 0, sizeof(k));
	rc = mindex_read_mem(copy, size, &head, keep_cb, &k, &why);
	CHECK(rc == MINDEX_LOADED || rc == MINDEX_REJECTED);
	CHECK(why != NULL || rc == MINDEX_LOADED);
	/* The same input again, with a callback that stops at the third entry. */
	memset(&again, 0, sizeof(again));
	again.stop = true;
	CHECK(mindex_read_mem(copy, size, &head2, keep_cb, &again, &why) ==
	      (k.calls > 2 ? MINDEX_ABORTED : rc));
	v1 = size >= 12 && copy[8] == 1;
	free(copy);
	if (rc != MINDEX_LOADED)
		return 0;
	CHECK(k.calls == head.count && head.source <= 0xff);
	if (head.count > KEEP_MAX)
		return 0;
	/* Loaded consistently: writing the entries back gives an index that loads to the same. */
	fd = memfd_create("fuzz", MFD_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(mindex_write_fd(fd, &head, give_cb, &k) == 0);
	/* A version 1 input comes back as version 2: 48 octets of stamps longer. */
	grow = v1 ? MINDEX_HDR_SIZE - MINDEX_HDR_V1 : 0;
	out = malloc(size + grow + 1);
	CHECK(out != NULL);
	n = pread(fd, out, size + grow + 1, 0);
	close(fd);
	/* Only the UIDL-in-name choice may differ, and it can only make the file smaller. */
	CHECK(n > 0 && (size_t)n <= size + grow);
	memset(&again, 0, sizeof(again));
	CHECK(mindex_read_mem(out, (size_t)n, &head2, keep_cb, &again, &why) == MINDEX_LOADED);
	CHECK(head2.source == head.source && head2.count == head.count && again.n == k.n);
	CHECK(memcmp(head2.dirs, head.dirs, sizeof(head.dirs)) == 0);
	for (size_t i = 0; i < k.n; i++)
		CHECK(same(&k.e[i], &again.e[i]));
	free(out);
	return 0;
}
