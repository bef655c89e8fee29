/*
 * live_publisher.c — live attach from C: a manager made by bs_create while
 * BUFFERSCOPE_LISTEN is set publishes its front and events on a local socket,
 * speaking app/live.py's protocol (version 1; its docstring is the spec), so
 * `bufferscope attach` and File ▸ Attach show a pure C program live.
 *
 * #included at the end of bufferscope.c (one translation unit, as
 * trace_writer.c), so it reads the manager's front under mu without a new API.
 * The Python package calls bs_listen_env_enable(0): its own app.live.Publisher
 * publishes the managers it opens, and a Python program never gets two.
 *
 * Where: as app/live.py. The first manager gets the address as given, later ones
 * ADDR.1, ADDR.2, ... (or the next ports; port 0 asks the system). A path is a
 * Unix socket, mode 0600 from its creation: bound in a private 0700 directory,
 * chmod-ed, then hard-linked into place (link never replaces what appeared at the
 * path meanwhile). An existing socket file is replaced only when a connect to it
 * is refused (stale: its program died); a live socket or any other file is left
 * alone. A port (all digits) is TCP on 127.0.0.1 only. Any failure is one line
 * on stderr and the manager runs unpublished: bs_create never fails for it.
 *
 * DESIGN
 * One thread per publisher, "bs-publish". With no viewer it sleeps in poll() on
 * the listening socket and a wake pipe (nothing is read from the manager). With
 * a viewer it ticks at most LP_MAX_HZ times a second and spends at most LP_DUTY
 * of one core (the thread's CPU time t since the last tick makes the next wait
 * at least t / LP_DUTY). A tick reads the stats and the events since the last
 * tick (bs_events_read_detail, at most LP_MAX_EVENTS; the rest are skipped and
 * counted) and, when the epoch moved and the viewer has taken the previous front,
 * copies the front: in chunks of LP_FRONT_CHUNK elements, each under mu with the
 * epoch checked, so no swap can happen under a chunk and a copy that saw the
 * epoch move is dropped (retried at the next tick: never a torn front). The
 * producers and the worker wait for mu at most one chunk's memcpy.
 *
 * Sends never block: frames go to an outgoing buffer that poll() drains as the
 * viewer reads (MSG_DONTWAIT | MSG_NOSIGNAL). A viewer with more than
 * LP_MAX_BACKLOG bytes still queued at a tick, or that has read nothing for
 * LP_STALL_NS while data waits, is dropped. What a viewer sends is read into a
 * bounded buffer: a frame over LP_MAX_CLIENT_FRAME bytes, a header that is not a
 * JSON object of the control shape (live_proto.c's strict reader), or another
 * message type drops that viewer with an `error` frame; nothing else changes.
 * Its input is read at most LP_READS_PER_TICK times (64 KiB each) between two
 * ticks, and a refused control request takes no lock, so a flood of requests
 * costs the program nothing but that bounded parsing.
 * Control (pause, resume, step, synchronize) is honoured only with
 * BUFFERSCOPE_LISTEN_CONTROL=1 and this run's token (32 bytes from getrandom,
 * hex; compared in constant time), written to PATH.token (0600, created
 * exclusively) or printed once on stderr for a port; otherwise it is refused
 * with a `reply`, as in Python. A synchronize waits at most 0.5 s.
 *
 * bs_close (and so bs_destroy) stops the publisher before it closes the
 * manager: the thread flushes what is queued, sends the last epoch and `bye`
 * (at most LP_BYE_NS in all), closes the sockets and removes its socket and
 * token files (only if they are still its own). A program that exits without
 * bs_destroy leaves its socket file behind; a viewer then sees the connection
 * end, and the next run replaces the stale file.
 */
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "live_proto.c"   /* lpb_* buffers, lpj_* the viewer's JSON */

#define LP_PROTOCOL 1
#define LP_MAX_HZ 30.0
#define LP_DUTY 0.015
#define LP_MAX_EVENTS 256
#define LP_MAX_EVENT_PAYLOAD ((size_t)8 << 20)
#define LP_MAX_CLIENT_FRAME (64 * 1024)
#ifndef LP_MAX_BACKLOG           /* -D overrides: tests drop a lazy viewer sooner */
#define LP_MAX_BACKLOG ((size_t)32 << 20)
#endif
#ifndef LP_STALL_NS
#define LP_STALL_NS 10000000000LL
#endif
#define LP_SYNC_TIMEOUT_S 0.5
#define LP_BYE_NS 1000000000LL
#define LP_FRONT_CHUNK (1 << 18)
#define LP_IN_CAP (2 * (LP_MAX_CLIENT_FRAME + 8))
#define LP_READS_PER_TICK 2      /* reads of a viewer's input between two ticks */

