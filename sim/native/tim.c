/* A timer's compare path in C: the writes of a running up-counter's SR, CCRx and
 * DIER, taken by a native handler of the read cache (hwut_native, mmio.h) while
 * the Python model (sim/peripherals/timer.py, the reference) has handed it a
 * state C can keep: counting up within the current stretch to the next wrap,
 * the channels in output compare, no DMA request, and its interrupt raised at
 * the next compare match by the exception model's pend slot (LineAtCycle).
 *
 * Mbed's us-ticker writes SR (clear CC1IF) and CCR1 (the next event) at every
 * interrupt: each was a round trip through Python of several microseconds.
 * Here a write does what Timer.write does (the flags brought up to date, the
 * write, the interrupt output, the next event armed or disarmed: _sync,
 * _update_irq, _reschedule; and, when the armed line has come, _line_raised
 * first) on a copy of the state, and is declined (left to Python, which takes
 * the state back first) wherever Python would do something else: a flag to
 * raise, a clock event to schedule, the wrap reached, a write that changes
 * what C does not keep. The Python model takes the state back at its next
 * access (sim/timer_native.py). */
#include <stdint.h>

#include "layout.h"
#include "mmio.h"

#define CHANNELS 4
#define PENDS 4          /* counter.c hwut_exc.pend_at */
#define NONE_CYCLE UINT64_MAX
#define FOREVER (1ull << 62)   /* sim.regs.STABLE */

typedef struct {
    uint32_t active;      /* 1 while C keeps the compare path (Python sets and clears it) */
    uint32_t dirty;       /* C took a write since the state was handed over */
    uint64_t base;        /* the timer's window */
    uint64_t seen;        /* flags brought up to date to this cycle (Timer._seen) */
    /* the counting stretch from ``anchor`` (CNT = ``cnt``) to the next wrap at ``wrap``,
     * one tick every ``period`` cycles; ``top``: ARR, or the counter's maximum when
     * CNT is past ARR (Timer._stretch) */
    uint64_t anchor, period, wrap, cnt, top;
    /* the stretch after the wrap, from 0 to ``arr2`` at ``period2`` (the one after it
     * the same); ``after`` 0: the counter stops there, or is blocked */
    uint64_t arr2, period2;
    uint32_t after;
    uint32_t settled;     /* Timer._settled */
    uint32_t sr, dier, irq_pending;   /* Timer._irq_pending */
    uint32_t in_level;    /* the timer's interrupt output (an IrqOr input) */
    uint32_t line_level;  /* the NVIC line it drives alone (IrqLine.level) */
    /* masks, from the register declarations */
    uint32_t sr_flags, dier_rw, ccr_mask, irq_mask, uie, uif, ude;
    uint32_t oc;          /* channels in output compare (they match) */
    uint32_t take;        /* channels whose CCRx writes C takes (no preload) */
    uint32_t n_channels;
    uint32_t ie[CHANNELS], flag[CHANNELS];
    uint32_t ccr[CHANNELS];         /* CCRx as stored */
    uint32_t active_ccr[CHANNELS];  /* CCRx the counter compares with (_Run.ccr) */
    uint32_t sr_off, dier_off, ccr_off[CHANNELS];
    uint64_t line_when;   /* LineAtCycle.when; NONE_CYCLE: not armed */
    uint32_t slot, exc;   /* its pend slot, and the line's exception number */
    /* the exception model's (counter.c hwut_exc) */
    uint64_t *due, *pend_next, *pend_at, *systick_next;
    uint16_t *pend_exc;
    uint32_t *levels;
    uint64_t writes;      /* writes taken */
    uint64_t declined;    /* writes left to Python while active */
} hwut_tim;

enum { OP_LOWER = 1, OP_ARM, OP_CANCEL };
#define MAX_OPS 8
typedef struct {
    unsigned n;
    unsigned kind[MAX_OPS];
    uint64_t at[MAX_OPS];
} tim_ops;

static int op(tim_ops *o, unsigned kind, uint64_t at)
{
    if (o->n >= MAX_OPS)
        return 1;
    o->kind[o->n] = kind;
    o->at[o->n++] = at;
    return 0;
}

/* Channel ``ch``'s compare match in the current stretch; NONE_CYCLE if none. */
static uint64_t match_at(const hwut_tim *t, unsigned ch)
{
    uint64_t v = t->active_ccr[ch], c = t->cnt;
    if (c < v && v <= t->top)
        return t->anchor + (v - c) * t->period;
    if (v == 0)
        return t->wrap;
    return NONE_CYCLE;
}

