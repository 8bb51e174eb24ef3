/*
 * kmemdbg inside crash: a thin extension that registers one command,
 * "kmemdbg", and runs kmemdbg's Python as a child process.  crash does every
 * read: the child asks for physical memory, VMCOREINFO values, symbol values,
 * the kind of memory source and crash's own kvtop() answer over a pipe, and
 * sends back the command's output, which goes through crash's fp (so crash's
 * pipes and redirection work).
 *
 * Built by "python3 -m kmemdbg.crash --build" against the installed crash's
 * defs.h; that build fixes KMEMDBG_PYTHON (the interpreter that has kmemdbg)
 * and KMEMDBG_PYTHONPATH (where kmemdbg was found).
 *
 * Frames, both ways: a 24-byte little-endian header {u32 kind, u32 length,
 * u64 a, u64 b} and `length` bytes of payload.
 *
 * Robustness: the child is in its own process group (a Ctrl-C reaches it
 * only through this shim, which forwards SIGINT and kills it if it does not
 * answer), dies with crash (PR_SET_PDEATHSIG, and EOF on its pipe), is always
 * reaped, and is stopped by pc->cmd_cleanup when one of crash's FATAL errors
 * longjmps out of a command halfway through a request.
 */
#define _GNU_SOURCE
#include "defs.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef KMEMDBG_PYTHON
#define KMEMDBG_PYTHON "python3"
#endif
#ifndef KMEMDBG_PYTHONPATH
#define KMEMDBG_PYTHONPATH ""
#endif

/* frame kinds */
#define K_RUN      'R'  /* shim: run argv (NUL-separated payload, a = argc) */
#define K_DATA     'D'  /* shim: reply with data */
#define K_FAIL     'F'  /* shim: the request failed (a = failing address, payload = why) */
#define K_HELLO    'H'  /* child: ready (payload = its description) */
#define K_PREAD    'P'  /* child: a = pa, b = size */
#define K_VREAD    'V'  /* child: a = va, b = size (start-up only: VMCOREINFO's own pointer) */
#define K_VMCI     'C'  /* child: payload = VMCOREINFO key */
#define K_SYMBOL   'S'  /* child: payload = symbol name */
#define K_SOURCE   'T'  /* child: what crash has open */
#define K_KVTOP    'K'  /* child: a = va; crash's own translation */
#define K_OUT      'O'  /* child: text for fp */
#define K_ERR      'W'  /* child: text for the error stream */
#define K_DONE     'X'  /* child: command finished, a = exit status */
#define K_ERROR    'E'  /* child: cannot start (payload = one line) */
#define K_TESTFATAL 'Z' /* child: test hook, error(FATAL) while a request is open */

#define MAX_READ_BYTES (64UL << 20)
#define MAX_FRAME_BYTES (256UL << 20)
#define START_TIMEOUT_MS 60000
#define INTERRUPT_GRACE_MS 3000

struct frame {
	uint32_t kind;
	uint32_t length;
	uint64_t a;
	uint64_t b;
};

static pid_t child_pid = -1;
static int to_child = -1, from_child = -1;
static int busy;                       /* a command is talking to the child */
static volatile sig_atomic_t got_sigint;
static struct sigaction saved_sigint, saved_sigpipe;
static int handlers_installed;
static FILE *capture_fp, *capture_saved_fp;
static char *payload_buf;
static size_t payload_cap;
static char *data_buf;
static size_t data_cap;
static unsigned long long trips;        /* requests served in the current command */

static void cmd_kmemdbg(void);
static void kmemdbg_cleanup(void *);

