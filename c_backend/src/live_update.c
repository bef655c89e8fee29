/*
 * live_update.c — what one tick of the "bs-publish" thread sends (live_publisher.c):
 * an `update` frame with the stats, the events since the last tick (rows of
 * app.manager.Event's fields, their arrays in the payload) and, when the epoch
 * moved and the viewer took the previous one, a copy of the front made in chunks
 * under mu, each with the epoch checked (never a torn front). #included by
 * live_session.c after its frame helpers (lp_queue, lp_drop, lp_flush).
 */

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
