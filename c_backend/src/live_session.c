/*
 * live_session.c — the "bs-publish" thread of live_publisher.c: one viewer at a
 * time, its frames in and out, the ticks that send the stats, events and front,
 * control requests, and the goodbye. #included by live_publisher.c; see its
 * DESIGN for the rules (nothing here blocks: every socket is non-blocking, the
 * manager's lock is held for one bounded copy at a time).
 */

static int64_t lp_now(void) { return now_ns(); }

static double lp_thread_cpu(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)) return 0.0;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------- frames out */

/* Queues one frame: the header in p->hdr, then `np` payload pieces. */
static void lp_queue(struct lp *p, const void *const *parts, const size_t *sizes, int np)
{
    size_t n = 0;
    for (int k = 0; k < np; k++) n += sizes[k];
    if (p->hdr.oom || p->hdr.len > UINT32_MAX - 4 - n) return;
    lpb_u32be(&p->out, (uint32_t)(4 + p->hdr.len + n));
    lpb_u32be(&p->out, (uint32_t)p->hdr.len);
    lpb_put(&p->out, p->hdr.p, p->hdr.len);
    for (int k = 0; k < np; k++) lpb_put(&p->out, parts[k], sizes[k]);
}

static void lp_queue_header(struct lp *p) { lp_queue(p, NULL, NULL, 0); }

static void lp_close_viewer(struct lp *p)
{
    if (p->vfd >= 0) close(p->vfd);
    p->vfd = -1;
    p->in_len = 0;
    lpb_clear(&p->out);
    if (p->out.cap > ((size_t)4 << 20)) lpb_free(&p->out);   /* do not keep a big front's worth */
}