/* Timer._sync within the stretch: the flags of the matches in (seen, now]. */
static void sync(hwut_tim *t, uint64_t now)
{
    if (now <= t->seen)
        return;
    for (unsigned ch = 0; ch < t->n_channels; ch++) {
        if (!(t->oc >> ch & 1))
            continue;
        uint64_t at = match_at(t, ch);
        if (t->seen < at && at <= now) {
            t->sr |= t->flag[ch];
            t->settled = 0;
        }
    }
    t->seen = now;
}

/* Timer._update_irq: 1 where Python would raise the line (left to it). */
static int update_irq(hwut_tim *t, tim_ops *o)
{
    uint32_t pending = t->sr & t->dier;
    if (pending == t->irq_pending)
        return 0;
    t->irq_pending = pending;
    uint32_t level = (pending & t->irq_mask) != 0;
    if (level == t->in_level)
        return 0;
    t->in_level = level;
    if (level == t->line_level)
        return 0;
    if (level)
        return 1;
    t->line_level = 0;
    return op(o, OP_LOWER, 0);
}

/* LineAtCycle.cancel */
static int cancel(hwut_tim *t, tim_ops *o)
{
    if (t->line_when == NONE_CYCLE)
        return 0;
    t->line_when = NONE_CYCLE;
    return op(o, OP_CANCEL, 0);
}

/* Timer._reschedule with next_event_cycle and _only_raises_irq: 1 where Python would
 * schedule a clock event, or the next event may be an update (left to it). */
static int reschedule(hwut_tim *t, uint64_t now, tim_ops *o)
{
    uint32_t sr = t->sr, dier = t->dier;
    if (dier & t->ude || (dier & t->uie && !(sr & t->uif)))
        return 1;
    unsigned wanted = 0;
    uint64_t when = NONE_CYCLE;
    for (unsigned ch = 0; ch < t->n_channels; ch++) {
        if (!(dier & t->ie[ch]) || sr & t->flag[ch])
            continue;
        wanted++;
        if (!(t->oc >> ch & 1))
            continue;
        uint64_t at = match_at(t, ch);
        if (at > now && at < when)
            when = at;
    }
    if (wanted && when == NONE_CYCLE && t->after) {   /* the first full period */
        for (unsigned ch = 0; ch < t->n_channels; ch++) {
            if (!(dier & t->ie[ch]) || sr & t->flag[ch] || !(t->oc >> ch & 1))
                continue;
            uint64_t v = t->active_ccr[ch], tick;
            if (v > 0 && v <= t->arr2)
                tick = v;
            else if (v == 0)
                tick = t->arr2 + 1;
            else
                continue;
            uint64_t at = t->wrap + tick * t->period2;
            if (at < when)
                when = at;
        }
    }
    if (when != NONE_CYCLE && wanted == 1 && !t->line_level) {   /* LineAtCycle.arm */
        if (t->line_when != when) {
            t->line_when = when;
            return op(o, OP_ARM, when);
        }
        return 0;
    }
    if (cancel(t, o))
        return 1;
    return when != NONE_CYCLE;   /* a clock event: Python's */
}

/* Timer._on_event after LineAtCycle.fired */
static int on_event(hwut_tim *t, uint64_t now, tim_ops *o)
{
    sync(t, now);
    if (update_irq(t, o) || reschedule(t, now, o))
        return 1;
    t->settled = 1;
    return 0;
}

/* What the ops decided do to the exception model, as ExceptionModel.set_irq_level,
 * raise_line_at and cancel_line do. */
static void apply(hwut_tim *t, const tim_ops *o)
{
    for (unsigned i = 0; i < o->n; i++) {
        switch (o->kind[i]) {
        case OP_LOWER:
            t->levels[t->exc / 32] &= ~(1u << (t->exc % 32));
            break;
        case OP_ARM:
            t->pend_exc[t->slot] = (uint16_t)t->exc;
            t->pend_at[t->slot] = o->at[i];
            if (o->at[i] < *t->pend_next) {
                *t->pend_next = o->at[i];
                *t->due = *t->pend_next < *t->systick_next ? *t->pend_next : *t->systick_next;
            }
            break;
        case OP_CANCEL:
            if (t->pend_at[t->slot] == NONE_CYCLE)
                break;
            t->pend_at[t->slot] = NONE_CYCLE;
            uint64_t next = NONE_CYCLE;
            for (unsigned s = 0; s < PENDS; s++)
                if (t->pend_at[s] < next)
                    next = t->pend_at[s];
            *t->pend_next = next;
            *t->due = next < *t->systick_next ? next : *t->systick_next;
            break;
        }
    }
}

/* What SR reads from ``now``: the word as it is until the next match or wrap; when
 * that is one channel's match before the wrap, with its flag from there to the
 * event after (Timer.read_backs). */
