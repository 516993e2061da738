// SPDX-License-Identifier: MIT
/*
 * ptfuzz guest agent: runs userspace steps on the real uAPI inside a QEMU guest.
 *
 * It reads one request per line from a virtio-serial port and answers one line,
 * so the guest boots once and runs thousands of steps.  Every field is a
 * decimal number or hex bytes ("-" for none): no request text is ever
 * interpreted as a path or a command except in the explicit verbs below, and
 * those are the host's own (corpus text never reaches them unencoded).
 *
 *   mem   CAPS DEV ID OPCODE IN_SIZE OUT_SIZE FLAGS RSVD IN   CXL_MEM_SEND_COMMAND
 *   fwctl CAPS DEV SIZE TAIL SCOPE IN_LEN OUT_LEN IN  FWCTL_RPC (struct fwctl_rpc of SIZE bytes,
 *                                                     TAIL in every byte past the kernel's struct)
 *   write CAPS PATH DATA                              write(2) to a sysfs/debugfs file
 *   read  PATH                                        the file's bytes (as root)
 *   sh    CMD                                         /bin/sh -c CMD as root (kernel actions)
 *
 * CAPS is a capability mask (bit n = capability n).  A device node is opened as
 * root and the step runs in a child with exactly CAPS, as uid 65534: the model's
 * caller is "someone given the node, with these capabilities".  A file write is
 * opened after dropping, except that a caller with CAP_SYS_ADMIN writes as root:
 * the model's sysfs rule uses CAP_SYS_ADMIN to stand for root (mode 0200 files).
 *
 * Answer: "ok RC ERRNO RETVAL OUTLEN OUT KMSG" where RC is the syscall's result,
 * RETVAL the device's return code (cxl_send_command.retval, or
 * fwctl_rpc_cxl_out.retval when out_len >= 8), OUT the output bytes (at most
 * 4096) and KMSG what the kernel logged meanwhile (/dev/kmsg), hex-encoded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* include/uapi/linux/cxl_mem.h */
struct cxl_send_command {
	uint32_t id;
	uint32_t flags;
	union {
		struct { uint16_t opcode; uint16_t rsvd; } raw;
		uint32_t rsvd;
	};
	uint32_t retval;
	struct { uint32_t size; uint32_t rsvd; uint64_t payload; } in;
	struct { uint32_t size; uint32_t rsvd; uint64_t payload; } out;
};
#define CXL_MEM_SEND_COMMAND _IOWR(0xCE, 2, struct cxl_send_command)

/* include/uapi/fwctl/fwctl.h */
struct fwctl_rpc {
	uint32_t size;
	uint32_t scope;
	uint32_t in_len;
	uint32_t out_len;
	uint64_t in;
	uint64_t out;
};
#define FWCTL_RPC _IO(0x9A, 1)

#define MAX_BUF (4u << 20)   /* above fwctl's MAX_RPC_LEN and any CXL payload */
#define MAX_OUT_SHOWN 4096
#define NOBODY 65534

struct result {
	long rc;
	int err;
	uint32_t retval;
	uint32_t outlen;
	uint8_t out[MAX_OUT_SHOWN];
};

static int kmsg = -1;
static uint8_t input[MAX_BUF];

static int unhex(const char *s, uint8_t *out, size_t max)
{
	size_t n = 0;

	if (!strcmp(s, "-"))
		return 0;
	while (s[0] && s[1]) {
		unsigned int b;

		if (n >= max || sscanf(s, "%2x", &b) != 1)
			return -1;
		out[n++] = (uint8_t)b;
		s += 2;
	}
	return (int)n;
}

static void puthex(FILE *f, const uint8_t *p, size_t n)
{
	if (!n) {
		fputc('-', f);
		return;
	}
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", p[i]);
}

static char *unhex_str(const char *s)
{
	static uint8_t buf[4096];
	int n = unhex(s, buf, sizeof(buf) - 1);

	if (n < 0)
		return NULL;
	buf[n] = 0;
	return (char *)buf;
}

