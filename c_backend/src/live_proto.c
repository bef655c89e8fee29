/*
 * live_proto.c — the live-attach wire format in C (app/live.py's docstring is the
 * spec): growable byte buffers, a JSON writer for what the publisher sends, and a
 * small strict JSON reader for the one message a viewer may send (control).
 *
 * #included by live_publisher.c (one translation unit with bufferscope.c, as
 * trace_writer.c is). Everything here is static and named lpb_* / lpj_*; it knows
 * nothing of the manager.
 *
 * The reader takes whatever a hostile client sends: the header is checked to be
 * UTF-8 first (as Python decodes it), then parsed as one JSON object with a
 * bounded nesting depth; NaN/Infinity, control characters in strings, trailing
 * bytes and anything else Python's json.loads refuses are refused. Only the
 * members "type", "id", "action", "token" and "n" are kept (the last of a
 * duplicated key wins, as in Python); every other value is parsed and dropped.
 * Strings are kept up to LPJ_STR_MAX bytes (their length in code points is
 * counted in full), integers as int64 with an "out of range" flag.
 */
#include <math.h>
#include <stdarg.h>

/* ---------------------------------------------------------------- byte buffers */

typedef struct lp_buf {
    unsigned char *p;
    size_t len, cap;
    size_t off;        /* bytes already consumed from the front (an output queue) */
    int oom;           /* an allocation failed: the content is incomplete */
} lp_buf;

static int lpb_reserve(lp_buf *b, size_t more)
{
    if (b->oom) return -1;
    if (b->len + more <= b->cap) return 0;
    if (b->off) {   /* reclaim what was consumed before growing */
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + more <= b->cap) return 0;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) {
        if (cap > SIZE_MAX / 2) { b->oom = 1; return -1; }
        cap *= 2;
    }
    unsigned char *q = realloc(b->p, cap);
    if (!q) { b->oom = 1; return -1; }
    b->p = q;
    b->cap = cap;
    return 0;
}

static void lpb_put(lp_buf *b, const void *s, size_t n)
{
    if (n && !lpb_reserve(b, n)) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
    }
}

static void lpb_puts(lp_buf *b, const char *s) { lpb_put(b, s, strlen(s)); }

static void lpb_printf(lp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lpb_printf(lp_buf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) lpb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void lpb_u32be(lp_buf *b, uint32_t v)
{
    unsigned char s[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    lpb_put(b, s, 4);
}

static void lpb_clear(lp_buf *b) { b->len = b->off = 0; b->oom = 0; }
static size_t lpb_pending(const lp_buf *b) { return b->len - b->off; }
static void lpb_free(lp_buf *b) { free(b->p); memset(b, 0, sizeof *b); }

/* Whether the n bytes at s are valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
static int lpj_utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t k;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07; }
        else return 0;
        if (n - i <= k) return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* A JSON string of the n bytes at s, quoted and escaped; when they are not valid
 * UTF-8 (a lone surrogate a viewer sent), every non-ASCII byte becomes '?'. */
static void lpb_json_str(lp_buf *b, const char *s, size_t n)
{
    int ascii_only = !lpj_utf8_ok((const unsigned char *)s, n);
    lpb_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 && ascii_only) {
            lpb_put(b, "?", 1);
        } else if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            lpb_put(b, e, 2);
        } else if (c < 0x20) {
            lpb_printf(b, "\\u%04x", c);
        } else {
            lpb_put(b, &s[i], 1);
        }
    }
    lpb_put(b, "\"", 1);
}

static void lpb_json_cstr(lp_buf *b, const char *s) { lpb_json_str(b, s, strlen(s)); }

/* A float for a header (app.live.num_out): non-finite values as strings; %.17g
 * reads back as the same double. */
static void lpb_num(lp_buf *b, double v)
{
    if (isnan(v)) lpb_puts(b, "\"nan\"");
    else if (isinf(v)) lpb_puts(b, v > 0 ? "\"inf\"" : "\"-inf\"");
    else lpb_printf(b, "%.17g", v);
}

/* The first `max_cp` code points of the UTF-8 string s (n bytes): their byte length. */
static size_t lp_utf8_prefix(const char *s, size_t n, size_t max_cp)
{
    size_t i = 0, cp = 0;
    while (i < n) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (cp == max_cp) break;
            cp++;
        }
        i++;
    }
    return i;
}

/* ---------------------------------------------------------------- the JSON reader */

#define LPJ_STR_MAX 320       /* bytes kept of a string value (longer ones are flagged) */
#define LPJ_KEY_MAX 16        /* bytes kept of a key: longer keys match nothing we read */
#define LPJ_DEPTH_MAX 128

enum { LPJ_ABSENT = 0, LPJ_STR, LPJ_INT, LPJ_OTHER };

typedef struct lpj_field {
    int kind;          /* LPJ_ABSENT, LPJ_STR, LPJ_INT (fits int64), LPJ_OTHER (any other value) */
    int big;           /* LPJ_OTHER from an integer literal outside int64 */
    int64_t i;
    char s[LPJ_STR_MAX + 1];
    size_t slen;       /* bytes kept in s */
    size_t cps;        /* the whole string's length in code points */
    int truncated;
} lpj_field;

