/*
 * payload_pool.c — memory for payload blocks, #included by bufferscope.c
 * (static functions, one translation unit).
 *
 * A payload block (bufferscope.c's struct payload: a write's data, a set
 * chunk's values and flat offsets) is one allocation: its header, then the
 * data. The events keep blocks alive within the payload budget, so a stream of
 * set_many calls keeps asking for memory it has never touched, and a fresh
 * 4 KiB page costs a fault (about 2 us on the development VM: as much as the
 * rest of a 4096-element set_many call, measured with perf). So blocks of up to
 * PL_BLOCK_MAX bytes are carved one after another from PL_PIECE pieces:
 *   - a piece is 2 MiB-aligned and advised MADV_HUGEPAGE, so where the kernel
 *     grants it one fault maps the whole piece (about 4x cheaper per byte here);
 *   - a piece lives while a block carved from it does (live counts them, plus
 *     one while it is the piece being carved); up to PL_SPARES emptied pieces
 *     are kept as spares and carved again, so memory freed by the catch-up or by
 *     events letting go is reused already faulted in, not returned and faulted
 *     anew (with one spare, a live viewer reading payloads had the worker zero
 *     fresh pieces: clear_page was 23% of its time in perf, 6% without a viewer).
 * The worker touches the next piece in advance (pl_prepare, with no lock held,
 * after it applied a chunk): once the piece being carved is half used and no
 * spare is ready, it makes the spare and faults it in, so the page faults run
 * on the worker, beside the producer, not in the producer's set_many call.
 *
 * Blocks are released about in the order they were made (entries are applied
 * in order, events let go oldest first), so pieces empty soon after their
 * blocks; the memory held beyond the blocks is the piece being carved, the
 * spares and pieces a long-lived block keeps (at most one piece per such block).
 * Larger blocks are allocated on their own, as before. If a piece cannot be
 * allocated, the block is allocated on its own too (NULL only when that fails).
 *
 * Carving takes pool.mu (a producer copies its payload before it takes the
 * manager's lock, and several producers may at once); releasing a block is
 * atomic (the catch-up frees entries with no lock held), and the last block of
 * a piece takes pool.mu to put it among the spares. pool.mu is a leaf lock:
 * nothing else is taken while it is held.
 */
#include <sys/mman.h>

#define PL_PIECE ((size_t)2 << 20)
#define PL_BLOCK_MAX (PL_PIECE / 4)
#define PL_SPARES 16  /* emptied pieces kept (32 MiB at most, never above the most ever live): events
                       * let go of half their payload budget at once, and a piece freed is zeroed anew */
#define PL_ALIGN 64   /* blocks start on a cache line: a producer filling one does not share it with the worker */

typedef struct pl_piece {
    uint64_t live;            /* atomic: blocks carved from it + 1 while it is pool.cur */
    struct pl_pool *pool;
} pl_piece;

typedef struct pl_pool {
    pthread_mutex_t mu;
    pl_piece *cur;            /* under mu: the piece blocks are carved from, or NULL */
    size_t used;              /* under mu: bytes of cur handed out (its header included);
                               * read without mu by pl_prepare as a hint (atomic) */
    pl_piece *spare[PL_SPARES];   /* under mu: emptied pieces kept for reuse ... */
    int nspare;                   /* ... how many (read without mu by pl_prepare: atomic) */
} pl_pool;

#define PL_HEADER ((sizeof(pl_piece) + PL_ALIGN - 1) & ~(size_t)(PL_ALIGN - 1))

static void pl_init(pl_pool *pool)
{
    memset(pool, 0, sizeof *pool);
    pthread_mutex_init(&pool->mu, NULL);
}

/* Caller holds pool->mu: keep an emptied piece as a spare, or free it when
 * PL_SPARES are kept already. */
static void pl_keep_locked(pl_pool *pool, pl_piece *pc)
{
    if (pool->nspare < PL_SPARES) {
        pool->spare[pool->nspare] = pc;
        __atomic_store_n(&pool->nspare, pool->nspare + 1, __ATOMIC_RELEASE);
    } else {
        free(pc);
    }
}

/* Caller holds pool->mu: one block (or the carving) of pc is done. */
static void pl_piece_release_locked(pl_piece *pc)
{
    if (__atomic_sub_fetch(&pc->live, 1, __ATOMIC_ACQ_REL) == 0) pl_keep_locked(pc->pool, pc);
}