/* Become uid 65534 with exactly the capabilities in `caps`. */
static int drop_to(uint64_t caps)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];

	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) || setgroups(0, NULL) ||
	    setresgid(NOBODY, NOBODY, NOBODY) || setresuid(NOBODY, NOBODY, NOBODY))
		return -1;
	memset(d, 0, sizeof(d));
	d[0].effective = d[0].permitted = (uint32_t)caps;
	d[1].effective = d[1].permitted = (uint32_t)(caps >> 32);
	return (int)syscall(SYS_capset, &h, d);
}

/*
 * Run `fn` in a child as the caller; the result comes back through a pipe.  A
 * child killed by an oops answers rc -1 with errno EFAULT-like 0 and a marker.
 */
typedef void (*stepfn)(void *arg, int fd, struct result *r);

static void as_caller(uint64_t caps, const char *node, int drop_first, stepfn fn, void *arg,
		      struct result *r)
{
	int p[2], status;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	if (pipe(p)) {
		r->rc = -1;
		r->err = errno;
		return;
	}
	pid = fork();
	if (pid == 0) {
		struct result c;
		int fd = -1;

		memset(&c, 0, sizeof(c));
		close(p[0]);
		if (node && !drop_first)
			fd = open(node, O_RDWR);
		if (drop_to(caps)) {
			c.rc = -2;
			c.err = errno;
		} else if (node && !drop_first && fd < 0) {
			c.rc = -3;  /* the node is missing: not the caller's verdict */
			c.err = ENOENT;
		} else {
			fn(arg, fd, &c);
		}
		if (write(p[1], &c, sizeof(c)) != sizeof(c))
			_exit(2);
		_exit(0);
	}
	close(p[1]);
	if (pid < 0 || read(p[0], r, sizeof(*r)) != sizeof(*r)) {
		r->rc = -4;  /* the child died before answering: an oops killed it */
		r->err = 0;
	}
	close(p[0]);
	if (pid > 0)
		waitpid(pid, &status, 0);
}

struct mem_req {
	uint32_t id, opcode, in_size, out_size, flags, rsvd;
	uint8_t *in;
};

static void do_mem(void *arg, int fd, struct result *r)
{
	struct mem_req *m = arg;
	struct cxl_send_command c;
	uint8_t *out = calloc(1, (m->out_size < MAX_BUF ? m->out_size : 0) + 1);

	memset(&c, 0, sizeof(c));
	c.id = m->id;
	c.flags = m->flags;
	c.raw.rsvd = (uint16_t)m->rsvd;  /* on a table id: the upper half of rsvd, as the C exporter sets it */
	if (m->id == 2)
		c.raw.opcode = (uint16_t)m->opcode;
	c.in.size = m->in_size;
	c.in.payload = (uintptr_t)m->in;
	c.out.size = m->out_size;
	c.out.payload = (uintptr_t)out;
	r->rc = ioctl(fd, CXL_MEM_SEND_COMMAND, &c);
	r->err = r->rc < 0 ? errno : 0;
	r->retval = c.retval;
	r->outlen = r->rc < 0 ? 0 : c.out.size;
	memcpy(r->out, out, r->outlen < MAX_OUT_SHOWN ? r->outlen : MAX_OUT_SHOWN);
	if (r->outlen > MAX_OUT_SHOWN)
		r->outlen = MAX_OUT_SHOWN;
	free(out);
}

struct fwctl_req {
	uint32_t size, scope, in_len, out_len;
	uint8_t tail;
	uint8_t *in;
};

#define MAX_RPC_STRUCT 4096  /* the model's callers map at most a page for struct fwctl_rpc */