static const char *const lp_kinds[] = {"enqueue", "apply", "sync-begin", "swap", "visible",
                                       "catch-up", "break"};
static const char *const lp_ops[] = {"set", "fill", "add", "scale", "write"};

struct lp {
    bs_manager *m;
    pthread_t thread;
    int lfd, wake_r, wake_w;
    char *path, *token_path;      /* NULL for a port / without control */
    dev_t dev;
    ino_t ino;                    /* the socket file we made (removed only if still ours) */
    int control;
    char token[65];
    int stopping;                 /* atomic: bs_close asked the thread to end */
    /* the viewer (one at a time) */
    int vfd;
    unsigned char in[LP_IN_CAP];
    size_t in_len;
    int reads;                    /* reads of its input since the last tick */
    lp_buf out;
    int64_t last_progress;
    int sent_any;
    uint64_t sent_epoch, cursor, last_epoch;
    int has_cursor;
    int failed;
    /* scratch */
    float *front;
    lp_buf hdr, pay;
    int64_t *tmp_i;
    float *tmp_v;
    size_t tmp_cap;
    bs_event ev[LP_MAX_EVENTS];
    bs_event_detail det[LP_MAX_EVENTS];
    double cpu_s;
};

/* ---------------------------------------------------------------- listening */

static int lp_env_enabled = 1;
static unsigned long lp_managers;

int bs_listen_env_enable(int enabled)
{
    return __atomic_exchange_n(&lp_env_enabled, enabled ? 1 : 0, __ATOMIC_SEQ_CST);
}

static int lp_is_port(const char *a)
{
    if (!*a) return 0;
    for (const char *c = a; *c; c++)
        if (*c < '0' || *c > '9') return 0;
    return 1;
}

static int lp_errf(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int lp_errf(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return -1;
}

/* sa for path (the caller checked that it fits). */
static void lp_sun(struct sockaddr_un *sa, const char *path)
{
    size_t n = strlen(path);
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, path, n < sizeof sa->sun_path ? n : sizeof sa->sun_path - 1);
}

/* Whether something listens on the Unix socket at path: 1, 0 (refused), -1 (error). */
static int lp_probe_unix(const char *path)
{
    struct sockaddr_un sa;
    lp_sun(&sa, path);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    int rc = connect(s, (struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    close(s);
    if (rc == 0 || e == EAGAIN || e == EINPROGRESS) return 1;   /* EAGAIN: its backlog is full */
    if (e == ECONNREFUSED) return 0;
    errno = e;
    return -1;
}

static int lp_bind_unix(struct lp *p, const char *path, char *err, size_t errn)
{
    struct sockaddr_un sa = {0};
    if (strlen(path) >= sizeof sa.sun_path)
        return lp_errf(err, errn, "%s: cannot listen: path too long for a Unix socket", path);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return lp_errf(err, errn, "%s exists and is not a socket; it is left alone", path);
        int live = lp_probe_unix(path);
        if (live > 0) return lp_errf(err, errn, "%s: another program is listening on it", path);
        if (live < 0)
            return lp_errf(err, errn, "%s: cannot test the existing socket: %s", path, strerror(errno));
        if (unlink(path) && errno != ENOENT)   /* stale: nothing answers on it */
            return lp_errf(err, errn, "%s: cannot remove the stale socket: %s", path, strerror(errno));
    } else if (errno != ENOENT) {
        return lp_errf(err, errn, "%s: %s", path, strerror(errno));
    }
    /* A private 0700 directory next to the path (mkdtemp), the socket bound and
     * chmod-ed there, then hard-linked into place. */
    char dir[4096 + 16], tmp[sizeof dir + 4];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, "./.bs-XXXXXX");
    else if (slash == path) snprintf(dir, sizeof dir, "/.bs-XXXXXX");
    else snprintf(dir, sizeof dir, "%.*s/.bs-XXXXXX", (int)(slash - path), path);
    if (!mkdtemp(dir))
        return lp_errf(err, errn, "%s: cannot create the socket there: %s", path, strerror(errno));
    snprintf(tmp, sizeof tmp, "%s/s", dir);
    int rc = -1;
    int s = -1;
    if (strlen(tmp) >= sizeof sa.sun_path) {
        lp_errf(err, errn, "%s: cannot listen: path too long for a Unix socket", path);
    } else if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
        lp_errf(err, errn, "%s: cannot listen: %s", path, strerror(errno));
    } else {
        lp_sun(&sa, tmp);
        if (bind(s, (struct sockaddr *)&sa, sizeof sa) || chmod(tmp, 0600) ||
            link(tmp, path) || listen(s, 4) || lstat(path, &st))
            lp_errf(err, errn, "%s: cannot listen: %s", path, strerror(errno));
        else
            rc = 0;
    }
    unlink(tmp);
    rmdir(dir);
    if (rc) {
        if (s >= 0) close(s);
        return -1;
    }
    p->lfd = s;
    p->dev = st.st_dev;
    p->ino = st.st_ino;
    p->path = strdup(path);
    return p->path ? 0 : lp_errf(err, errn, "out of memory");
}

