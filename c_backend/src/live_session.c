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

static void lp_put_le(lp_buf *b, const void *src, size_t n, size_t width)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    if (lpb_reserve(b, n)) return;
    const unsigned char *s = src;
    for (size_t i = 0; i < n; i += width)
        for (size_t k = 0; k < width; k++) b->p[b->len + i + k] = s[i + width - 1 - k];
    b->len += n;
#else
    (void)width;
    lpb_put(b, src, n);
#endif
}

static int lp_scratch(struct lp *p, size_t n)
{
    if (n <= p->tmp_cap) return 0;
    int64_t *i = realloc(p->tmp_i, n * sizeof *i);
    if (i) p->tmp_i = i;
    float *v = realloc(p->tmp_v, n * sizeof *v);
    if (v) p->tmp_v = v;
    if (!i || !v) return -1;
    p->tmp_cap = n;
    return 0;
}

/* [offset, nbytes, [dims]] of bytes about to be appended to p->pay. */
static void lp_ref(struct lp *p, size_t nbytes, const uint64_t *dims, int nd)
{
    lpb_printf(&p->hdr, "[%zu,%zu,[", p->pay.len, nbytes);
    for (int k = 0; k < nd; k++) lpb_printf(&p->hdr, k ? ",%llu" : "%llu", (unsigned long long)dims[k]);
    lpb_puts(&p->hdr, "]]");
}

/* One event row (app.manager.Event's fields, as app/live.py sends them). */
static void lp_event_row(struct lp *p, const bs_event *e, const bs_event_detail *d)
{
    bs_manager *m = p->m;
    int nd = m->ndim;
    lpb_printf(&p->hdr, "[%llu,%lld,\"%s\",%llu,%llu,%llu,", (unsigned long long)e->index,
               (long long)e->t_ns, e->kind >= 0 && e->kind <= 6 ? lp_kinds[e->kind] : "?",
               (unsigned long long)e->seq, (unsigned long long)e->count, (unsigned long long)e->epoch);
    if (e->producer) lpb_printf(&p->hdr, "\"thread-%llu\",", (unsigned long long)e->producer);
    else lpb_puts(&p->hdr, "\"\",");
    lpb_printf(&p->hdr, "%d,\"%s\",", (int)e->slot, e->op >= 0 && e->op <= 4 ? lp_ops[e->op] : "");
    if (d->what == BS_DETAIL_REGION || d->what == BS_DETAIL_WRITE) {
        lpb_puts(&p->hdr, "[");
        for (int k = 0; k < nd; k++)
            lpb_printf(&p->hdr, "%s[%lld,%lld]", k ? "," : "", (long long)d->start[k], (long long)d->stop[k]);
        lpb_puts(&p->hdr, "],");
    } else {
        lpb_puts(&p->hdr, "null,");
    }
    if (d->what == BS_DETAIL_REGION) lpb_num(&p->hdr, d->value);
    else lpb_puts(&p->hdr, "null");
    int dropped = d->payload_dropped;
    int arrays = !dropped && (d->what == BS_DETAIL_WRITE || d->what == BS_DETAIL_SETS);
    uint64_t count = d->payload_count;
    size_t per = d->what == BS_DETAIL_SETS ? 8 * (size_t)nd + 4 : 4;
    size_t got = 0;
    if (arrays && (count > (LP_MAX_EVENT_PAYLOAD - p->pay.len) / per || p->pay.len > LP_MAX_EVENT_PAYLOAD)) {
        arrays = 0;   /* over this update's budget: sent without arrays */
        dropped = 1;
    }
    if (arrays && count) {
        if (lp_scratch(p, (size_t)count * (size_t)nd) ||
            bs_event_payload(m, e->index, d->what == BS_DETAIL_SETS ? p->tmp_i : NULL, p->tmp_v,
                             (size_t)count, &got) || got != count) {
            arrays = 0;   /* let go since it was read (budget, or the ring wrapped) */
            dropped = 1;
        }
    }
    if (!arrays) {
        lpb_printf(&p->hdr, ",null,null,%s]", dropped ? "true" : "false");
        return;
    }
    lpb_puts(&p->hdr, ",");
    if (d->what == BS_DETAIL_SETS) {
        uint64_t dims[2] = {count, (uint64_t)nd};
        lp_ref(p, (size_t)count * 8 * (size_t)nd, dims, 2);
        lp_put_le(&p->pay, p->tmp_i, (size_t)count * 8 * (size_t)nd, 8);
        lpb_puts(&p->hdr, ",");
        lp_ref(p, (size_t)count * 4, &count, 1);
    } else {
        uint64_t dims[BS_MAX_NDIM];
        for (int k = 0; k < nd; k++) dims[k] = (uint64_t)(d->stop[k] - d->start[k]);
        lpb_puts(&p->hdr, "null,");
        lp_ref(p, (size_t)count * 4, dims, nd);
    }
    lp_put_le(&p->pay, p->tmp_v, (size_t)count * 4, 4);
    lpb_puts(&p->hdr, ",false]");
}

