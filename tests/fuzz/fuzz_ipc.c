/* libFuzzer target: the input is a received IPC payload, read with the get helpers. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define FUZZ_ASAN 1
#endif
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ipc_msg msg;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

/* Invariants that must hold after any get, whatever the payload. */
static void check_state(const struct ipc_msg *m, size_t size)
{
	CHECK(m->len == size);
	CHECK(m->rpos <= m->len);
}

static void check_data(const struct ipc_msg *m, const void *p, size_t len)
{
	const unsigned char *b = p;

	CHECK(b >= m->data && b <= m->data + m->len);
	CHECK(len <= (size_t)(m->data + m->len - b));
}

static void check_str(const char *s, size_t size)
{
	CHECK(memchr(s, '\0', size) != NULL);
}

/* What a handler does: a few fixed fields, then ipc_end. */
static void run_handler(struct ipc_msg *m, size_t size)
{
	char name[64], small[4];
	const void *p;
	size_t len;
	uint32_t u32;
	uint64_t u64;

	if (ipc_get_u32(m, &u32) == 0 && ipc_get_u64(m, &u64) == 0 &&
	    ipc_get_str(m, name, sizeof(name)) == 0) {
		check_str(name, sizeof(name));
		if (ipc_get_data(m, &p, &len) == 0)
			check_data(m, p, len);
		if (ipc_get_str(m, small, sizeof(small)) == 0)
			check_str(small, sizeof(small));
		(void)ipc_get_u32(m, &u32);
	}
	check_state(m, size);
	if (ipc_end(m) == 0)
		CHECK(!m->error && m->rpos == m->len);
}

/* The payload picks the next get itself, so any sequence of gets is explored. */
static void run_interpreter(struct ipc_msg *m, size_t size)
{
	uint32_t op, u32;
	uint64_t u64;
	const void *p;
	size_t len;
	char s[32];

	while (ipc_get_u32(m, &op) == 0) {
		switch (op % 5) {
		case 0:
			(void)ipc_get_u32(m, &u32);
			break;
		case 1:
			(void)ipc_get_u64(m, &u64);
			break;
		case 2:
			if (ipc_get_data(m, &p, &len) == 0)
				check_data(m, p, len);
			break;
		case 3:
			if (ipc_get_str(m, s, sizeof(s)) == 0)
				check_str(s, sizeof(s));
			break;
		default:
			/* A zero-sized output can hold no string at all. */
			CHECK(ipc_get_str(m, s, 0) == -1);
			break;
		}
		check_state(m, size);
	}
	CHECK(m->error);
	CHECK(ipc_end(m) == -1);
}

static void load(struct ipc_msg *m, const uint8_t *data, size_t size)
{
	ipc_msg_init(m, 1);
	memcpy(m->data, data, size);
	m->len = size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > IPC_MSG_MAX)
		return 0;
#ifdef FUZZ_ASAN
	/* The buffer is always IPC_MSG_MAX long; poison the unused tail so an over-read past len is
	 * caught, not just one past the array. */
	ASAN_UNPOISON_MEMORY_REGION(msg.data, sizeof(msg.data));
#endif
	load(&msg, data, size);
#ifdef FUZZ_ASAN
	ASAN_POISON_MEMORY_REGION(msg.data + size, sizeof(msg.data) - size);
#endif
	run_handler(&msg, size);

	msg.rpos = 0;
	msg.error = false;
	run_interpreter(&msg, size);
#ifdef FUZZ_ASAN
	ASAN_UNPOISON_MEMORY_REGION(msg.data, sizeof(msg.data));
#endif
	return 0;
}