/* Sends what the socket takes now. 0, or -1 when the viewer is gone. */
static int lp_send_some(struct lp *p)
{
    while (lpb_pending(&p->out)) {
        ssize_t n = send(p->vfd, p->out.p + p->out.off, lpb_pending(&p->out),
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
        p->out.off += (size_t)n;
        p->last_progress = lp_now();
    }
    lpb_clear(&p->out);
    return 0;
}

/* Drops the viewer; `tell` (may be NULL) goes to it in an error frame, best effort. */
static void lp_drop(struct lp *p, const char *tell)
{
    if (p->vfd < 0) return;
    if (tell) {
        lpb_clear(&p->hdr);
        lpb_puts(&p->hdr, "{\"type\":\"error\",\"message\":");
        lpb_json_cstr(&p->hdr, tell);
        lpb_puts(&p->hdr, "}");
        lp_queue_header(p);
        lp_send_some(p);
    }
    lp_close_viewer(p);
}

static void lp_flush(struct lp *p)
{
    if (lp_send_some(p)) {
        lp_drop(p, NULL);
        return;
    }
    if (lpb_pending(&p->out) && lp_now() - p->last_progress > LP_STALL_NS)
        lp_drop(p, "dropped: the viewer did not read");
}

/* ---------------------------------------------------------------- a tick */

#include "live_update.c"   /* lp_publish: the stats, events and front of one update */

/* ---------------------------------------------------------------- viewers */

static void lp_hello(struct lp *p)
{
    bs_manager *m = p->m;
    lpb_clear(&p->hdr);
    lpb_printf(&p->hdr, "{\"type\":\"hello\",\"protocol\":%d,\"pid\":%ld,\"program\":", LP_PROTOCOL,
               (long)getpid());
    char prog[257];
    snprintf(prog, sizeof prog, "%s", program_invocation_short_name);
    if (!lpj_utf8_ok((const unsigned char *)prog, strlen(prog)))
        for (char *c = prog; *c; c++)
            if ((unsigned char)*c >= 0x80) *c = '?';
    lpb_json_str(&p->hdr, prog, lp_utf8_prefix(prog, strlen(prog), 256));
    lpb_puts(&p->hdr, ",\"backend\":\"c\",\"shape\":[");
    for (int d = 0; d < m->ndim; d++) lpb_printf(&p->hdr, d ? ",%lld" : "%lld", (long long)m->shape[d]);
    lpb_puts(&p->hdr, "],\"dtype\":\"float32\",\"fill\":");
    lpb_num(&p->hdr, m->fill);
    lpb_printf(&p->hdr, ",\"control\":%s,\"max_hz\":", p->control ? "true" : "false");
    lpb_num(&p->hdr, LP_MAX_HZ);
    lpb_printf(&p->hdr, ",\"max_client_frame\":%d}", LP_MAX_CLIENT_FRAME);
    lp_queue_header(p);
}

static int lp_hung_up(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void lp_accept(struct lp *p)
{
    int fd = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (p->vfd >= 0 && lp_hung_up(p->vfd)) lp_drop(p, NULL);
    if (p->vfd >= 0) {
        static const char busy[] = "{\"type\":\"busy\",\"message\":\"another viewer is attached "
                                   "to this program; detach it first\"}";
        unsigned char frame[8 + sizeof busy];
        uint32_t hl = (uint32_t)(sizeof busy - 1), len = 4 + hl;
        for (int k = 0; k < 4; k++) {
            frame[k] = (unsigned char)(len >> (24 - 8 * k));
            frame[4 + k] = (unsigned char)(hl >> (24 - 8 * k));
        }
        memcpy(frame + 8, busy, hl);
        ssize_t w = send(fd, frame, 8 + hl, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)w;
        close(fd);
        return;
    }
    p->vfd = fd;
    p->in_len = 0;
    p->reads = 0;
    lpb_clear(&p->out);
    p->last_progress = lp_now();
    p->sent_any = 0;
    p->has_cursor = 0;
    lp_hello(p);
    lp_flush(p);
}

/* Constant-time comparison of a presented token with ours. */
static int lp_token_ok(const struct lp *p, const lpj_field *t)
{
    size_t n = strlen(p->token);
    unsigned diff = t->kind != LPJ_STR || t->truncated || t->slen != n || n == 0;
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)p->token[i] ^ (unsigned char)(i < t->slen ? t->s[i] : 0);
    return diff == 0;
}

/* One control request; -1 (with *why) when it is malformed (app.live.parse_control). */
static int lp_control(struct lp *p, const lpj_msg *msg, char *why, size_t whyn)
{
    const lpj_field *id = &msg->id, *ac = &msg->action, *tok = &msg->token, *n = &msg->n;
    if (id->kind != LPJ_ABSENT && (id->kind != LPJ_INT || id->i < 0))
        return lp_errf(why, whyn, "control id must be an integer >= 0");
    static const char *const actions[] = {"pause", "resume", "step", "synchronize"};
    int a = -1;
    for (int k = 0; k < 4 && ac->kind == LPJ_STR && !ac->truncated; k++)
        if (!strcmp(ac->s, actions[k]) && strlen(actions[k]) == ac->slen) a = k;
    if (a < 0) {
        if (ac->kind == LPJ_STR) {
            size_t b = lp_utf8_prefix(ac->s, ac->slen, 40);
            return lp_errf(why, whyn, "unknown control action '%.*s'", (int)b, ac->s);
        }
        return lp_errf(why, whyn, "unknown control action %s", ac->kind == LPJ_ABSENT ? "'None'" : "(not a string)");
    }
    if (tok->kind != LPJ_ABSENT && (tok->kind != LPJ_STR || tok->cps > 256))
        return lp_errf(why, whyn, "control token must be a short string");
    if (n->kind != LPJ_ABSENT && (n->kind != LPJ_INT || n->i < 0 || n->i >= ((int64_t)1 << 32)))
        return lp_errf(why, whyn, "step count must be an integer in [0, 2**32)");
    bs_manager *m = p->m;
    int ok = 0;
    char message[400];
    if (!p->control) {
        snprintf(message, sizeof message, "refused: the program is read-only (it did not set "
                 "BUFFERSCOPE_LISTEN_CONTROL=1)");
    } else if (!lp_token_ok(p, tok)) {
        snprintf(message, sizeof message, "refused: wrong or missing token");
    } else {
        int rc = a == 0 ? bs_set_paused(m, 1) : a == 1 ? bs_set_paused(m, 0)
               : a == 2 ? bs_step(m, n->kind == LPJ_INT ? (uint64_t)n->i : 1)
               : bs_synchronize(m, LP_SYNC_TIMEOUT_S, NULL);
        ok = rc == BS_OK;
        if (ok) snprintf(message, sizeof message, "%s done", actions[a]);
        else snprintf(message, sizeof message, "%s failed: %s: %s", actions[a], bs_strerror(rc), bs_last_error());
    }
    /* The epoch: read under mu only for an honoured request; a refused one (anyone
     * can send those, as fast as they like) gets the last epoch published. */
    bs_stats st = {0};
    st.epoch = p->last_epoch;
    int have = !ok || bs_stats_get(m, &st) == BS_OK;
    lpb_clear(&p->hdr);
    lpb_printf(&p->hdr, "{\"type\":\"reply\",\"id\":%lld,\"ok\":%s,\"action\":\"%s\",\"message\":",
               (long long)(id->kind == LPJ_INT ? id->i : 0), ok ? "true" : "false", actions[a]);
    lpb_json_cstr(&p->hdr, message);
    if (have) lpb_printf(&p->hdr, ",\"epoch\":%llu", (unsigned long long)st.epoch);
    lpb_puts(&p->hdr, "}");
    lp_queue_header(p);
    return 0;
}

static uint32_t lp_be32(const unsigned char *s)
{
    return (uint32_t)s[0] << 24 | (uint32_t)s[1] << 16 | (uint32_t)s[2] << 8 | s[3];
}

/* Reads what the viewer sent; a protocol error drops it with an error frame. */
static void lp_read_viewer(struct lp *p)
{
    p->reads++;
    ssize_t got = recv(p->vfd, p->in + p->in_len, sizeof p->in - p->in_len, MSG_DONTWAIT);
    if (got < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) lp_drop(p, NULL);
        return;
    }
    if (got == 0) {   /* it detached */
        lp_drop(p, NULL);
        return;
    }
    p->in_len += (size_t)got;
    char why[256];
    size_t at = 0;
    while (p->in_len - at >= 8) {
        uint32_t length = lp_be32(p->in + at), hlen = lp_be32(p->in + at + 4);
        if (length > LP_MAX_CLIENT_FRAME) {
            snprintf(why, sizeof why, "dropped: frame of %u bytes (at most %d)", length, LP_MAX_CLIENT_FRAME);
            lp_drop(p, why);
            return;
        }
        if (length < 4 || hlen > length - 4) {
            snprintf(why, sizeof why, "dropped: bad frame lengths %u/%u", length, hlen);
            lp_drop(p, why);
            return;
        }
        if (p->in_len - at < 4 + (size_t)length) break;
        lpj_msg msg;
        const char *err = NULL;
        if (lpj_parse_msg(p->in + at + 8, hlen, &msg, &err)) {
            snprintf(why, sizeof why, "dropped: %s", err);
            lp_drop(p, why);
            return;
        }
        if (msg.type.slen != 7 || memcmp(msg.type.s, "control", 7) || msg.type.truncated) {
            size_t b = lp_utf8_prefix(msg.type.s, msg.type.slen, 40);
            snprintf(why, sizeof why, "dropped: unexpected message type '%.*s'", (int)b, msg.type.s);
            lp_drop(p, why);
            return;
        }
        char cwhy[200];
        if (lp_control(p, &msg, cwhy, sizeof cwhy)) {
            snprintf(why, sizeof why, "dropped: %s", cwhy);
            lp_drop(p, why);
            return;
        }
        at += 4 + (size_t)length;
    }
    memmove(p->in, p->in + at, p->in_len - at);
    p->in_len -= at;
    lp_flush(p);
}