/* The events since the last tick (app.live.Publisher._events_part). */
static void lp_events_part(struct lp *p, const bs_stats *st)
{
    uint64_t recorded = st->events_recorded, skipped = 0;
    uint64_t cursor = p->has_cursor ? p->cursor : (recorded > LP_MAX_EVENTS ? recorded - LP_MAX_EVENTS : 0);
    if (recorded > cursor && recorded - cursor > LP_MAX_EVENTS) {
        skipped = recorded - LP_MAX_EVENTS - cursor;
        cursor = recorded - LP_MAX_EVENTS;
    }
    size_t n = 0;
    uint64_t next = cursor;
    if (recorded > cursor && bs_events_read_detail(p->m, cursor, p->ev, p->det, LP_MAX_EVENTS, &n, &next))
        n = 0, next = cursor;
    if (n && p->ev[0].index > cursor) skipped += p->ev[0].index - cursor;   /* lost to the ring's wrap */
    p->cursor = next;
    p->has_cursor = 1;
    lpb_puts(&p->hdr, "\"event_fields\":[\"index\",\"t_ns\",\"kind\",\"seq\",\"count\",\"epoch\","
             "\"producer\",\"slot\",\"op\",\"region\",\"value\",\"indices\",\"values\",\"payload_dropped\"],"
             "\"events\":[");
    for (size_t k = 0; k < n; k++) {
        if (k) lpb_puts(&p->hdr, ",");
        lp_event_row(p, &p->ev[k], &p->det[k]);
    }
    lpb_printf(&p->hdr, "],\"next\":%llu,\"skipped\":%llu", (unsigned long long)next,
               (unsigned long long)skipped);
}

/* A copy of the front into p->front and its epoch: 0, or -1 when a swap came
 * under every try (each chunk is copied under mu with the epoch unchanged). */
static int lp_snapshot(struct lp *p, uint64_t *epoch_out)
{
    bs_manager *m = p->m;
    if (!p->front && !(p->front = malloc(m->nelem * sizeof(float)))) return -1;
    for (int tries = 0; tries < 3; tries++) {
        uint64_t epoch = 0;
        size_t off = 0;
        int torn = 0;
        while (off < m->nelem && !torn) {
            size_t n = m->nelem - off < LP_FRONT_CHUNK ? m->nelem - off : LP_FRONT_CHUNK;
            pthread_mutex_lock(&m->mu);
            if (off == 0) epoch = m->epoch;
            if (m->epoch != epoch) torn = 1;
            else memcpy(p->front + off, m->buf[m->front_slot] + off, n * sizeof(float));
            pthread_mutex_unlock(&m->mu);
            off += n;
        }
        if (!torn) {
            *epoch_out = epoch;
            return 0;
        }
    }
    return -1;
}

/* One update message: stats, events and (when the epoch moved and the viewer
 * took the previous one) the front. */
static void lp_publish(struct lp *p)
{
    if (lpb_pending(&p->out) > LP_MAX_BACKLOG) {   /* it has not taken what was sent: not reading */
        lp_drop(p, "dropped: the viewer did not read");
        return;
    }
    bs_manager *m = p->m;
    bs_stats st = {0};
    if (bs_stats_get(m, &st)) return;
    lpb_clear(&p->hdr);
    lpb_clear(&p->pay);
    lpb_puts(&p->hdr, "{\"type\":\"update\",");
    lp_events_part(p, &st);
    size_t front_bytes = m->nelem * sizeof(float);
    uint64_t front_epoch = 0;
    int with_front = 0;
    if ((!p->sent_any || st.epoch != p->sent_epoch) && lpb_pending(&p->out) < front_bytes &&
        !lp_snapshot(p, &front_epoch)) {
        lpb_printf(&p->hdr, ",\"front\":[%zu,%zu],\"front_epoch\":%llu", p->pay.len, front_bytes,
                   (unsigned long long)front_epoch);
        p->sent_any = 1;
        p->sent_epoch = front_epoch;
        with_front = 1;
    } else {
        lpb_puts(&p->hdr, ",\"front\":null");
    }
    lpb_printf(&p->hdr, ",\"epoch\":%llu,\"stats\":{\"epoch\":%llu,\"last_seq\":%llu,"
               "\"applied_seq\":%llu,\"visible_seq\":%llu,", (unsigned long long)st.epoch,
               (unsigned long long)st.epoch, (unsigned long long)st.last_seq,
               (unsigned long long)st.applied_seq, (unsigned long long)st.visible_seq);
    lpb_printf(&p->hdr, "\"pending\":%llu,\"max_pending\":%llu,\"paused\":%s,\"events_recorded\":%llu}}",
               (unsigned long long)st.pending, (unsigned long long)st.max_pending,
               st.paused ? "true" : "false", (unsigned long long)st.events_recorded);
    if (p->hdr.oom || p->pay.oom) {
        if (!p->failed) fprintf(stderr, "bufferscope: publishing the c manager: out of memory\n");
        p->failed = 1;
        if (with_front) p->sent_any = 0;
        return;
    }
    if (st.epoch > p->last_epoch) p->last_epoch = st.epoch;
    if (with_front && front_epoch > p->last_epoch) p->last_epoch = front_epoch;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    if (with_front) {   /* little-endian on the wire */
        size_t at = p->pay.len;
        lp_put_le(&p->pay, p->front, front_bytes, 4);
        const void *parts[1] = {p->pay.p};
        size_t sizes[1] = {at + front_bytes};
        lp_queue(p, parts, sizes, 1);
    } else
#endif
    {
        const void *parts[2] = {p->pay.p, p->front};
        size_t sizes[2] = {p->pay.len, with_front ? front_bytes : 0};
        lp_queue(p, parts, sizes, 2);
    }
    if (p->out.oom) {   /* the frame did not fit in memory: this viewer cannot be served */
        lp_drop(p, NULL);
        return;
    }
    lp_flush(p);
}

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
