/*
 * fuzz_live_proto.c — a libFuzzer harness for the JSON reader of the C live-attach
 * publisher (c_backend/src/live_proto.c), which reads whatever a viewer sends.
 *
 * Each input is one frame header. The reader must never crash or read out of
 * bounds (ASan, UBSan), and when it accepts a header its fields keep their
 * promises: "type" is a string, kept strings are within LPJ_STR_MAX bytes and
 * NUL-terminated, no kept string is longer in bytes than 4 per code point. A
 * violation aborts.
 *
 *   make fuzz-live FUZZ_SECONDS=60
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "live_proto.c"

static void check_field(const lpj_field *f)
{
    if (f->kind == LPJ_STR) {
        if (f->slen > LPJ_STR_MAX || f->s[f->slen] != 0) abort();
        if (!f->truncated && f->slen > 4 * f->cps) abort();
        /* Whatever was kept, the writer turns it into valid JSON (UTF-8). */
        lp_buf b = {0};
        lpb_json_str(&b, f->s, f->slen);
        if (!b.oom && !lpj_utf8_ok(b.p, b.len)) abort();
        lpb_free(&b);
    } else if (f->kind != LPJ_ABSENT && f->kind != LPJ_INT && f->kind != LPJ_OTHER) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lpj_msg msg;
    const char *err = NULL;
    if (lpj_parse_msg(data, size, &msg, &err) == 0) {
        if (msg.type.kind != LPJ_STR) abort();
        check_field(&msg.type);
        check_field(&msg.id);
        check_field(&msg.action);
        check_field(&msg.token);
        check_field(&msg.n);
    } else if (!err || strncmp(err, "header is not", 13)) {
        abort();
    }
    return 0;
}