static int lp_bind_tcp(struct lp *p, const char *digits, int *port_out, char *err, size_t errn)
{
    unsigned long port = strlen(digits) > 6 ? 99999999UL : strtoul(digits, NULL, 10);
    if (port > 65535) return lp_errf(err, errn, "port %s is out of range (0 to 65535)", digits);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof sa) || listen(s, 4) ||
        getsockname(s, (struct sockaddr *)&sa, &len)) {
        int e = errno;
        if (s >= 0) close(s);
        return lp_errf(err, errn, "127.0.0.1:%lu: cannot listen: %s", port, strerror(e));
    }
    p->lfd = s;
    *port_out = ntohs(sa.sin_port);
    return 0;
}

static int lp_random_token(char out[65])
{
    unsigned char r[32];
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t n = getrandom(r + got, sizeof r - got, 0);
        if (n > 0) got += (size_t)n;
        else if (n < 0 && errno != EINTR) break;
    }
    if (got < sizeof r) {
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        got = 0;
        while (fd >= 0 && got < sizeof r) {
            ssize_t n = read(fd, r + got, sizeof r - got);
            if (n > 0) got += (size_t)n;
            else if (!(n < 0 && errno == EINTR)) break;
        }
        if (fd >= 0) close(fd);
        if (got < sizeof r) return -1;
    }
    for (size_t i = 0; i < sizeof r; i++) snprintf(out + 2 * i, 3, "%02x", r[i]);
    return 0;
}

/* The token in a new 0600 file (app.live.write_token). */
static int lp_write_token(const char *path, const char *token, char *err, size_t errn)
{
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISREG(st.st_mode))
            return lp_errf(err, errn, "%s exists and is not a regular file; no token written", path);
        unlink(path);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return lp_errf(err, errn, "%s: %s", path, strerror(errno));
    char line[66];
    int n = snprintf(line, sizeof line, "%s\n", token);
    int bad = write(fd, line, (size_t)n) != n;
    close(fd);
    return bad ? lp_errf(err, errn, "%s: cannot write the token", path) : 0;
}

static void lp_free(struct lp *p)
{
    if (p->lfd >= 0) close(p->lfd);
    if (p->wake_r >= 0) close(p->wake_r);
    if (p->wake_w >= 0) close(p->wake_w);
    free(p->path);
    free(p->token_path);
    free(p->front);
    free(p->tmp_i);
    free(p->tmp_v);
    lpb_free(&p->out);
    lpb_free(&p->hdr);
    lpb_free(&p->pay);
    free(p);
}

static void *lp_main(void *arg);

