/* libFuzzer target for the mbox parser, scan and UPDATE: arbitrary bytes as a mailbox file.
 * Input: one control byte (parser chunk size), one octet of deletion mask, then the file. */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "mbox.h"
#include "pop3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

/* Every message's octets lie in the file, in order, without overlap; sizes are what the
 * encoder says; UIDLs are valid and unique. */
static void check_snap(const struct mbox_snapshot *s, const char *text, size_t len)
{
	uint64_t sum = 0, prev_end = 0;

	for (size_t i = 0; i < s->count; i++) {
		uint64_t off = mbox_msg_raw_offset(s, i), rl = mbox_msg_raw_len(s, i);
		size_t ul, ul2;
		const char *u = mbox_msg_uidl(s, i, &ul);

		CHECK(off >= prev_end && off <= len && rl <= len - off);
		CHECK(i == 0 || off > prev_end); /* a From_ line in between */
		prev_end = off + rl;
		CHECK(mbox_msg_size(s, i) == pop3_wire_size(text + off, (size_t)rl));
		sum += mbox_msg_size(s, i);
		CHECK(ul >= 1 && ul <= POP3_UIDL_MAX);
		for (size_t k = 0; k < ul; k++)
			CHECK(u[k] >= 0x21 && u[k] <= 0x7e);
		for (size_t j = 0; j < i; j++) {
			const char *v = mbox_msg_uidl(s, j, &ul2);

			CHECK(ul != ul2 || memcmp(u, v, ul) != 0);
		}
	}
	CHECK(sum == s->total_size);
	CHECK(s->count <= len / 5 + 1);
}

static void same_snap(const struct mbox_snapshot *a, const struct mbox_snapshot *b)
{
	CHECK(a->count == b->count && a->total_size == b->total_size);
	for (size_t i = 0; i < a->count; i++) {
		size_t la, lb;
		const char *ua = mbox_msg_uidl(a, i, &la), *ub = mbox_msg_uidl(b, i, &lb);

		CHECK(mbox_msg_raw_offset(a, i) == mbox_msg_raw_offset(b, i));
		CHECK(mbox_msg_raw_len(a, i) == mbox_msg_raw_len(b, i));
		CHECK(mbox_msg_size(a, i) == mbox_msg_size(b, i));
		CHECK(la == lb && memcmp(ua, ub, la) == 0);
	}
}

static char dir[64], box[128];

static void cleanup(void)
{
	unlink(box);
	rmdir(dir);
}

static void setup_once(void)
{
	if (dir[0] != '\0')
		return;
	/* tmpfs: UPDATE's fsyncs cost nothing there. */
	snprintf(dir, sizeof(dir), "%s/gannet-fuzz-mbox-XXXXXX",
	         access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(box, sizeof(box), "%s/user", dir);
	atexit(cleanup);
	mbox_set_lock_wait_ms(0);
	log_init("fuzz_mbox", true, LOG_LEVEL_WARN);
}

static char *read_file(const char *path, size_t *len_r)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY);

	CHECK(fd >= 0 && fstat(fd, &st) == 0);
	buf = malloc((size_t)st.st_size + 1);
	CHECK(buf != NULL);
	CHECK(read(fd, buf, (size_t)st.st_size) == st.st_size);
	close(fd);
	*len_r = (size_t)st.st_size;
	return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mbox_snapshot whole, chunked, file, after;
	struct mbox_handle *h;
	const char *text, *err;
	unsigned char *del;
	size_t len, chunk, nlen;
	uint8_t mask;
	char *ntext;
	int r, r2, fd;

	if (size < 2)
		return 0;
	setup_once();
	chunk = data[0] % 17;
	mask = data[1];
	text = (const char *)data + 2;
	len = size - 2;

	r = mbox_parse_mem(text, len, 0, &whole, &err);
	r2 = mbox_parse_mem(text, len, chunk, &chunked, &err);
	CHECK(r == r2);
	if (r != MBOX_OK) {
		CHECK(r == MBOX_ERR_PERM && whole.count == 0 && chunked.count == 0);
		CHECK(len > 0 && (len < 5 || memcmp(text, "From ", 5) != 0));
		return 0;
	}
	CHECK(len == 0 || memcmp(text, "From ", 5) == 0);
	CHECK((whole.count == 0) == (len == 0));
	check_snap(&whole, text, len);
	same_snap(&whole, &chunked);
	mbox_snapshot_free(&chunked);

	/* The same through a file: scan agrees with the in-memory parse. */
	fd = open(box, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, text, len) == (ssize_t)len && close(fd) == 0);
	CHECK(mbox_open(box, &h, &err) == MBOX_OK);
	CHECK(mbox_scan(h, &file, &err) == MBOX_OK);
	same_snap(&whole, &file);

	/* UPDATE with a mask from the input: the new file holds exactly the kept messages. */
	del = calloc(file.count + 1, 1);
	CHECK(del != NULL);
	for (size_t i = 0; i < file.count; i++)
		del[i] = (mask >> (i % 8)) & 1;
	CHECK(mbox_update(h, &file, del, &err) == MBOX_OK);
	mbox_close(h);
	ntext = read_file(box, &nlen);
	CHECK(mbox_parse_mem(ntext, nlen, 0, &after, &err) == MBOX_OK);
	check_snap(&after, ntext, nlen);
	{
		size_t j = 0;

		for (size_t i = 0; i < whole.count; i++) {
			uint64_t rl = mbox_msg_raw_len(&whole, i);

			if (del[i])
				continue;
			CHECK(j < after.count && mbox_msg_raw_len(&after, j) == rl);
			CHECK(memcmp(ntext + mbox_msg_raw_offset(&after, j),
			             text + mbox_msg_raw_offset(&whole, i), (size_t)rl) == 0);
			CHECK(mbox_msg_size(&after, j) == mbox_msg_size(&whole, i));
			j++;
		}
		CHECK(j == after.count);
	}
	free(ntext);
	free(del);
	mbox_snapshot_free(&after);
	mbox_snapshot_free(&file);
	mbox_snapshot_free(&whole);
	return 0;
}
