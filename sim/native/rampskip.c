/* The ramp skip: a waiting loop whose only changing input is a counting
 * register, skipped straight to the turn in which its exit condition changes.
 *
 * Firmware waits on a free-running timer through function calls:
 *     start = TIM2->CNT; while (TIM2->CNT - start < us) {}
 * Every turn reads a new value once the counter ticked, so the idle skip
 * (``idle_visit`` in counter.c, which needs a turn to leave every register as
 * it found it) can only skip to the next tick: a 200 us wait took some 200
 * skips, each after three turns run. Here a loop's turn is described once, by
 * sim/rampskip.py from its code, as a recipe: the value read from the counter
 * is X, every register the turn writes and the two operands of its last
 * flag-setting instruction are affine in X and in registers the turn does not
 * change, and the loop goes on while a condition on those flags holds. Then
 * the condition is evaluated here for every tick of the counter (the read
 * cache's ramp, sim/native/mmio.c, says when each value is read) until the
 * first tick on which the loop would leave; the turns that read only earlier
 * ticks are skipped whole, and the registers set to what the last of them
 * leaves. The evaluation checks every tick, so a condition that is not
 * monotonic in the counter (a bit of it, a wrap) is as exact as a compare.
 * The turn that reads the exit tick runs in the engine, as do all turns when
 * anything (a clock event, SysTick, the slice's end) comes first. */
#include <stdint.h>
#include <string.h>

#include "layout.h"

#define RAMP_SITES 64
#define RAMP_TERMS 3
#define RAMP_OUT 6
#define RAMP_MAX_TICKS (1u << 20)   /* ticks looked at per visit: a bound, not a limit of exactness */
#define RAMP_MIN_TURNS 8u

/* SITE_MOVED: the head is inside the loop's turn, which begins at ``address``
 * (the target of its closing branch): the idle skip should look for it there. */
enum { SITE_EMPTY, SITE_REQUESTED, SITE_READY, SITE_REFUSED, SITE_MOVED };
enum { FLAGS_SUB = 1, FLAGS_ADD = 2 };

typedef int (*reg_fn)(void *uc, int regid, void *value);

/* k + x * X + sum(coef[i] * register reg[i]) modulo 2^32; reg -1: no term. */
typedef struct {
    uint32_t k;
    int32_t x;
    int32_t reg[RAMP_TERMS];
    int32_t coef[RAMP_TERMS];
} hwut_ramp_expr;

typedef struct {
    uint32_t head;         /* the loop's first instruction (flash: its canonical address) */
    uint32_t period;       /* instructions per turn */
    uint32_t state;        /* SITE_ */
    uint32_t address;      /* moved: where the turn begins */
    uint32_t size;         /* of that load, bytes */
    uint32_t cond;         /* ARM condition code: the loop goes on while it holds */
    uint32_t flags_kind;   /* FLAGS_SUB: a - b (CMP, SUBS); FLAGS_ADD: a + b (CMN, ADDS) */
    uint32_t n_out;
    uint32_t lr, spare;    /* LR when it was met (a head inside a called function: its caller) */
    hwut_ramp_expr where;  /* the address of the counting register the turn reads, once */
    hwut_ramp_expr a, b;   /* the operands of the last flag-setting instruction */
    int32_t out_reg[RAMP_OUT];           /* registers the turn leaves depending on X */
    hwut_ramp_expr out[RAMP_OUT];
} hwut_ramp_site;

/* The read cache's ramp for one register (mmio.c). */
typedef struct {
    uint64_t value, anchor, period, valid_until;
} hwut_ramp_view;

int hwut_mmio_ramp_view(const void *cache, uint64_t address, uint32_t size, uint64_t now,
                        hwut_ramp_view *out);

typedef struct {
    const void *cache;       /* the read cache (hwut_mmio in mmio.c) */
    uint32_t flash_base, flash_size;   /* flash and its alias at 0 are one code */
    uint32_t requests, spare;          /* sites SITE_REQUESTED since Python last looked */
    uint64_t skips, turns;   /* profile: skips made, turns skipped */
    hwut_ramp_site sites[RAMP_SITES];
} hwut_ramp;

/* What the caller (idle_visit) knows of the engine. */
typedef struct {
    void *uc;
    reg_fn reg_read, reg_write;
    const int32_t *regs;     /* register ids, indexed by the R_ numbers of counter.c */
    int32_t lr_reg;          /* the R_ number of LR */
    int32_t xpsr_reg;        /* the R_ number of xPSR (read) */
    int32_t nzcv_reg;        /* the R_ number of its flags (NZCVQ, GE; write only) */
} hwut_ramp_engine;