static void do_fwctl(void *arg, int fd, struct result *r)
{
	struct fwctl_req *q = arg;
	struct fwctl_rpc c;
	uint32_t room = q->size > sizeof(c) ? (q->size < MAX_RPC_STRUCT ? q->size : MAX_RPC_STRUCT) : sizeof(c);
	uint8_t *rpc = calloc(1, room);
	uint8_t *out = calloc(1, (q->out_len < MAX_BUF ? q->out_len : 0) + 1);

	memset(&c, 0, sizeof(c));
	c.size = q->size;
	c.scope = q->scope;
	c.in_len = q->in_len;
	c.out_len = q->out_len;
	c.in = (uintptr_t)q->in;
	c.out = (uintptr_t)out;
	memcpy(rpc, &c, sizeof(c));
	memset(rpc + sizeof(c), q->tail, room - sizeof(c));
	r->rc = ioctl(fd, FWCTL_RPC, rpc);
	r->err = r->rc < 0 ? errno : 0;
	memcpy(&c, rpc, sizeof(c));  /* fwctl_cmd_rpc() writes out_len back */
	free(rpc);
	r->outlen = r->rc < 0 ? 0 : c.out_len;
	if (r->rc >= 0 && c.out_len >= 8)
		memcpy(&r->retval, out + 4, 4);  /* struct fwctl_rpc_cxl_out.retval */
	memcpy(r->out, out, r->outlen < MAX_OUT_SHOWN ? r->outlen : MAX_OUT_SHOWN);
	if (r->outlen > MAX_OUT_SHOWN)
		r->outlen = MAX_OUT_SHOWN;
	free(out);
}

struct write_req {
	const char *path;
	uint8_t *data;
	int len;
};

static void do_write(void *arg, int unused, struct result *r)
{
	struct write_req *w = arg;
	int fd = open(w->path, O_WRONLY);

	(void)unused;
	if (fd < 0) {
		r->rc = -1;
		r->err = errno;
		return;
	}
	r->rc = write(fd, w->data, (size_t)w->len);
	r->err = r->rc < 0 ? errno : 0;
	close(fd);
}

/* The input buffer past the bytes sent is zero up to the declared size, as a caller's calloc() is. */
static void zero_tail(int sent, uint32_t size)
{
	if (size > MAX_BUF)
		size = MAX_BUF;
	if ((uint32_t)sent < size)
		memset(input + sent, 0, size - (uint32_t)sent);
}

static void drain_kmsg(FILE *out)
{
	static char rec[8192];
	ssize_t n;
	int any = 0;

	if (kmsg < 0) {
		fputc('-', out);
		return;
	}
	while ((n = read(kmsg, rec, sizeof(rec) - 1)) > 0 || (n < 0 && errno == EPIPE)) {
		if (n <= 0)
			continue;  /* EPIPE: records were overwritten; go on with the next */
		puthex(out, (uint8_t *)rec, (size_t)n);
		any = 1;
	}
	if (!any)
		fputc('-', out);
}

static void answer(FILE *out, struct result *r)
{
	fprintf(out, "ok %ld %d %u %u ", r->rc, r->err, r->retval, r->outlen);
	puthex(out, r->out, r->outlen);
	fputc(' ', out);
	drain_kmsg(out);
	fputc('\n', out);
	fflush(out);
}

static void do_sh(FILE *out, const char *cmd)
{
	struct result r;
	FILE *p;
	size_t n = 0;

	memset(&r, 0, sizeof(r));
	p = popen(cmd, "r");
	if (!p) {
		r.rc = -1;
		r.err = errno;
	} else {
		n = fread(r.out, 1, sizeof(r.out), p);
		while (fgetc(p) != EOF)
			;
		r.rc = pclose(p);
		r.rc = WIFEXITED(r.rc) ? WEXITSTATUS(r.rc) : 128 + WTERMSIG(r.rc);
	}
	r.outlen = (uint32_t)n;
	answer(out, &r);
}