/* ---------------------------------------------------------------- the thread */

static void lp_goodbye(struct lp *p)
{
    int64_t deadline = lp_now() + LP_BYE_NS;
    for (int round = 0; round < 3 && p->vfd >= 0; round++) {
        if (round == 1) lp_publish(p);   /* the last epoch, once what was queued is out */
        if (round == 2) {
            lpb_clear(&p->hdr);
            lpb_printf(&p->hdr, "{\"type\":\"bye\",\"epoch\":%llu,\"reason\":\"the manager closed\"}",
                       (unsigned long long)p->last_epoch);
            lp_queue_header(p);
        }
        while (p->vfd >= 0 && lpb_pending(&p->out)) {
            int64_t left = deadline - lp_now();
            if (left <= 0 || lp_send_some(p)) {
                lp_close_viewer(p);
                break;
            }
            if (!lpb_pending(&p->out)) break;
            struct pollfd fd = {p->vfd, POLLOUT, 0};
            poll(&fd, 1, (int)(left / 1000000) + 1);
        }
    }
    lp_close_viewer(p);
}

static void *lp_main(void *arg)
{
    struct lp *p = arg;
    pthread_setname_np(pthread_self(), "bs-publish");   /* named for debuggers and tests */
    int64_t next_tick = 0;
    while (!__atomic_load_n(&p->stopping, __ATOMIC_SEQ_CST)) {
        struct pollfd fds[3] = {{p->lfd, POLLIN, 0}, {p->wake_r, POLLIN, 0}, {-1, 0, 0}};
        int timeout = -1;
        if (p->vfd >= 0) {
            fds[2].fd = p->vfd;
            /* At most LP_READS_PER_TICK reads between two ticks: a viewer flooding
             * the publisher with requests cannot make it spin. */
            fds[2].events = (p->reads < LP_READS_PER_TICK ? POLLIN : 0) |
                            (lpb_pending(&p->out) ? POLLOUT : 0);
            int64_t left = next_tick - lp_now();
            timeout = left <= 0 ? 0 : (int)(left / 1000000) + 1;
        }
        if (poll(fds, 3, timeout) < 0) {
            if (errno == EINTR) continue;
            if (p->vfd >= 0) lp_drop(p, NULL);
            continue;
        }
        if (fds[1].revents) {
            char drain[64];
            while (read(p->wake_r, drain, sizeof drain) > 0) {}
        }
        /* The viewer first: one that detached just before a new one connected is
         * seen gone before the new one is told the program is busy. */
        if (p->vfd >= 0 && fds[2].revents) {
            /* a hung-up viewer is read regardless: it can send nothing more */
            if (fds[2].revents & (POLLHUP | POLLERR) ||
                (fds[2].revents & POLLIN && p->reads < LP_READS_PER_TICK))
                lp_read_viewer(p);
            else lp_flush(p);
        }
        if (fds[0].revents & POLLIN) lp_accept(p);
        if (p->vfd >= 0 && lpb_pending(&p->out)) lp_flush(p);
        if (p->vfd >= 0 && lp_now() >= next_tick && !__atomic_load_n(&p->stopping, __ATOMIC_SEQ_CST)) {
            int64_t t0 = lp_now();
            p->reads = 0;
            lp_publish(p);
            /* The thread's CPU time since the last tick: at most LP_DUTY of one core. */
            double cpu = lp_thread_cpu(), spent = cpu - p->cpu_s;
            p->cpu_s = cpu;
            double wait = spent / LP_DUTY > 1.0 / LP_MAX_HZ ? spent / LP_DUTY : 1.0 / LP_MAX_HZ;
            next_tick = t0 + (int64_t)(wait * 1e9);
        }
    }
    lp_goodbye(p);
    if (p->path) {   /* only our own files: another program may have taken the path */
        struct stat st;
        if (lstat(p->path, &st) == 0 && st.st_ino == p->ino && st.st_dev == p->dev) {
            unlink(p->path);
            if (p->token_path) unlink(p->token_path);
        }
    }
    return NULL;
}