static uint32_t reg_get(const hwut_ramp_engine *e, int r)
{
    uint64_t v = 0;
    e->reg_read(e->uc, e->regs[r], &v);
    return (uint32_t)v;
}

static void reg_set(const hwut_ramp_engine *e, int r, uint32_t value)
{
    uint64_t v = value;
    e->reg_write(e->uc, e->regs[r], &v);
}

/* An expression's value less its X term, from the registers at the head. */
static uint32_t base_of(const hwut_ramp_expr *ex, const hwut_ramp_engine *e)
{
    uint32_t v = ex->k;
    for (int i = 0; i < RAMP_TERMS; i++)
        if (ex->reg[i] >= 0)
            v += (uint32_t)ex->coef[i] * reg_get(e, ex->reg[i]);
    return v;
}

static uint32_t nzcv_of(uint32_t kind, uint32_t a, uint32_t b)
{
    uint32_t r, c, v;
    if (kind == FLAGS_SUB) {
        r = a - b;
        c = a >= b;
        v = ((a ^ b) & (a ^ r)) >> 31;
    } else {
        r = a + b;
        c = r < a;
        v = (~(a ^ b) & (a ^ r)) >> 31;
    }
    return (r & 0x80000000u) | (r == 0 ? 1u << 30 : 0u) | (c << 29) | (v << 28);
}

/* Does ARM condition ``cond`` hold for flags ``f`` (NZCV in bits 31..28)? */
static int holds(uint32_t cond, uint32_t f)
{
    int n = (f >> 31) & 1, z = (f >> 30) & 1, c = (f >> 29) & 1, v = (f >> 28) & 1;
    switch (cond) {
    case 0: return z;
    case 1: return !z;
    case 2: return c;
    case 3: return !c;
    case 4: return n;
    case 5: return !n;
    case 6: return v;
    case 7: return !v;
    case 8: return c && !z;
    case 9: return !c || z;
    case 10: return n == v;
    case 11: return n != v;
    case 12: return !z && n == v;
    case 13: return z || n != v;
    default: return 1;
    }
}

/* Where a head inside a called function returns to (flash seen at its own address). */
static uint32_t canonical_lr(const hwut_ramp *r, const hwut_ramp_engine *e)
{
    uint32_t lr = reg_get(e, e->lr_reg);
    return lr < r->flash_size ? lr + r->flash_base : lr;
}

static hwut_ramp_site *site_of(hwut_ramp *r, uint32_t head)
{
    return &r->sites[(head >> 1) % RAMP_SITES];
}

/* The value a read at cycle ``t`` returns (t below the view's valid_until). */
static uint32_t value_at(const hwut_ramp_view *v, uint64_t t, uint32_t mask)
{
    return (uint32_t)(v->value + (t - v->anchor) / v->period) & mask;
}

/* Called by the idle skip at the head of a loop whose turn (``period``
 * instructions, the same as the last) read only from the read cache and
 * stored nothing; ``now`` is the count at the head, ``horizon`` the first
 * cycle at which something outside the loop happens (limit, SysTick). Returns
 * the turns skipped (the count is then the caller's to advance), 0 if none;
 * ``move_to`` is set to where the loop's turn begins if ``head`` is not it. */