int main(int argc, char **argv)
{
	const char *port = argc > 1 ? argv[1] : "/dev/vport0p1";
	uint8_t *in = input;
	static char line[2 * MAX_BUF + 4096];
	FILE *io_in, *io_out;
	int fd;

	fd = open(port, O_RDWR);
	if (fd < 0) {
		perror(port);
		return 1;
	}
	io_in = fdopen(fd, "r");
	io_out = fdopen(dup(fd), "w");
	kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (kmsg >= 0)
		lseek(kmsg, 0, SEEK_END);
	fprintf(io_out, "hello ptfuzz-agent 1\n");
	fflush(io_out);
	while (fgets(line, sizeof(line), io_in)) {
		char verb[16], a[8][64], *big;
		struct result r;
		int n;

		line[strcspn(line, "\n")] = 0;
		big = strrchr(line, ' ');
		if (sscanf(line, "%15s", verb) != 1 || !big) {
			fprintf(io_out, "err bad-request\n");
			fflush(io_out);
			continue;
		}
		big++;
		if (!strcmp(verb, "mem")) {
			struct mem_req m;
			char *dev;

			if (sscanf(line, "%*s %63s %63s %63s %63s %63s %63s %63s %63s", a[0], a[1], a[2], a[3], a[4], a[5],
				   a[6], a[7]) != 8 ||
			    !(dev = unhex_str(a[1])) || (n = unhex(big, in, MAX_BUF)) < 0)
				goto bad;
			m.id = (uint32_t)strtoul(a[2], NULL, 10);
			m.opcode = (uint32_t)strtoul(a[3], NULL, 10);
			m.in_size = (uint32_t)strtoul(a[4], NULL, 10);
			m.out_size = (uint32_t)strtoul(a[5], NULL, 10);
			m.flags = (uint32_t)strtoul(a[6], NULL, 10);
			m.rsvd = (uint32_t)strtoul(a[7], NULL, 10);
			m.in = in;
			zero_tail(n, m.in_size);
			as_caller(strtoull(a[0], NULL, 10), dev, 0, do_mem, &m, &r);
			answer(io_out, &r);
		} else if (!strcmp(verb, "fwctl")) {
			struct fwctl_req q;
			char *dev;

			if (sscanf(line, "%*s %63s %63s %63s %63s %63s %63s %63s", a[0], a[1], a[2], a[3], a[4], a[5],
				   a[6]) != 7 || !(dev = unhex_str(a[1])) || (n = unhex(big, in, MAX_BUF)) < 0)
				goto bad;
			q.size = (uint32_t)strtoul(a[2], NULL, 10);
			q.tail = (uint8_t)strtoul(a[3], NULL, 10);
			q.scope = (uint32_t)strtoul(a[4], NULL, 10);
			q.in_len = (uint32_t)strtoul(a[5], NULL, 10);
			q.out_len = (uint32_t)strtoul(a[6], NULL, 10);
			q.in = in;
			zero_tail(n, q.in_len);
			as_caller(strtoull(a[0], NULL, 10), dev, 0, do_fwctl, &q, &r);
			answer(io_out, &r);
		} else if (!strcmp(verb, "write")) {
			static char path[4096];
			struct write_req w;
			uint64_t caps;
			char *p;

			if (sscanf(line, "%*s %63s %4095s", a[0], path) != 2 || !(p = unhex_str(path)) ||
			    (n = unhex(big, in, MAX_BUF)) < 0)
				goto bad;
			w.path = p;
			w.data = in;
			w.len = n;
			caps = strtoull(a[0], NULL, 10);
			if (caps & (1ull << CAP_SYS_ADMIN)) {
				memset(&r, 0, sizeof(r));
				do_write(&w, -1, &r);
			} else {
				as_caller(caps, NULL, 1, do_write, &w, &r);
			}
			answer(io_out, &r);
		} else if (!strcmp(verb, "read")) {
			char *p = unhex_str(big);
			int f;

			memset(&r, 0, sizeof(r));
			if (!p)
				goto bad;
			f = open(p, O_RDONLY);
			if (f < 0) {
				r.rc = -1;
				r.err = errno;
			} else {
				ssize_t got = read(f, r.out, sizeof(r.out));

				r.rc = got;
				r.err = got < 0 ? errno : 0;
				r.outlen = got > 0 ? (uint32_t)got : 0;
				close(f);
			}
			answer(io_out, &r);
		} else if (!strcmp(verb, "sh")) {
			char *cmd = unhex_str(big);

			if (!cmd)
				goto bad;
			do_sh(io_out, cmd);
		} else {
			goto bad;
		}
		continue;
bad:
		fprintf(io_out, "err bad-request\n");
		fflush(io_out);
	}
	return 0;
}