typedef struct lpj_msg {
    lpj_field type, id, action, token, n;
} lpj_msg;

typedef struct lpj {
    const unsigned char *s, *end;
    const char *err;
} lpj;

static void lpj_ws(lpj *j)
{
    while (j->s < j->end && (*j->s == ' ' || *j->s == '\t' || *j->s == '\n' || *j->s == '\r'))
        j->s++;
}

static int lpj_fail(lpj *j, const char *why)
{
    if (!j->err) j->err = why;
    return -1;
}

static int lpj_hex4(lpj *j, unsigned *out)
{
    if (j->end - j->s < 4) return lpj_fail(j, "bad \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = *j->s++;
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return lpj_fail(j, "bad \\u escape");
    }
    *out = v;
    return 0;
}

/* Appends code point cp (UTF-8; a lone surrogate as its 3-byte form) to out. */
static void lpj_emit(char *out, size_t cap, size_t *len, int *trunc, unsigned cp)
{
    unsigned char u[4];
    size_t k;
    if (cp < 0x80) { u[0] = (unsigned char)cp; k = 1; }
    else if (cp < 0x800) { u[0] = (unsigned char)(0xC0 | (cp >> 6)); u[1] = (unsigned char)(0x80 | (cp & 0x3F)); k = 2; }
    else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xE0 | (cp >> 12)); u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp & 0x3F)); k = 3;
    } else {
        u[0] = (unsigned char)(0xF0 | (cp >> 18)); u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (unsigned char)(0x80 | (cp & 0x3F)); k = 4;
    }
    if (*trunc || *len + k > cap) { *trunc = 1; return; }   /* kept: a prefix */
    memcpy(out + *len, u, k);
    *len += k;
}

/* A string (j->s at its opening quote) into out (cap bytes, not terminated). */
static int lpj_string(lpj *j, char *out, size_t cap, size_t *len, size_t *cps, int *trunc)
{
    *len = *cps = 0;
    *trunc = 0;
    j->s++;   /* the quote */
    while (j->s < j->end) {
        unsigned char c = *j->s;
        if (c == '"') { j->s++; return 0; }
        if (c < 0x20) return lpj_fail(j, "a control character in a string");
        if (c == '\\') {
            j->s++;
            if (j->s >= j->end) break;
            unsigned char e = *j->s++;
            unsigned cp;
            switch (e) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (lpj_hex4(j, &cp)) return -1;
                if (cp >= 0xD800 && cp <= 0xDBFF && j->end - j->s >= 6 && j->s[0] == '\\' &&
                    j->s[1] == 'u') {
                    const unsigned char *save = j->s;
                    unsigned lo;
                    j->s += 2;
                    if (lpj_hex4(j, &lo)) return -1;
                    if (lo >= 0xDC00 && lo <= 0xDFFF) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    else j->s = save;   /* a lone high surrogate, then another escape */
                }
                break;
            default:
                return lpj_fail(j, "a bad escape in a string");
            }
            lpj_emit(out, cap, len, trunc, cp);
            (*cps)++;
            continue;
        }
        /* a raw byte of valid UTF-8 (checked up front): copy the whole sequence */
        size_t k = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if ((size_t)(j->end - j->s) < k) break;
        if (!*trunc && *len + k <= cap) {
            memcpy(out + *len, j->s, k);
            *len += k;
        } else {
            *trunc = 1;
        }
        (*cps)++;
        j->s += k;
    }
    return lpj_fail(j, "an unterminated string");
}

/* A number; *is_int when it is an integer literal, then *i (or *big when it
 * does not fit int64). */
static int lpj_number(lpj *j, int *is_int, int64_t *i, int *big)
{
    const unsigned char *p = j->s;
    int neg = 0;
    *is_int = 1;
    *big = 0;
    if (p < j->end && *p == '-') { neg = 1; p++; }
    if (p >= j->end || *p < '0' || *p > '9') return lpj_fail(j, "a bad number");
    uint64_t mag = 0;
    if (*p == '0') {
        p++;
    } else {
        while (p < j->end && *p >= '0' && *p <= '9') {
            unsigned d = *p++ - '0';
            if (mag > (UINT64_MAX - d) / 10) *big = 1;
            else mag = mag * 10 + d;
        }
    }
    if (p < j->end && *p == '.') {
        *is_int = 0;
        p++;
        if (p >= j->end || *p < '0' || *p > '9') return lpj_fail(j, "a bad number");
        while (p < j->end && *p >= '0' && *p <= '9') p++;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
        *is_int = 0;
        p++;
        if (p < j->end && (*p == '+' || *p == '-')) p++;
        if (p >= j->end || *p < '0' || *p > '9') return lpj_fail(j, "a bad number");
        while (p < j->end && *p >= '0' && *p <= '9') p++;
    }
    j->s = p;
    if (*is_int && !*big) {
        if (neg ? mag > (uint64_t)INT64_MAX + 1 : mag > (uint64_t)INT64_MAX) *big = 1;
        else *i = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    }
    return 0;
}