/* No pool lock held: one block of pc is done; the last one keeps it as a spare.
 * (pool->mu is a leaf lock: nothing else is taken while it is held.) */
static void pl_piece_release(pl_piece *pc)
{
    if (__atomic_sub_fetch(&pc->live, 1, __ATOMIC_ACQ_REL) != 0) return;
    pl_pool *pool = pc->pool;
    pthread_mutex_lock(&pool->mu);
    pl_keep_locked(pool, pc);
    pthread_mutex_unlock(&pool->mu);
}

/* Caller holds pool->mu: a piece to carve from (a spare, or a new one), or NULL. */
static pl_piece *pl_piece_get(pl_pool *pool)
{
    pl_piece *pc = NULL;
    if (pool->nspare > 0) {
        pc = pool->spare[pool->nspare - 1];
        __atomic_store_n(&pool->nspare, pool->nspare - 1, __ATOMIC_RELEASE);
    } else {
        void *mem = NULL;
        if (posix_memalign(&mem, PL_PIECE, PL_PIECE) != 0) return NULL;
#ifdef MADV_HUGEPAGE
        madvise(mem, PL_PIECE, MADV_HUGEPAGE);   /* advice only: 4 KiB pages when refused */
#endif
        pc = mem;
    }
    pc->pool = pool;
    __atomic_store_n(&pc->live, 1, __ATOMIC_RELAXED);
    return pc;
}

/* `size` bytes for a block; *piece_out gets the piece it was carved from (NULL:
 * allocated on its own, free() it). NULL when there is no memory. */
static void *pl_alloc(pl_pool *pool, size_t size, pl_piece **piece_out)
{
    *piece_out = NULL;
    if (size > PL_BLOCK_MAX) return malloc(size);
    size = (size + PL_ALIGN - 1) & ~(size_t)(PL_ALIGN - 1);
    pthread_mutex_lock(&pool->mu);
    if (!pool->cur || pool->used + size > PL_PIECE) {
        if (pool->cur) pl_piece_release_locked(pool->cur);   /* carved out: lives on with its blocks */
        pool->cur = pl_piece_get(pool);
        __atomic_store_n(&pool->used, PL_HEADER, __ATOMIC_RELAXED);
    }
    pl_piece *pc = pool->cur;
    if (!pc) {
        pthread_mutex_unlock(&pool->mu);
        return malloc(size);
    }
    char *block = (char *)pc + pool->used;
    __atomic_store_n(&pool->used, pool->used + size, __ATOMIC_RELAXED);
    __atomic_add_fetch(&pc->live, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&pool->mu);
    *piece_out = pc;
    return block;
}

/* The worker, no lock held: when the piece being carved is half used and no
 * spare is ready, make one and fault it in (one write per 4 KiB page), so the
 * producer that needs the next piece finds it ready. Nothing when memory is short. */
static void pl_prepare(pl_pool *pool)
{
    if (__atomic_load_n(&pool->nspare, __ATOMIC_ACQUIRE) ||
        __atomic_load_n(&pool->used, __ATOMIC_RELAXED) < PL_PIECE / 2)
        return;
    void *mem = NULL;
    if (posix_memalign(&mem, PL_PIECE, PL_PIECE) != 0) return;
#ifdef MADV_HUGEPAGE
    madvise(mem, PL_PIECE, MADV_HUGEPAGE);
#endif
    for (size_t at = 0; at < PL_PIECE; at += 4096) ((volatile char *)mem)[at] = 0;
    pthread_mutex_lock(&pool->mu);
    pl_keep_locked(pool, (pl_piece *)mem);   /* freed if pieces emptied meanwhile fill the spares */
    pthread_mutex_unlock(&pool->mu);
}

/* A block from pl_alloc is no longer used. */
static void pl_free(void *block, pl_piece *pc)
{
    if (pc) pl_piece_release(pc);
    else free(block);
}

/* Every block was released (bs_destroy): free the pieces. */
static void pl_destroy(pl_pool *pool)
{
    pthread_mutex_lock(&pool->mu);
    if (pool->cur) pl_piece_release_locked(pool->cur);   /* lands in the spares once empty */
    pool->cur = NULL;
    while (pool->nspare > 0) free(pool->spare[--pool->nspare]);
    pthread_mutex_unlock(&pool->mu);
    pthread_mutex_destroy(&pool->mu);
}