static char *help_kmemdbg[] = {
	"kmemdbg",
	"the truth about kernel virtual addresses, from the page tables",
	"[--json] layout | classify ADDR... | vtop ADDR... | check [--crash] ADDR[=PA]...\n"
	"       | ptov PHYS... | ptdump [--start VA --end VA] | audit [--rule NAME...]",
	"  Runs kmemdbg's commands on the dump (or live system) this crash session",
	"  has open, with the arguments, text and --json output of the kmemdbg",
	"  command line.  kmemdbg walks the kernel page tables itself; every byte it",
	"  reads is a physical read done by crash, so it works on every format crash",
	"  opens.  Output goes through crash's output, so | and > work.",
	"",
	"  check --crash also asks crash's own kvtop() for each address and says",
	"  where crash's answer and the page tables disagree, and why (arithmetic",
	"  for an unmapped address, a non-linear address, a huge page).",
	"",
	"  kmemdbg's Python runs as a child process: " KMEMDBG_PYTHON,
	"  (\"kmemdbg --help\" and \"kmemdbg COMMAND --help\" list every option.)",
	"\nEXAMPLES",
	"    %s> kmemdbg vtop ffffffff81000000",
	"    %s> kmemdbg check --crash ffffffff81000000 ffffc90000124000",
	"    %s> kmemdbg ptdump | grep RWX",
	"    %s> kmemdbg --json audit > audit.json",
	NULL
};

static struct command_table_entry command_table[] = {
	{ "kmemdbg", cmd_kmemdbg, help_kmemdbg, 0 },
	{ NULL, NULL, NULL, 0 },
};

/* error stream: where crash prints its own errors, not the redirected fp */
static FILE *
errstream(void)
{
	return pc->error_fp ? pc->error_fp : stdout;
}

static void
say(const char *fmt, const char *arg)
{
	FILE *out = errstream();

	fprintf(out, "kmemdbg: ");
	fprintf(out, fmt, arg);
	fprintf(out, "\n");
	fflush(out);
}

static void
on_sigint(int sig)
{
	(void)sig;
	got_sigint = 1;
}

static void
install_handlers(void)
{
	struct sigaction sa;

	if (handlers_installed)
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;      /* no SA_RESTART: a blocked read returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &saved_sigint);
	sa.sa_handler = SIG_IGN;        /* a dead child or a closed `| head` is an error, not a kill */
	sigaction(SIGPIPE, &sa, &saved_sigpipe);
	handlers_installed = 1;
	got_sigint = 0;
}

static void
restore_handlers(void)
{
	if (!handlers_installed)
		return;
	sigaction(SIGINT, &saved_sigint, NULL);
	sigaction(SIGPIPE, &saved_sigpipe, NULL);
	handlers_installed = 0;
}

static void
end_capture(void)
{
	if (capture_fp) {
		if (fp == capture_fp)
			fp = capture_saved_fp;
		fclose(capture_fp);
		capture_fp = NULL;
	}
}

/* Wait for the child to exit for up to `ms` milliseconds; returns TRUE when reaped. */
static int reaped_status;

static int
reap(int ms)
{
	int status = 0;
	pid_t got;

	reaped_status = -1;
	for (;;) {
		got = waitpid(child_pid, &status, WNOHANG);
		if (got == child_pid) {
			reaped_status = status;
			return TRUE;
		}
		if (got < 0 && errno == ECHILD)
			return TRUE;
		if (got < 0 && errno != EINTR)
			return TRUE;
		if (ms <= 0)
			return FALSE;
		usleep(10000);
		ms -= 10;
	}
}

/* Stop and reap the child: EOF first (it exits by itself), then SIGKILL. */
static void
stop_child(int grace_ms)
{
	if (to_child >= 0)
		close(to_child);
	if (from_child >= 0)
		close(from_child);
	to_child = from_child = -1;
	if (child_pid > 0) {
		if (!reap(grace_ms)) {
			kill(child_pid, SIGKILL);
			while (!reap(1000))
				kill(child_pid, SIGKILL);
			if (reaped_status < 0)
				reaped_status = 0;
		}
	}
	child_pid = -1;
}