static struct lp *lp_open(bs_manager *m, const char *addr, int control, char *err, size_t errn)
{
    struct lp *p = calloc(1, sizeof *p);
    if (!p) {
        lp_errf(err, errn, "out of memory");
        return NULL;
    }
    p->m = m;
    p->lfd = p->vfd = p->wake_r = p->wake_w = -1;
    char where[4200];
    int port = 0;
    if (lp_is_port(addr) ? lp_bind_tcp(p, addr, &port, err, errn) : lp_bind_unix(p, addr, err, errn)) {
        lp_free(p);
        return NULL;
    }
    if (p->path) snprintf(where, sizeof where, "%s", p->path);
    else snprintf(where, sizeof where, "127.0.0.1:%d", port);
    int pipefd[2];
    if (pipe2(pipefd, O_NONBLOCK | O_CLOEXEC)) {
        lp_errf(err, errn, "cannot make a pipe: %s", strerror(errno));
        goto failed;
    }
    p->wake_r = pipefd[0];
    p->wake_w = pipefd[1];
    int fl = fcntl(p->lfd, F_GETFL);
    fcntl(p->lfd, F_SETFL, fl | O_NONBLOCK);
    p->control = control;
    if (lp_random_token(p->token)) {
        if (control) fprintf(stderr, "bufferscope: control disabled: no random source for a token\n");
        p->control = 0;
        memset(p->token, 0, sizeof p->token);
    }
    if (p->control && p->path) {
        char why[512];
        size_t n = strlen(p->path) + 7;
        p->token_path = malloc(n);
        if (!p->token_path) {
            lp_errf(err, errn, "out of memory");
            goto failed;
        }
        snprintf(p->token_path, n, "%s.token", p->path);
        if (lp_write_token(p->token_path, p->token, why, sizeof why)) {
            fprintf(stderr, "bufferscope: control disabled: %s\n", why);
            free(p->token_path);
            p->token_path = NULL;
            p->control = 0;
        }
    }
    lp_buf msg = {0};
    lpb_puts(&msg, "bufferscope: publishing the c manager (");
    for (int d = 0; d < m->ndim; d++) lpb_printf(&msg, d ? ", %lld" : "%lld", (long long)m->shape[d]);
    lpb_puts(&msg, m->ndim == 1 ? ",) on " : ") on ");
    lpb_puts(&msg, where);
    if (p->control) {
        lpb_puts(&msg, p->token_path ? "; control token in " : "; control token ");
        lpb_puts(&msg, p->token_path ? p->token_path : p->token);
    }
    lpb_put(&msg, "\n", 1);
    if (!msg.oom) {
        fwrite(msg.p, 1, msg.len, stderr);
        fflush(stderr);
    }
    lpb_free(&msg);
    /* The thread blocks every signal: the program's handlers run on its own threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&p->thread, NULL, lp_main, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        lp_errf(err, errn, "cannot start its thread: %s", strerror(rc));
        goto failed;
    }
    return p;
failed:
    if (p->token_path) unlink(p->token_path);
    if (p->path) unlink(p->path);
    lp_free(p);
    return NULL;
}

/* bs_create: publish m when BUFFERSCOPE_LISTEN is set (and the host did not claim it). */
static void lp_from_env(bs_manager *m)
{
    if (!__atomic_load_n(&lp_env_enabled, __ATOMIC_SEQ_CST)) return;
    const char *base = getenv("BUFFERSCOPE_LISTEN");
    if (!base || !*base) return;
    unsigned long k = __atomic_fetch_add(&lp_managers, 1, __ATOMIC_RELAXED);
    char addr[4200];
    if (k == 0) snprintf(addr, sizeof addr, "%s", base);
    else if (lp_is_port(base)) {
        unsigned long port = strlen(base) > 6 ? 99999999UL : strtoul(base, NULL, 10);
        snprintf(addr, sizeof addr, "%lu", port == 0 ? 0 : port + k);
    } else snprintf(addr, sizeof addr, "%s.%lu", base, k);
    const char *c = getenv("BUFFERSCOPE_LISTEN_CONTROL");
    char err[600];
    struct lp *p = lp_open(m, addr, c && !strcmp(c, "1"), err, sizeof err);
    if (!p) fprintf(stderr, "bufferscope: not publishing the c manager: %s\n", err);
    m->pub = p;
}

/* bs_close: the viewer gets the last epoch and bye; the thread ends, the files go. */
static void lp_stop(bs_manager *m)
{
    struct lp *p = __atomic_exchange_n(&m->pub, NULL, __ATOMIC_SEQ_CST);
    if (!p) return;
    __atomic_store_n(&p->stopping, 1, __ATOMIC_SEQ_CST);
    ssize_t w = write(p->wake_w, "x", 1);
    (void)w;
    pthread_join(p->thread, NULL);
    lp_free(p);
}

#include "live_session.c"   /* the thread: viewer, control (and live_update.c: the ticks) */