static int lpj_literal(lpj *j, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->s) < n || memcmp(j->s, word, n)) return lpj_fail(j, "not JSON");
    j->s += n;
    return 0;
}

/* Any value, kept in f when f is not NULL. */
static int lpj_value(lpj *j, lpj_field *f, int depth)
{
    if (depth > LPJ_DEPTH_MAX) return lpj_fail(j, "nested too deeply");
    lpj_ws(j);
    if (j->s >= j->end) return lpj_fail(j, "a value is missing");
    if (f) memset(f, 0, sizeof *f);
    if (f) f->kind = LPJ_OTHER;
    unsigned char c = *j->s;
    if (c == '"') {
        char scratch[1];
        size_t len, cps;
        int trunc;
        if (f) {
            if (lpj_string(j, f->s, LPJ_STR_MAX, &f->slen, &f->cps, &f->truncated)) return -1;
            f->s[f->slen] = 0;
            f->kind = LPJ_STR;
            return 0;
        }
        return lpj_string(j, scratch, 0, &len, &cps, &trunc);
    }
    if (c == '{' || c == '[') {
        unsigned char close = c == '{' ? '}' : ']';
        j->s++;
        lpj_ws(j);
        if (j->s < j->end && *j->s == close) { j->s++; return 0; }
        for (;;) {
            if (c == '{') {
                lpj_ws(j);
                if (j->s >= j->end || *j->s != '"') return lpj_fail(j, "an object key is not a string");
                if (lpj_value(j, NULL, depth + 1)) return -1;
                lpj_ws(j);
                if (j->s >= j->end || *j->s != ':') return lpj_fail(j, "':' is missing");
                j->s++;
            }
            if (lpj_value(j, NULL, depth + 1)) return -1;
            lpj_ws(j);
            if (j->s < j->end && *j->s == ',') { j->s++; continue; }
            if (j->s < j->end && *j->s == close) { j->s++; return 0; }
            return lpj_fail(j, "',' or a closing bracket is missing");
        }
    }
    if (c == 't') return lpj_literal(j, "true");
    if (c == 'f') return lpj_literal(j, "false");
    if (c == 'n') return lpj_literal(j, "null");
    int is_int, big;
    int64_t i = 0;
    if (lpj_number(j, &is_int, &i, &big)) return -1;
    if (f && is_int && !big) { f->kind = LPJ_INT; f->i = i; }
    if (f && is_int && big) f->big = 1;
    return 0;
}

/* Parses a header: 0, or -1 with *err saying why (it is not a JSON object). */
static int lpj_parse_msg(const unsigned char *s, size_t n, lpj_msg *msg, const char **err)
{
    memset(msg, 0, sizeof *msg);
    lpj j = {s, s + n, NULL};
    if (!lpj_utf8_ok(s, n)) { *err = "header is not JSON: not UTF-8"; return -1; }
    lpj_ws(&j);
    if (j.s >= j.end || *j.s != '{') {
        /* a valid JSON value that is not an object, or not JSON at all */
        if (lpj_value(&j, NULL, 0) == 0 && (lpj_ws(&j), j.s == j.end)) {
            *err = "header is not a JSON object with a \"type\"";
            return -1;
        }
        *err = "header is not JSON";
        return -1;
    }
    j.s++;
    lpj_ws(&j);
    if (j.s < j.end && *j.s == '}') {
        j.s++;
    } else {
        for (;;) {
            lpj_ws(&j);
            if (j.s >= j.end || *j.s != '"') { lpj_fail(&j, "a key is not a string"); break; }
            char key[LPJ_KEY_MAX];
            size_t klen, kcps;
            int ktrunc;
            if (lpj_string(&j, key, sizeof key, &klen, &kcps, &ktrunc)) break;
            lpj_ws(&j);
            if (j.s >= j.end || *j.s != ':') { lpj_fail(&j, "':' is missing"); break; }
            j.s++;
            lpj_field *f = NULL;
#define LPJ_KEY(name) (!ktrunc && klen == sizeof(#name) - 1 && !memcmp(key, #name, klen))
            if (LPJ_KEY(type)) f = &msg->type;
            else if (LPJ_KEY(id)) f = &msg->id;
            else if (LPJ_KEY(action)) f = &msg->action;
            else if (LPJ_KEY(token)) f = &msg->token;
            else if (LPJ_KEY(n)) f = &msg->n;
#undef LPJ_KEY
            if (lpj_value(&j, f, 1)) break;
            lpj_ws(&j);
            if (j.s < j.end && *j.s == ',') { j.s++; continue; }
            if (j.s < j.end && *j.s == '}') { j.s++; break; }
            lpj_fail(&j, "',' or '}' is missing");
            break;
        }
    }
    if (!j.err) {
        lpj_ws(&j);
        if (j.s != j.end) lpj_fail(&j, "extra data after the object");
    }
    if (j.err) {
        static __thread char why[96];
        snprintf(why, sizeof why, "header is not JSON: %s", j.err);
        *err = why;
        return -1;
    }
    if (msg->type.kind != LPJ_STR) {
        *err = "header is not a JSON object with a \"type\"";
        return -1;
    }
    return 0;
}