static void fill_sr(const hwut_tim *t, hwut_mmio *c, uint64_t now)
{
    uint64_t first = t->wrap, second = NONE_CYCLE;
    unsigned at_first = 0;
    uint32_t flag = 0;
    for (unsigned ch = 0; ch < t->n_channels; ch++) {
        if (!(t->oc >> ch & 1))
            continue;
        uint64_t at = match_at(t, ch);
        if (at <= now || at == NONE_CYCLE)
            continue;
        if (at < first) {
            second = first;
            first = at;
            at_first = 1;
            flag = t->flag[ch];
        } else if (at == first) {
            at_first++;
        } else if (at < second) {
            second = at;
        }
    }
    uint64_t address = t->base + t->sr_off;
    if (first < t->wrap && at_first == 1 && second != NONE_CYCLE)
        hwut_mmio_fill_step(c, address, 4, t->sr, first, t->sr | flag, second);
    else
        hwut_mmio_fill(c, address, 4, t->sr, first, 0, 0);
}

/* Forget what the cache holds of ``address``'s word, and every quiet write of this
 * timer (declared by Python for a state C has since changed). */
static void forget(const hwut_tim *t, hwut_mmio *c, uint64_t address)
{
    hwut_mmio_clear_words(c, address, 1);
    for (unsigned i = 0; i < QUIET; i++)
        if (c->quiet[i].address >= t->base && c->quiet[i].address < t->base + 0x400)
            c->quiet[i].valid_until = 0;
}

int hwut_tim_write(void *state, hwut_mmio *c, uint64_t address, uint32_t size, uint64_t value)
{
    hwut_tim *t = state;
    if (!t->active)
        return 0;
    uint64_t now = *c->cycles;
    uint32_t off = (uint32_t)(address - t->base);
    int ch = -1;
    if (size != 4 || address & 3 || now >= t->wrap)
        goto declined;
    if (off != t->sr_off && off != t->dier_off) {
        for (unsigned i = 0; i < t->n_channels; i++)
            if (t->take >> i & 1 && off == t->ccr_off[i])
                ch = (int)i;
        if (ch < 0)
            goto declined;
    }
    hwut_tim n = *t;
    tim_ops o = { 0 };
    if (n.line_when != NONE_CYCLE && now >= n.line_when) {   /* Timer._catch_up_line */
        if (t->pend_at[t->slot] != NONE_CYCLE || *t->pend_next <= now)
            goto declined;   /* due but not raised yet: pends_catch_up's, in Python */
        n.line_when = NONE_CYCLE;   /* LineAtCycle.fired */
        n.line_level = 1;
        if (on_event(&n, now, &o))
            goto declined;
    }
    sync(&n, now);
    uint32_t old, new;
    int counting = 0;
    if (off == t->sr_off) {
        old = n.sr;
        new = n.sr = old & ((uint32_t)value | ~n.sr_flags);
    } else if (off == t->dier_off) {
        old = n.dier;
        new = (old & ~n.dier_rw) | ((uint32_t)value & n.dier_rw);
        if (new != old)
            goto declined;
    } else {
        old = n.ccr[ch];
        new = n.ccr[ch] = (uint32_t)value & n.ccr_mask;
        counting = n.active_ccr[ch] != new;
        n.active_ccr[ch] = new;
    }
    if (counting || !n.settled || new != old) {   /* Timer.write's early return, else: */
        if (update_irq(&n, &o) || reschedule(&n, now, &o))
            goto declined;
        n.settled = 1;
    }
    apply(&n, &o);
    n.dirty = 1;
    n.writes++;
    *t = n;
    forget(t, c, t->base + t->sr_off);
    if (ch >= 0) {
        forget(t, c, address);
        hwut_mmio_fill(c, address, 4, t->ccr[ch], FOREVER, 0, 0);
    }
    fill_sr(t, c, now);
    return 1;
declined:
    t->declined++;
    return 0;
}

/* -- the layout of the struct above, for the test that holds ctypes to it -- */
#define F(member) HWUT_FIELD(hwut_tim, member)
static const hwut_field tim_fields[] = {
    F(active), F(dirty), F(base), F(seen), F(anchor), F(period), F(wrap), F(cnt), F(top),
    F(arr2), F(period2), F(after), F(settled), F(sr), F(dier), F(irq_pending), F(in_level),
    F(line_level), F(sr_flags), F(dier_rw), F(ccr_mask), F(irq_mask), F(uie), F(uif), F(ude),
    F(oc), F(take), F(n_channels), F(ie), F(flag), F(ccr), F(active_ccr), F(sr_off),
    F(dier_off), F(ccr_off), F(line_when), F(slot), F(exc), F(due), F(pend_next), F(pend_at),
    F(systick_next), F(pend_exc), F(levels), F(writes), F(declined),
};
#undef F

static const hwut_layout layouts[] = {
    HWUT_LAYOUT("TimerState", hwut_tim, tim_fields),
    { NULL, 0, 0, NULL },
};

const hwut_layout *hwut_tim_layouts(void) { return layouts; }