static const char *
exit_text(int status)
{
	static char buf[64];

	if (WIFSIGNALED(status))
		snprintf(buf, sizeof(buf), "killed by signal %d", WTERMSIG(status));
	else if (WIFEXITED(status))
		snprintf(buf, sizeof(buf), "exit status %d", WEXITSTATUS(status));
	else
		snprintf(buf, sizeof(buf), "status 0x%x", status);
	return buf;
}

/* The child went away mid-command: reap it and say so in one line. */
static void
child_lost(const char *when)
{
	char line[256];

	stop_child(2000);
	snprintf(line, sizeof(line), "the Python child died %s (%s); it restarts at the next kmemdbg command",
		 when, reaped_status >= 0 ? exit_text(reaped_status) : "already reaped");
	say("%s", line);
}

static int
write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Read exactly n bytes from the child.  Returns 0, -1 at EOF or error, -2
 * when the child did not answer after an interrupt (or start-up timeout).
 * A Ctrl-C is forwarded to the child once; it then has INTERRUPT_GRACE_MS.
 */
static int
read_all(void *buf, size_t n, int timeout_ms)
{
	char *p = buf;
	ssize_t r;
	struct pollfd pfd;
	int forwarded = 0, waited, left = timeout_ms;

	while (n > 0) {
		if (got_sigint && !forwarded) {
			kill(child_pid, SIGINT);
			forwarded = 1;
			left = INTERRUPT_GRACE_MS;
		}
		pfd.fd = from_child;
		pfd.events = POLLIN;
		pfd.revents = 0;
		waited = poll(&pfd, 1, left >= 0 ? (left < 100 ? left : 100) : 100);
		if (waited < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (waited == 0) {
			if (left >= 0) {
				left -= 100;
				if (left <= 0)
					return -2;
			}
			continue;
		}
		r = read(from_child, p, n);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		if (r == 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int
send_frame(uint32_t kind, uint64_t a, uint64_t b, const void *payload, size_t length)
{
	struct frame f;

	f.kind = kind;
	f.length = (uint32_t)length;
	f.a = a;
	f.b = b;
	if (write_all(to_child, &f, sizeof(f)) < 0)
		return -1;
	if (length && write_all(to_child, payload, length) < 0)
		return -1;
	return 0;
}

static int
reply(uint32_t kind, uint64_t a, uint64_t b, const void *payload, size_t length)
{
	trips++;
	return send_frame(kind, a, b, payload, length);
}

static int
reply_fail(uint64_t addr, const char *why)
{
	return reply(K_FAIL, addr, 0, why, strlen(why));
}

static char *
grow(char **buf, size_t *cap, size_t want)
{
	char *p;

	if (want + 1 <= *cap)
		return *buf;
	p = realloc(*buf, want + 1);
	if (!p)
		return NULL;
	*buf = p;
	*cap = want + 1;
	return p;
}

/* One frame from the child; the payload is NUL-terminated in payload_buf. */
static int
recv_frame(struct frame *f, int timeout_ms)
{
	int rc = read_all(f, sizeof(*f), timeout_ms);

	if (rc < 0)
		return rc;
	if (f->length > MAX_FRAME_BYTES || !grow(&payload_buf, &payload_cap, f->length))
		return -1;
	if (f->length && (rc = read_all(payload_buf, f->length, timeout_ms)) < 0)
		return rc;
	payload_buf[f->length] = '\0';
	return 0;
}

static int
start_child(void)
{
	static const char bootstrap[] =
		"import os, struct, sys\n"
		"if sys.argv[1]:\n"
		"    sys.path.insert(0, sys.argv[1])\n"
		"try:\n"
		"    from kmemdbg.crash.child import serve\n"
		"except BaseException as e:\n"
		"    m = ('%s cannot import kmemdbg: %s: %s' % (sys.executable, type(e).__name__, e)).encode()\n"
		"    os.write(4, struct.pack('<IIQQ', 69, len(m), 0, 0) + m)\n"
		"    sys.exit(1)\n"
		"serve(3, 4)\n";
	int down[2], up[2], i, rc, devnull;
	struct frame f;
	pid_t parent = getpid();
	char line[512];

	if (pipe2(down, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(up, O_CLOEXEC) < 0) {
		close(down[0]);
		close(down[1]);
		return -1;
	}
	fflush(NULL);
	child_pid = fork();
	if (child_pid < 0) {
		close(down[0]); close(down[1]); close(up[0]); close(up[1]);
		return -1;
	}
	if (child_pid == 0) {
		sigset_t none;
		int in, out;

		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		for (i = 1; i < NSIG; i++)
			signal(i, SIG_DFL);     /* crash ignores some; an ignored signal survives exec */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		in = fcntl(down[0], F_DUPFD, 10);
		out = fcntl(up[1], F_DUPFD, 10);
		if (in < 0 || out < 0 || dup2(in, 3) < 0 || dup2(out, 4) < 0)
			_exit(126);
		devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
			if (!getenv("KMEMDBG_CRASH_STDERR"))
				dup2(devnull, 2);
		}
		execl(KMEMDBG_PYTHON, KMEMDBG_PYTHON, "-c", bootstrap, KMEMDBG_PYTHONPATH, (char *)NULL);
		_exit(127);
	}
	close(down[0]);
	close(up[1]);
	to_child = down[1];
	from_child = up[0];
	rc = recv_frame(&f, START_TIMEOUT_MS);
	if (rc == 0 && f.kind == K_HELLO)
		return 0;
	if (rc == 0 && f.kind == K_ERROR) {
		snprintf(line, sizeof(line), "%s", payload_buf);
		stop_child(1000);
		say("%s", line);
		return -2;
	}
	if (rc == -2) {
		stop_child(0);
		say("%s", "the Python child (" KMEMDBG_PYTHON ") did not start within 60 s");
		return -2;
	}
	stop_child(1000);
	say("%s", "the Python child (" KMEMDBG_PYTHON ") exited before it started; "
	    "run python3 -m kmemdbg.crash --build again with the Python that has kmemdbg");
	return -2;
}

/* ---- requests -------------------------------------------------------------- */

static int
serve_read(uint64_t addr, uint64_t size, int memtype)
{
	char why[160];
	uint64_t off, step;

	if (size > MAX_READ_BYTES) {
		snprintf(why, sizeof(why), "a read of %llu bytes is more than the shim serves at once",
			 (unsigned long long)size);
		return reply_fail(addr, why);
	}
	if (!grow(&data_buf, &data_cap, size))
		return reply_fail(addr, "out of memory in the crash extension");
	if (size == 0 || readmem(addr, memtype, data_buf, (long)size, "kmemdbg read",
				 RETURN_ON_ERROR | QUIET))
		return reply(K_DATA, 0, 0, data_buf, size);
	/* which page failed: so the error names the first unreadable address */
	for (off = 0; off < size; off += step) {
		step = 4096 - ((addr + off) & 4095);
		if (step > size - off)
			step = size - off;
		if (!readmem(addr + off, memtype, data_buf, (long)step, "kmemdbg read",
			     RETURN_ON_ERROR | QUIET))
			break;
	}
	snprintf(why, sizeof(why), "crash cannot read %s address 0x%llx",
		 memtype == PHYSADDR ? "physical" : "virtual", (unsigned long long)(addr + off));
	return reply_fail(addr + (off < size ? off : 0), why);
}

static int
serve_vmcoreinfo(const char *key)
{
	char *value;
	int rc;

	if (!pc->read_vmcoreinfo)
		return reply_fail(0, "crash has no VMCOREINFO reader for this source");
	value = pc->read_vmcoreinfo(key);
	if (!value)
		return reply_fail(0, "no such VMCOREINFO key");
	rc = reply(K_DATA, 0, 0, value, strlen(value));
	free(value);
	return rc;
}

static int
serve_symbol(char *name)
{
	if (!symbol_exists(name))
		return reply_fail(0, "crash knows no such symbol");
	return reply(K_DATA, symbol_value(name), 0, NULL, 0);
}

static const char *
source_kind(void)
{
	if (ACTIVE())
		return "live";
	if (DISKDUMP_DUMPFILE())
		return "kdump-compressed";
	if (KDUMP_DUMPFILE() || NETDUMP_DUMPFILE())
		return "elf";
	if (SADUMP_DUMPFILE())
		return "sadump";
	if (KVMDUMP_DUMPFILE())
		return "kvmdump";
	if (XENDUMP_DUMPFILE())
		return "xendump";
	if (VMSS_DUMPFILE())
		return "vmss";
	if (LKCD_DUMPFILE())
		return "lkcd";
	return "other";
}

static int
serve_source(void)
{
	char text[2048];

	snprintf(text, sizeof(text), "kind=%s\npath=%s\nlive=%d\nmemsrc=%s\nmachine=%s\ncrash=%s\nnamelist=%s\n",
		 source_kind(), pc->dumpfile ? pc->dumpfile : "", LIVE() ? 1 : 0,
		 pc->live_memsrc ? pc->live_memsrc : "", pc->machine_type ? pc->machine_type : "",
		 pc->program_version ? pc->program_version : "", pc->namelist ? pc->namelist : "");
	return reply(K_DATA, 0, 0, text, strlen(text));
}

/*
 * crash's own answer for a kernel address, twice: kvtop(..., 0) is what
 * crash's readmem() and the PHYSICAL column of its vtop use; kvtop(..., 1)
 * walks and prints the walk, which is captured.  Payload: pa0, pa1 (u64),
 * then the walk text; a = bit 0: first call succeeded, bit 1: second.
 */
static int
serve_kvtop(uint64_t va)
{
	physaddr_t pa0 = 0, pa1 = 0;
	int ok0, ok1;
	char *text = NULL;
	size_t textlen = 0, n;
	int rc;

	ok0 = kvtop(CURRENT_CONTEXT(), (ulong)va, &pa0, 0);
	capture_saved_fp = fp;
	capture_fp = open_memstream(&text, &textlen);
	if (capture_fp) {
		fp = capture_fp;
		ok1 = kvtop(CURRENT_CONTEXT(), (ulong)va, &pa1, 1);
		fflush(capture_fp);
		fp = capture_saved_fp;
		fclose(capture_fp);
		capture_fp = NULL;
	} else {
		ok1 = 0;
	}
	n = 16 + (text ? textlen : 0);
	if (!grow(&data_buf, &data_cap, n)) {
		free(text);
		return reply_fail(va, "out of memory in the crash extension");
	}
	memcpy(data_buf, &pa0, 8);
	memcpy(data_buf + 8, &pa1, 8);
	if (text)
		memcpy(data_buf + 16, text, textlen);
	free(text);
	rc = reply(K_DATA, (ok0 ? 1 : 0) | (ok1 ? 2 : 0), 0, data_buf, n);
	return rc;
}

/* ---- the command ------------------------------------------------------------ */

static void
finish_command(void)
{
	end_capture();
	restore_handlers();
	busy = 0;
	if (pc->cmd_cleanup == kmemdbg_cleanup) {
		pc->cmd_cleanup = NULL;
		pc->cmd_cleanup_arg = NULL;
	}
}

/* crash calls this when a command ends by longjmp (error(FATAL), RESTART). */
static void
kmemdbg_cleanup(void *arg)
{
	(void)arg;
	if (!busy)
		return;
	end_capture();
	restore_handlers();
	busy = 0;
	stop_child(0);
	say("%s", "the command was aborted inside crash; the Python child was stopped "
	    "(it restarts at the next kmemdbg command)");
}

static void
cmd_kmemdbg(void)
{
	struct frame f;
	size_t total = 0, at;
	char *argv_buf;
	int i, rc, status = -1;
	FILE *efp;

	if (busy)       /* a previous command was aborted without cleanup */
		kmemdbg_cleanup(NULL);
	for (i = 1; i < argcnt; i++)
		total += strlen(args[i]) + 1;
	argv_buf = GETBUF(total + 1);
	for (i = 1, at = 0; i < argcnt; i++) {
		strcpy(argv_buf + at, args[i]);
		at += strlen(args[i]) + 1;
	}

	busy = 1;
	pc->cmd_cleanup = kmemdbg_cleanup;
	pc->cmd_cleanup_arg = NULL;
	install_handlers();
	trips = 0;

	if (child_pid > 0 && waitpid(child_pid, NULL, WNOHANG) == child_pid) {
		child_pid = -1;         /* died between commands */
		close(to_child);
		close(from_child);
		to_child = from_child = -1;
	}
	if (child_pid <= 0) {
		rc = start_child();
		if (rc == -1)
			say("cannot start the Python child: %s", strerror(errno));
		if (rc < 0) {
			finish_command();
			FREEBUF(argv_buf);
			return;
		}
	}
	if (send_frame(K_RUN, (uint64_t)(argcnt - 1), 0, argv_buf, total) < 0) {
		FREEBUF(argv_buf);
		child_lost("before the command");
		finish_command();
		return;
	}
	FREEBUF(argv_buf);

	for (;;) {
		rc = recv_frame(&f, -1);
		if (rc == -2) {
			stop_child(0);
			say("%s", "interrupted; the Python child did not stop and was killed "
			    "(it restarts at the next kmemdbg command)");
			break;
		}
		if (rc < 0) {
			child_lost("during the command");
			break;
		}
		switch (f.kind) {
		case K_PREAD:
			rc = serve_read(f.a, f.b, PHYSADDR);
			break;
		case K_VREAD:
			rc = serve_read(f.a, f.b, KVADDR);
			break;
		case K_VMCI:
			rc = serve_vmcoreinfo(payload_buf);
			break;
		case K_SYMBOL:
			rc = serve_symbol(payload_buf);
			break;
		case K_SOURCE:
			rc = serve_source();
			break;
		case K_KVTOP:
			rc = serve_kvtop(f.a);
			break;
		case K_TESTFATAL:
			if (getenv("KMEMDBG_CRASH_TEST"))
				error(FATAL, "kmemdbg test: a FATAL error while a request is open\n");
			rc = reply_fail(0, "test hooks need KMEMDBG_CRASH_TEST");
			break;
		case K_OUT:
			fwrite(payload_buf, 1, f.length, fp);
			fflush(fp);
			rc = 0;
			break;
		case K_ERR:
			efp = errstream();
			fwrite(payload_buf, 1, f.length, efp);
			fflush(efp);
			rc = 0;
			break;
		case K_DONE:
			status = (int)f.a;
			rc = 0;
			break;
		default:
			rc = reply_fail(0, "unknown request");
			break;
		}
		if (status >= 0)
			break;
		if (rc < 0) {
			child_lost("during the command");
			break;
		}
	}
	if (getenv("KMEMDBG_CRASH_TRIPS"))
		fprintf(errstream(), "kmemdbg: %llu requests served\n", trips);
	finish_command();
}

void __attribute__((constructor))
kmemdbg_init(void)
{
	register_extension(command_table);
}

/* extend -u, or crash exiting: the child must not outlive the extension. */
void __attribute__((destructor))
kmemdbg_fini(void)
{
	end_capture();
	restore_handlers();
	busy = 0;
	stop_child(1000);
	free(payload_buf);
	free(data_buf);
	payload_buf = data_buf = NULL;
	payload_cap = data_cap = 0;
}