uint64_t hwut_ramp_visit(void *state, const hwut_ramp_engine *e, uint32_t head,
                         uint32_t period, uint64_t now, uint64_t horizon, uint32_t *move_to)
{
    hwut_ramp *r = state;
    uint32_t view = 0;
    if (head < r->flash_size) {
        view = r->flash_base;
        head += view;   /* the alias runs the same code */
    }
    hwut_ramp_site *s = site_of(r, head);
    if (s->head != head || s->period != period) {
        if (s->state == SITE_REQUESTED && s->head != head)
            return 0;   /* another loop waits for its answer: this one asks later */
        memset(s, 0, sizeof *s);
        s->head = head;
        s->period = period;
        s->state = SITE_REQUESTED;
        s->lr = canonical_lr(r, e);
        r->requests++;
        return 0;
    }
    if (s->state == SITE_MOVED && s->lr == canonical_lr(r, e))   /* called from that loop */
        *move_to = s->address - view;
    if (s->state != SITE_READY)
        return 0;
    hwut_ramp_view v;
    if (!hwut_mmio_ramp_view(r->cache, base_of(&s->where, e), s->size, now, &v))
        return 0;
    if (v.valid_until < horizon)
        horizon = v.valid_until;
    if (horizon <= now + (uint64_t)RAMP_MIN_TURNS * period)
        return 0;
    uint32_t mask = s->size >= 4 ? 0xFFFFFFFFu : (1u << (8 * s->size)) - 1u;
    uint32_t ax = base_of(&s->a, e), bx = base_of(&s->b, e);
    /* The first cycle from which a read returns a value on which the loop leaves
     * (or the horizon): ticks are looked at in order, each once. */
    uint64_t exit_at = horizon;
    uint64_t t = now + 1;   /* the earliest read of the next turn */
    for (uint32_t ticks = 0; t < horizon; ticks++) {
        if (ticks >= RAMP_MAX_TICKS) {
            exit_at = t;
            break;
        }
        uint32_t x = value_at(&v, t, mask);
        uint32_t f = nzcv_of(s->flags_kind, ax + (uint32_t)s->a.x * x, bx + (uint32_t)s->b.x * x);
        if (!holds(s->cond, f)) {
            exit_at = t;
            break;
        }
        t = v.anchor + ((t - v.anchor) / v.period + 1) * v.period;   /* the next tick */
    }
    /* Turns whose every instruction is before exit_at; the count after them stays
     * below the horizon (SysTick's wrap, the slice's end come on time). */
    uint64_t n = (exit_at - now - 1) / period;
    uint64_t cap = (horizon - now) / period;
    if (cap)
        cap--;
    if (n > cap)
        n = cap;
    /* The last skipped turn must have read one value throughout its window, so
     * that the registers it leaves are known whatever instruction reads. */
    while (n && value_at(&v, now + (n - 1) * period + 1, mask) != value_at(&v, now + n * period, mask))
        n--;
    if (n < RAMP_MIN_TURNS)
        return 0;
    uint32_t x = value_at(&v, now + n * period, mask);
    uint32_t outs[RAMP_OUT];
    for (uint32_t i = 0; i < s->n_out; i++)   /* all from the registers at the head first */
        outs[i] = base_of(&s->out[i], e) + (uint32_t)s->out[i].x * x;
    uint32_t f = nzcv_of(s->flags_kind, ax + (uint32_t)s->a.x * x, bx + (uint32_t)s->b.x * x);
    for (uint32_t i = 0; i < s->n_out; i++)
        reg_set(e, s->out_reg[i], outs[i]);
    /* the flags as exit_exception in counter.c sets them: NZCVQG, then the whole xPSR
     * (the write of NZCVQG alone leaves the Thumb bit clear in the engine) */
    uint32_t xpsr = reg_get(e, e->xpsr_reg);
    reg_set(e, e->nzcv_reg, (xpsr & 0x080F0000u) | f);
    reg_set(e, e->xpsr_reg, (xpsr & 0x0FFFFFFFu) | f);
    r->skips++;
    r->turns += n;
    return n;
}

/* -- the layout of the structs above, for the test that holds ctypes to it -- */
#define F(member) HWUT_FIELD(hwut_ramp_expr, member)
static const hwut_field expr_fields[] = { F(k), F(x), F(reg), F(coef) };
#undef F
#define F(member) HWUT_FIELD(hwut_ramp_site, member)
static const hwut_field site_fields[] = {
    F(head), F(period), F(state), F(address), F(size), F(cond), F(flags_kind), F(n_out),
    F(lr), F(spare), F(where), F(a), F(b), F(out_reg), F(out),
};
#undef F
#define F(member) HWUT_FIELD(hwut_ramp, member)
static const hwut_field ramp_fields[] = {
    F(cache), F(flash_base), F(flash_size), F(requests), F(spare), F(skips), F(turns), F(sites),
};
#undef F

static const hwut_layout layouts[] = {
    HWUT_LAYOUT("RampExpr", hwut_ramp_expr, expr_fields),
    HWUT_LAYOUT("RampSite", hwut_ramp_site, site_fields),
    HWUT_LAYOUT("RampState", hwut_ramp, ramp_fields),
    { NULL, 0, 0, NULL },
};

const hwut_layout *hwut_ramp_layouts(void) { return layouts; }
