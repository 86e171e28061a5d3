/* The core's per-instruction hook, in C because Python there would cost ~100x.
 *
 * It counts instructions (virtual time) and stops the engine at the limit the
 * run loop sets. With ``fast`` set it also does, without leaving the engine,
 * what would otherwise cost a round trip through Python per interrupt: SysTick
 * wraps, exception entry, and exception return with tail-chaining. The rules
 * are those of sim/core/exceptions.py, which holds the same state in this
 * struct and is the reference: without the compiled module, or with ``fast``
 * clear, Python does all of it with the same results. Anything unusual (a bad
 * vector, a bad EXC_RETURN) is left to Python. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "layout.h"

typedef int (*stop_fn)(void *uc);
typedef int (*reg_fn)(void *uc, int regid, void *value);
typedef int (*mem_read_fn)(void *uc, uint64_t address, void *bytes, uint64_t size);
typedef int (*mem_write_fn)(void *uc, uint64_t address, const void *bytes, uint64_t size);
typedef int (*ctl_fn)(void *uc, int control, ...);
typedef int (*batch_fn)(void *uc, const int *regs, void **values, int count);

enum { R_R0, R_R1, R_R2, R_R3, R_R12, R_LR, R_PC, R_SP, R_MSP, R_PSP, R_CONTROL, R_XPSR,
       R_NZCVQG, R_IPSR, R_BASEPRI, R_PRIMASK, R_FAULTMASK, R_FPSCR, R_S0, R_R4 = R_S0 + 16,
       R_R5, R_R6, R_R7, R_R8, R_R9, R_R10, R_R11, R_CPSR, R_COUNT };

#define WORDS 4
#define PENDS 4   /* interrupt lines models can have raised here (hwut_exc.pend_at) */
#define NONE_CYCLE UINT64_MAX
#define HARDFAULT 3
#define MEMMANAGE 4
#define BUSFAULT 5
#define USAGEFAULT 6
#define SYSTICK 15
#define IRQ_BASE 16
#define CONTROL_NPRIV 1u
#define CONTROL_SPSEL 2u
#define CONTROL_FPCA 4u
#define CONTROL_SFPA 8u

#define BLOCK_SLOTS 4096
#define BLOCK_MARKED 1u      /* holds an instruction that must run counted */
#define BLOCK_CALL 2u        /* ends with BL or BLX */
#define BLOCK_MEMORY 4u      /* has a load or store */
#define BLOCK_STORE 8u       /* writes memory (a store, PUSH, STM, STREX ...) */
#define BLOCK_FP 16u         /* has a coprocessor (FPU) instruction */
#define BLOCK_LEAF 32u       /* a whole leaf function: ends with BX LR, nothing else reads LR */
#define BLOCK_STICKY 64u     /* runs in the view it is reached in (see hwut_block_exact) */
#define BLOCK_QUICK 128u     /* canonical precharged flash, not marked (hwut_block_exact's common case) */
#define BOUNCE_INSNS 64u     /* back to the alias this soon after leaving it: a bounce */
#define MAX_DENY 16
#define XPSR_IT 0x0600FC00u
#define FLUSH_AFTER 256u     /* blocks run counted before MMIO is flushed out of the TLB */
#define IDLE_MAX_PERIOD 256u /* longest loop turn (instructions) the idle skip looks for */
#define IDLE_MAX_BACKOFF 8192u
#define IDLE_CHURN 64u       /* candidates dropped for stores in a row before backing off */
#define IDLE_MIN_TURNS 8u    /* fewer turns to the next event: not worth comparing registers */
/* Fewer instructions than this to the next event: running them costs less than the
 * look (a snapshot turn and a compare of IDLE_REGS registers). A 1 MHz SysTick
 * leaves about 70 between interrupts: skipping there made it slower. */
#define IDLE_MIN_INSNS 256u
#define IDLE_REGS 22
#define SKIP_SLOTS 256
#define REGIONS 4            /* counted regions (see hwut_regions) */
#define SITES 16             /* recent switch sites a region is drawn around */
#define SWITCH_WINDOW 256u   /* switches between looks at whether precharging pays */
#define SWITCH_COST 48u      /* a switch costs what precharging gains on about this many instructions */
#define REGION_SPAN 0x800u   /* widest region asked for at once (bytes) */

/* Instruction counts of translated blocks, by address. */
typedef struct {
    uint64_t address;
    uint32_t size, insns, flags, spare;
} hwut_block_slot;

typedef struct {
    uint64_t paddr;
    int perms;
} hwut_tlb_entry;   /* uc_tlb_entry */

/* What the hooks call of Unicorn, and Unicorn's constants they need: all set by
 * Python (sim/counter.py) from the library and its bindings, none hard-coded here. */
typedef struct {
    stop_fn stop;
    reg_fn reg_read, reg_write;
    mem_read_fn mem_read;
    mem_write_fn mem_write;
    ctl_fn ctl;
    /* uc_reg_read_batch, uc_reg_write_batch: one call for a handful of registers
     * (an exception entry or return moves a dozen; each call has its own overhead) */
    batch_fn reg_read_batch, reg_write_batch;
    int32_t regs[R_COUNT];   /* register ids, in the order of the R_ names */
    int32_t mem_fetch;       /* uc_mem_type UC_MEM_FETCH */
    int32_t prot_all;        /* UC_PROT_ALL */
    int32_t ctl_tlb_flush;   /* UC_CTL_WRITE(UC_CTL_TLB_FLUSH, 0) */
    int32_t ctl_tb_remove;   /* UC_CTL_WRITE(UC_CTL_TB_REMOVE_CACHE, 2) */
    uint32_t intr_exc_exit;  /* the interrupt number of an exception return */
    uint32_t spare;
} hwut_api;

/* The exception model's state; sim/core/exceptions.py holds the same in this
 * struct and is the reference. */
typedef struct {
    uint64_t due;            /* the earlier of systick_next and pend_next (one load per instruction) */
    uint64_t systick_next;   /* cycle at which SysTick next pends, NONE_CYCLE if never */
    uint64_t systick_period;
    uint32_t pending[WORDS], active[WORDS], enabled[WORDS], levels[WORDS];
    int32_t prio[WORDS * 32];
    uint32_t n_exc, prigroup, vtor, shcsr_enables, priority_mask;
    uint32_t event_register, sevonpend, spare;
    uint64_t entries, exits;
    /* Interrupt lines that models raise at a known cycle, raised here (``pends_due``)
     * so that the engine need not stop for them (sim/core/exceptions.py, native pends) */
    uint64_t pend_next;           /* the earliest of pend_at */
    uint64_t pend_at[PENDS];      /* NONE_CYCLE: the slot is free, or it fired */
    uint16_t pend_exc[PENDS];     /* the exception number of the line (16 bits: the
                                   * struct grows by 64 bytes, what follows keeps its
                                   * alignment to cache lines) */
    uint64_t pends_fired;
} hwut_exc;

/* Precharging (exact timing, see hwut_block_exact; sim/precharge.py). */
typedef struct {
    uint64_t quick_start;    /* the count before the precharged block now running */
    uint32_t quick_pc, quick_size, quick;   /* that block; quick is 1 while it runs */
    uint32_t flash_base, flash_size;
    uint32_t mmio_in_tlb, call_return;
    uint32_t tlb_streak;     /* blocks run counted since MMIO entered the TLB */
    uint32_t it_stale, it_lo, it_hi;   /* see hwut_tlb_fill */
    uint32_t n_deny;
    uint64_t deny_lo[MAX_DENY], deny_hi[MAX_DENY];   /* MMIO: [lo, hi) */
    const uint8_t *marks;    /* one bit per flash half-word: run counted */
    uint64_t precharged, denials;
    /* profile counters (bench/bench_sim.py): view switches, each a PC write that
     * ends the engine's chained run, TLB flushes, IT-skip memory reads */
    uint64_t to_canonical, to_alias, tlb_flushes, skip_reads;
    uint64_t precharged_insns;   /* instructions counted per block (the gain of precharging) */
    uint32_t suspended, spare;   /* 1: every view counted per instruction (see sim/precharge.py) */
    uint64_t switch_count;       /* the count when an alias block last switched to canonical */
    uint32_t switch_slot;        /* that block's slot + 1 (0: none) */
    uint32_t prev_slot;          /* the slot + 1 of the precharged block that ran last */
    uint32_t alias_lr;           /* a return address left at the alias for a leaf (0: none) */
    uint32_t spare2;
} hwut_precharge;

/* The idle-loop skip (see idle_visit). */
typedef struct {
    uint64_t head_count;     /* the count when the head block last started */
    uint64_t horizon;        /* MMIO reads of this turn, all from the read cache, hold until then; 0: one was not */
    uint64_t turns, skips;   /* profile: loop turns skipped, and how many skips */
    uint32_t enabled, head, period, flags;   /* flags: BLOCK_ bits of this turn's blocks */
    uint32_t wait, backoff, snap_valid, churn;   /* churn: candidates dropped for a store */
    uint32_t flash_base, flash_size;   /* code that changes only through the FLASH interface */
    uint32_t snap[IDLE_REGS];   /* the registers at the head, a turn ago */
    void *ramp;              /* the ramp skip (rampskip.c; sim/rampskip.py), NULL: off */
} hwut_idle;

/* IT-skipped instruction counts by address (see ``skipped``). */
typedef struct {
    uint32_t from;
    uint16_t bytes, insns;
} hwut_skip_slot;

/* Counted regions: flash code that runs counted per instruction in whichever
 * view it is reached, the canonical one included (Python adds a code hook over
 * each, sim/precharge.py). Where precharged code and counted code call each
 * other in a tight loop, the switches of view cost more than precharging gains
 * (each switch ends the engine's chained run): a non-leaf function called from
 * code that stays at the alias returns to the canonical address (its return
 * address is on the stack, which firmware may read: it must be canonical), and
 * a switch follows every return. Counting the loop in place, at either address,
 * is exactly what counting every instruction does: no switch, nothing firmware
 * could tell. Every SWITCH_WINDOW switches, if precharging gained less than the
 * switches cost, a region around the recent switch sites is asked for. */
typedef struct {
    uint32_t lo[REGIONS], hi[REGIONS];   /* canonical [lo, hi), hooked; set by Python */
    uint32_t n;                          /* regions in use */
    uint32_t want_lo, want_hi;           /* a region asked for (want_hi 0: none) */
    uint32_t site_pos;
    uint32_t site_lo[SITES], site_hi[SITES];   /* canonical extents of recent switches' blocks */
    uint32_t window_switches, spare;
    uint64_t window_insns;               /* precharged_insns at the last look */
    uint64_t asked;                      /* profile: regions asked for */
} hwut_regions;

/* Memories backed by host buffers (sim/bus.py maps every one so, at each of its
 * addresses, for the machine's life): an exception's vector and the frame it
 * unstacks are read straight from them, which is what uc_mem_read returns,
 * without its region look-ups (a third of an exception's cost at a 1 MHz
 * SysTick). Writes still go through the engine: it drops translated code that a
 * write overwrites. */
#define DIRECT 8
typedef struct {
    uint32_t n, spare;
    uint32_t base[DIRECT], size[DIRECT];
    const uint8_t *host[DIRECT];
} hwut_direct;

/* Sites: instructions of the image that Python looks at before they run (a trap's
 * check: sim/traps.py) or right after they are counted (an unmask, SEV:
 * sim/unmask.py). One bit per half-word of each memory that holds one, in every
 * view of that memory (flash at 0x08000000 and its alias at 0 share one map),
 * looked at by hwut_count after it counted the instruction: where a code hook
 * on the site would have run, right after the counter's, without one code hook
 * per site (the engine walks its list of code hooks at every hooked
 * instruction, and a lone hook it calls directly). sim/sites.py fills it. */
#define SITE_RANGES 8
typedef void (*site_fn)(void *uc, uint64_t address, uint32_t size, void *user);
typedef struct {
    uint32_t n;                  /* ranges in use (hwut_cpu.sites_end: 0 when none) */
    uint32_t block_start;        /* where the translated block now running began */
    uint32_t base[SITE_RANGES], size[SITE_RANGES];
    const uint8_t *bits[SITE_RANGES];   /* bit (offset >> 1) & 7 of byte offset >> 4 */
    site_fn call;                /* Python (sim/sites.py): the site's callbacks */
    void *user;
    uint64_t fired;              /* profile: calls into Python */
} hwut_sites;

typedef struct {
    uint64_t count;          /* instructions executed (plus cycles slept) */
    uint64_t limit;          /* stop before executing instruction number limit+1 */
    uint32_t fast, last_intno;
    uint32_t next_pc, block_end;   /* where the next instruction and this block end */
    uint32_t precharge;            /* precharging on (see hwut_block_exact) */
    uint32_t sites_end;            /* every site lies below this address, 0: none (hwut_sites;
                                    * here, in the count's cache line: hwut_count looks at it
                                    * for every instruction) */
    hwut_exc exc;            /* first: SysTick's next wrap shares a cache line with the count */
    hwut_precharge pre;
    hwut_api api;
    hwut_idle idle;
    hwut_block_slot blocks[BLOCK_SLOTS];   /* per machine: images differ */
    hwut_skip_slot skips[SKIP_SLOTS];      /* cleared with blocks: code changed */
    hwut_regions regions;
    hwut_direct direct;
    hwut_sites sites;
} hwut_cpu;

static int bit(const uint32_t *set, unsigned n) { return (set[n >> 5] >> (n & 31)) & 1u; }
static void set_bit(uint32_t *set, unsigned n) { set[n >> 5] |= 1u << (n & 31); }
static void clear_bit(uint32_t *set, unsigned n) { set[n >> 5] &= ~(1u << (n & 31)); }

static uint32_t rd(hwut_cpu *c, void *uc, int r)
{
    uint64_t v = 0;
    c->api.reg_read(uc, c->api.regs[r], &v);
    return (uint32_t)v;
}

static void wr(hwut_cpu *c, void *uc, int r, uint32_t value)
{
    uint64_t v = value;
    c->api.reg_write(uc, c->api.regs[r], &v);
}

#define BATCH_MAX 32

/* uc_mem_read, from the host buffer when a memory holds all of [address, +size). */
static int mem_get(hwut_cpu *c, void *uc, uint32_t address, void *out, uint32_t size)
{
    for (uint32_t i = 0; i < c->direct.n && i < DIRECT; i++) {
        uint32_t offset = address - c->direct.base[i];
        if (offset < c->direct.size[i] && c->direct.size[i] - offset >= size) {
            memcpy(out, c->direct.host[i] + offset, size);
            return 0;
        }
    }
    return c->api.mem_read(uc, address, out, size);
}

/* Read ``n`` registers (R_ names) in one call, as ``rd`` each. */
static void rd_n(hwut_cpu *c, void *uc, const int *which, uint32_t *out, int n)
{
    int ids[BATCH_MAX];
    uint64_t v[BATCH_MAX];
    void *p[BATCH_MAX];
    for (int i = 0; i < n; i++) {
        ids[i] = c->api.regs[which[i]];
        v[i] = 0;
        p[i] = &v[i];
    }
    c->api.reg_read_batch(uc, ids, p, n);
    for (int i = 0; i < n; i++)
        out[i] = (uint32_t)v[i];
}

/* Write ``n`` registers in one call, in order: the same as ``wr`` each in turn
 * (a write of CONTROL switches the banked SP before the writes after it). Never
 * PC: the library's batch write (2.1) does not mark the PC as set by the host,
 * and the engine would overwrite it with its own on the way out (``wr`` does). */
static void wr_n(hwut_cpu *c, void *uc, const int *which, const uint32_t *values, int n)
{
    int ids[BATCH_MAX];
    uint64_t v[BATCH_MAX];
    void *p[BATCH_MAX];
    for (int i = 0; i < n; i++) {
        ids[i] = c->api.regs[which[i]];
        v[i] = values[i];
        p[i] = &v[i];
    }
    c->api.reg_write_batch(uc, ids, p, n);
}

/* The engine caches privilege (from IPSR and CONTROL.nPRIV) for what it translates and
 * refreshes it on the firmware's own MSR and CPS, not on our register writes: entering
 * a handler from unprivileged code, or returning to it, would leave the handler's CPS
 * and MSR ignored, or unprivileged code privileged. Rewriting CPSR with its own value
 * refreshes the cache (core/exceptions.py does the same). */
static void refresh_privilege(hwut_cpu *c, void *uc)
{
    wr(c, uc, R_CPSR, rd(c, uc, R_CPSR));
}

static int group(const hwut_cpu *c, int prio)
{
    if (prio < 0)
        return prio;
    return prio & (0xFF << (c->exc.prigroup + 1)) & 0xFF;
}

static int usable(const hwut_cpu *c, unsigned exc)
{
    if (exc >= IRQ_BASE)
        return bit(c->exc.enabled, exc);
    if (exc == MEMMANAGE || exc == BUSFAULT || exc == USAGEFAULT)
        return (c->exc.shcsr_enables >> (16 + exc - MEMMANAGE)) & 1u;
    return 1;
}

static int highest_pending(const hwut_cpu *c)
{
    int best = -1, best_prio = 1 << 16;
    for (unsigned w = 0; w < WORDS; w++) {
        uint32_t bits = c->exc.pending[w];
        while (bits) {
            unsigned exc = 32 * w + (unsigned)__builtin_ctz(bits);
            bits &= bits - 1;
            if (exc < c->exc.n_exc && usable(c, exc) && c->exc.prio[exc] < best_prio) {
                best = (int)exc;
                best_prio = c->exc.prio[exc];
            }
        }
    }
    return best;
}

static int active_priority(const hwut_cpu *c)
{
    int best = 256;
    for (unsigned w = 0; w < WORDS; w++) {
        uint32_t bits = c->exc.active[w];
        while (bits) {
            unsigned exc = 32 * w + (unsigned)__builtin_ctz(bits);
            bits &= bits - 1;
            int g = group(c, c->exc.prio[exc]);
            if (g < best)
                best = g;
        }
    }
    return best;
}

static int execution_priority(hwut_cpu *c, void *uc)
{
    int best = active_priority(c);
    static const int masks[3] = { R_BASEPRI, R_PRIMASK, R_FAULTMASK };
    uint32_t m[3];
    rd_n(c, uc, masks, m, 3);
    uint32_t basepri = m[0] & c->exc.priority_mask;
    if (basepri && group(c, (int)basepri) < best)
        best = group(c, (int)basepri);
    if ((m[1] & 1u) && best > 0)
        best = 0;
    if ((m[2] & 1u) && best > -1)
        best = -1;
    return best;
}

/* The exception to take now, or -1. */
static int next_to_take(hwut_cpu *c, void *uc)
{
    int exc = highest_pending(c);
    if (exc < 0)
        return -1;
    if (group(c, c->exc.prio[exc]) < execution_priority(c, uc))
        return exc;
    return -1;
}

/* Stack the frame and start the handler; 0 on success, -1 to leave it to Python. */
static int enter(hwut_cpu *c, void *uc, unsigned exc, uint32_t return_address)
{
    static const int state[9] = { R_CONTROL, R_XPSR, R_SP, R_R0, R_R1, R_R2, R_R3, R_R12, R_LR };
    uint32_t now[9];
    rd_n(c, uc, state, now, 9);
    uint32_t control = now[0], xpsr = now[1], sp = now[2];
    uint32_t vector;
    if (mem_get(c, uc, (c->exc.vtor & ~0x7Fu) + 4u * exc, &vector, 4) || !(vector & 1u))
        return -1;   /* Python raises the lockup with its message */
    int handler_mode = (xpsr & 0x1FFu) != 0;
    int on_psp = !handler_mode && (control & CONTROL_SPSEL);
    int extended = (control & CONTROL_FPCA) != 0;
    uint32_t size = extended ? 0x68u : 0x20u;
    uint32_t frame = (sp - size) & ~7u;
    uint32_t realigned = (sp - size) & 4u;
    uint32_t words[26];
    for (int i = 0; i < 6; i++)
        words[i] = now[3 + i];
    if (c->pre.alias_lr && words[5] == c->pre.alias_lr)
        words[5] += c->pre.flash_base;   /* a leaf's return address: firmware sees one flash */
    if (c->precharge && return_address < c->pre.flash_size)
        return_address += c->pre.flash_base;   /* code runs counted at the alias; firmware sees one flash */
    words[6] = return_address & ~1u;
    words[7] = (xpsr & ~(1u << 9)) | (1u << 24) | (realigned ? (1u << 9) : 0u);
    if (extended) {
        static const int fp[17] = { R_S0, R_S0 + 1, R_S0 + 2, R_S0 + 3, R_S0 + 4, R_S0 + 5,
                                    R_S0 + 6, R_S0 + 7, R_S0 + 8, R_S0 + 9, R_S0 + 10,
                                    R_S0 + 11, R_S0 + 12, R_S0 + 13, R_S0 + 14, R_S0 + 15,
                                    R_FPSCR };
        rd_n(c, uc, fp, words + 8, 17);
        words[25] = 0;
    }
    if (c->api.mem_write(uc, frame, words, size))
        return -1;
    uint32_t exc_return = extended ? 0xFFFFFFE1u : 0xFFFFFFF1u;
    if (!handler_mode) {
        exc_return |= 0x8u;
        if (on_psp)
            exc_return |= 0x4u;
    }
    int which[4] = { R_XPSR, on_psp ? R_PSP : R_SP, R_CONTROL, R_LR };
    uint32_t values[4] = { (xpsr & 0xF80F0000u) | (1u << 24) | exc, frame,
                           control & CONTROL_NPRIV, exc_return };
    if (!handler_mode && (control & CONTROL_NPRIV)) {
        wr_n(c, uc, which, values, 3);
        refresh_privilege(c, uc);   /* after CONTROL, before LR and PC, as always */
        wr(c, uc, R_LR, exc_return);
    } else {
        wr_n(c, uc, which, values, 4);
    }
    wr(c, uc, R_PC, vector | 1u);
    clear_bit(c->exc.pending, exc);
    set_bit(c->exc.active, exc);
    c->exc.event_register = 1;
    c->exc.entries++;
    c->idle.period = 0;   /* a loop's turn is only what the loop runs */
    return 0;
}

/* Undo ``enter``; 0 on success, -1 to leave it to Python (it raises the fault). */
static int exit_exception(hwut_cpu *c, void *uc, uint32_t exc_return)
{
    static const int state[4] = { R_IPSR, R_CONTROL, R_MSP, R_PSP };
    uint32_t now[4];
    rd_n(c, uc, state, now, 4);
    uint32_t ipsr = now[0] & 0x1FFu;
    uint32_t kind = exc_return & 0xFu;
    if (ipsr == 0 || (kind != 0x1u && kind != 0x9u && kind != 0xDu) || !bit(c->exc.active, ipsr))
        return -1;
    uint32_t control = now[1];
    int to_thread = (exc_return & 0x8u) != 0;
    int use_psp = (exc_return & 0x4u) != 0;
    int extended = !(exc_return & 0x10u);
    uint32_t frame = use_psp ? now[3] : now[2];
    uint32_t size = extended ? 0x68u : 0x20u;
    uint32_t words[26];
    if (mem_get(c, uc, frame, words, size))
        return -1;
    clear_bit(c->exc.active, ipsr);
    if (ipsr >= IRQ_BASE && bit(c->exc.levels, ipsr))
        set_bit(c->exc.pending, ipsr);
    uint32_t pc = words[6], xpsr = words[7];
    uint32_t sp = frame + size + ((xpsr & (1u << 9)) ? 4u : 0u);
    control &= CONTROL_NPRIV;
    if (to_thread && use_psp)
        control |= CONTROL_SPSEL;
    if (extended)
        control |= CONTROL_FPCA | CONTROL_SFPA;
    uint32_t stacked_ipsr = to_thread ? 0u : (xpsr & 0x1FFu);
    /* one batch, in the order the registers must be written */
    int which[BATCH_MAX];
    uint32_t values[BATCH_MAX];
    int n = 0;
    static const int basic[6] = { R_R0, R_R1, R_R2, R_R3, R_R12, R_LR };
    for (int i = 0; i < 6; i++, n++) {
        which[n] = basic[i];
        values[n] = words[i];
    }
    if (extended)
        for (int i = 0; i < 16; i++, n++) {
            which[n] = R_S0 + i;
            values[n] = words[8 + i];
        }
    which[n] = R_CONTROL;
    values[n++] = control;
    if (extended) {
        which[n] = R_FPSCR;
        values[n++] = words[24];
    }
    which[n] = use_psp ? R_PSP : R_MSP;
    values[n++] = sp;
    which[n] = R_NZCVQG;
    values[n++] = xpsr & 0xF80F0000u;
    which[n] = R_XPSR;
    values[n++] = (xpsr & 0xFE0FFC00u & ~(1u << 9)) | stacked_ipsr | (1u << 24);
    wr_n(c, uc, which, values, n);
    wr(c, uc, R_PC, pc | 1u);
    if (to_thread && (control & CONTROL_NPRIV))
        refresh_privilege(c, uc);
    c->exc.event_register = 1;
    c->exc.exits++;
    c->idle.period = 0;
    return 0;
}

/* Pend the SysTick wrap that is due at ``count``, as sim/core/systick.py does. */
static void systick_due(hwut_cpu *c)
{
    set_bit(c->exc.pending, SYSTICK);
    if (c->exc.sevonpend)
        c->exc.event_register = 1;
    c->exc.systick_next = c->exc.systick_period ? c->exc.systick_next + c->exc.systick_period : NONE_CYCLE;
    c->exc.due = c->exc.pend_next < c->exc.systick_next ? c->exc.pend_next : c->exc.systick_next;
}

/* Raise the interrupt lines due at ``count`` as ExceptionModel.raise_line does (the
 * reference, pends_catch_up): a line already up changes nothing; else it goes up
 * and its interrupt pends (SEVONPEND: an event for WFE). */
static void lines_due(hwut_cpu *c)
{
    hwut_exc *e = &c->exc;
    uint64_t next = NONE_CYCLE;
    for (unsigned i = 0; i < PENDS; i++) {
        if (e->pend_at[i] > c->count) {
            if (e->pend_at[i] < next)
                next = e->pend_at[i];
            continue;
        }
        e->pend_at[i] = NONE_CYCLE;
        e->pends_fired++;
        unsigned exc = e->pend_exc[i];
        if (bit(e->levels, exc))
            continue;
        set_bit(e->levels, exc);
        if (!bit(e->pending, exc)) {
            set_bit(e->pending, exc);
            if (e->sevonpend)
                e->event_register = 1;
        }
    }
    e->pend_next = next;
    e->due = next < e->systick_next ? next : e->systick_next;
}

/* The next cycle at which something pends by itself: SysTick's wrap, a model's line. */
static uint64_t due_next(const hwut_cpu *c)
{
    return c->exc.due;
}

/* SysTick wrapped, or a model's line went up, before the code at ``address``: take
 * what may preempt now, else stop so the run loop decides (a mask or an active
 * handler holds it). */
static void systick_wrap(hwut_cpu *c, void *uc, uint64_t address)
{
    if (c->count >= c->exc.systick_next)
        systick_due(c);
    if (c->count >= c->exc.pend_next)
        lines_due(c);
    int exc = next_to_take(c, uc);
    if (exc >= 0 && enter(c, uc, (unsigned)exc, (uint32_t)address) == 0)
        return;
    c->limit = c->count;
    c->api.stop(uc);
}

/* Does a Thumb instruction starting with this half-word take two (0b11101, 0b1111x)? */
static int wide(uint16_t hw) { return (hw >> 11) >= 0x1D; }

/* Is the flash half-word at ``address`` (either view) marked to run counted? */
static int marked(const hwut_cpu *c, uint64_t address)
{
    uint64_t offset = address - c->pre.flash_base;
    if (address < c->pre.flash_size)
        offset = address;   /* the alias */
    else if (offset >= c->pre.flash_size)
        return 0;
    return c->pre.marks && ((c->pre.marks[offset >> 4] >> ((offset >> 1) & 7)) & 1u);
}

/* Does the Thumb instruction whose first half-word is ``hw1`` access memory? */
static int accesses_memory(uint16_t hw1)
{
    if (wide(hw1))   /* 32-bit: LDM/STM/LDRD/STRD/TBB, loads/stores, VLDR/VSTR */
        return (hw1 & 0xFE00u) == 0xE800u || (hw1 & 0xFE00u) == 0xF800u
               || (hw1 & 0xEE00u) == 0xEC00u;
    return (hw1 >= 0x4800u && hw1 < 0xA000u)    /* literal, register and immediate forms */
           || (hw1 & 0xF600u) == 0xB400u         /* PUSH, POP */
           || (hw1 & 0xF000u) == 0xC000u;        /* LDM, STM */
}

/* Does the Thumb instruction whose first half-word is ``hw1`` write memory? (Only
 * for the idle skip: a loop that stores is never skipped; erring towards yes.) */
static int writes_memory(uint16_t hw1)
{
    if (wide(hw1))   /* LDM/STM, LDRD/STRD, LDREX/STREX, single loads/stores: L is bit 4 */
        return ((hw1 & 0xFE00u) == 0xE800u || (hw1 & 0xFE00u) == 0xF800u) && !(hw1 & 0x10u);
    return ((hw1 & 0xF800u) == 0x5000u && (hw1 & 0x0600u) != 0x0600u)   /* STR/STRH/STRB (reg) */
           || (hw1 & 0xE800u) == 0x6000u     /* STR, STRB (imm) */
           || (hw1 & 0xF800u) == 0x8000u     /* STRH (imm) */
           || (hw1 & 0xF800u) == 0x9000u     /* STR (SP) */
           || (hw1 & 0xFE00u) == 0xB400u     /* PUSH */
           || (hw1 & 0xF800u) == 0xC000u;    /* STM */
}

/* The decoder of the native hooks (sim/thumb.py is Python's; tests/sim/test_thumb.py
 * holds the two to the same answers): the instructions in ``halfwords`` half-words
 * of code at ``address``, and the BLOCK_ flags they earn. ``c`` gives the marks;
 * without it none is looked at. */
static int touches_lr(const uint16_t *code, uint32_t i, uint32_t halfwords)
{
    uint16_t hw = code[i];
    if (wide(hw)) {   /* any register field that could name r14, and LDM/STM lists with it */
        uint16_t hw2 = i + 1 < halfwords ? code[i + 1] : 0xEEEEu;
        return (hw & 0xFu) == 0xEu || (hw2 >> 12) == 0xEu || ((hw2 >> 8) & 0xFu) == 0xEu
               || (hw2 & 0xFu) == 0xEu
               || ((hw & 0xFE40u) == 0xE800u && (hw2 & 0x4000u));   /* PUSH.W/POP.W {.., lr} */
    }
    /* 16-bit: only these name r14. PUSH without LR (0xB4xx) and POP (r0-r7, PC)
     * leave it alone (A5.2: PUSH T1 is 1011 010M, M being LR; POP T1 1011 110P). */
    return (hw >= 0x4400u && hw < 0x4800u)    /* high-register ADD/CMP/MOV, BX, BLX */
           || (hw & 0xFF00u) == 0xB500u;       /* PUSH {.., lr} */
}

static uint32_t decode(const hwut_cpu *c, uint64_t address, const uint16_t *code,
                       uint32_t halfwords, uint32_t *flags_out)
{
    uint32_t n = 0, flags = BLOCK_LEAF, last = 0;
    unsigned in_it = 0;   /* instructions of an IT block still to come */
    for (uint32_t i = 0; i < halfwords; i++, n++) {
        int call;
        if (c && marked(c, address + 2u * i))
            flags |= BLOCK_MARKED;
        /* A memory access inside an IT block stays counted: refused and
         * resumed there, the engine keeps a stale IT state afterwards. */
        if (in_it && accesses_memory(code[i]))
            flags |= BLOCK_MARKED;
        if (in_it)
            in_it--;
        if (accesses_memory(code[i]))
            flags |= BLOCK_MEMORY;
        if (writes_memory(code[i]))
            flags |= BLOCK_STORE;
        if (wide(code[i]) && (code[i] & 0xEC00u) == 0xEC00u)
            flags |= BLOCK_FP | BLOCK_STORE;   /* VSTR, VPUSH ... counted as stores too */
        if ((code[i] & 0xFF00u) == 0xBF00u && (code[i] & 0xFu))
            in_it = 4u - (unsigned)__builtin_ctz(code[i] & 0xFu);
        last = code[i];
        if (code[i] != 0x4770u && touches_lr(code, i, halfwords))
            flags &= ~BLOCK_LEAF;
        if (wide(code[i])) {
            call = (code[i] >> 11) == 0x1E && i + 1 < halfwords && (code[i + 1] & 0xC000u) == 0xC000u;
            i++;   /* the second half of a 32-bit instruction */
        } else {
            call = (code[i] & 0xFF87u) == 0x4780u;   /* BLX Rm */
        }
        flags = call ? (flags | BLOCK_CALL) : (flags & ~BLOCK_CALL);
    }
    if (last != 0x4770u)   /* BX LR */
        flags &= ~BLOCK_LEAF;
    *flags_out = flags;
    return n;
}

/* Instructions in [from, to): conditional ones in an IT block that failed their
 * condition. Unicorn's code hook skips them; on the chip each still takes its
 * cycle, and a precharged block counts them, so the hooks count them too. */
static uint32_t skipped(hwut_cpu *c, void *uc, uint32_t from, uint32_t to)
{
    uint16_t code[8];
    if (to <= from || to - from > sizeof code)
        return 0;
    /* the same few sites fail again and again: a memory read each time cost ~15 %
     * of a counted polling loop, so their counts are kept (dropped with the blocks) */
    int flash = from - c->idle.flash_base < c->idle.flash_size || from < c->idle.flash_size;
    hwut_skip_slot *slot = &c->skips[(from >> 1) % SKIP_SLOTS];
    if (flash && slot->from == from && slot->bytes == to - from)
        return slot->insns;
    c->pre.skip_reads++;
    if (c->api.mem_read(uc, from, code, to - from))
        return 0;
    uint32_t n = 0;   /* as ``decode`` counts, without the flags it works out */
    for (uint32_t i = 0; i < (to - from) / 2; i++, n++)
        if (wide(code[i]))
            i++;
    if (flash) {
        slot->from = from;
        slot->bytes = (uint16_t)(to - from);
        slot->insns = (uint16_t)n;
    }
    return n;
}

/* The slot of the translated block at ``address``; the high bits keep a flash
 * block and its alias twin out of each other's slot. */
static inline uint32_t block_index(uint64_t address)
{
    return (uint32_t)(((address >> 1) + (address >> 22)) % BLOCK_SLOTS);
}

static inline hwut_block_slot *block_slot(hwut_cpu *c, uint64_t address)
{
    return &c->blocks[block_index(address)];
}

/* ``block_info`` when the slot holds another block: decode this one into it. Out
 * of line: its buffer needs a kilobyte of stack frame, which the hit (nearly
 * every call) would otherwise set up and tear down each time. */
__attribute__((noinline)) static hwut_block_slot *block_decode(hwut_cpu *c, void *uc,
                                                               hwut_block_slot *slot,
                                                               uint64_t address, uint32_t size)
{
    uint16_t code[512];
    uint32_t n, flags, bytes = size > sizeof code ? (uint32_t)sizeof code : size;
    if (c->api.mem_read(uc, address, code, bytes) == 0) {
        n = decode(c, address, code, bytes / 2, &flags);
    } else {
        n = (size + 1) / 2;
        flags = BLOCK_MARKED;
    }
    /* the part of hwut_block_exact's verdict that holds as long as the slot: a mark
     * empties the slots (Python's forget_blocks), and flash is where it was */
    if (c->precharge && address - c->pre.flash_base < c->pre.flash_size && !(flags & BLOCK_MARKED))
        flags |= BLOCK_QUICK;
    slot->address = address;
    slot->size = size;
    slot->insns = n;
    slot->flags = flags;
    return slot;
}

/* A translated block's instruction count and flags, decoded once and cached by
 * address. */
static inline hwut_block_slot *block_info(hwut_cpu *c, void *uc, uint64_t address, uint32_t size)
{
    hwut_block_slot *slot = block_slot(c, address);
    if (slot->size == size && slot->address == address)
        return slot;
    return block_decode(c, uc, slot, address, size);
}

/* The decoder, for the test that holds sim/thumb.py to it. */
int hwut_thumb_wide(uint16_t hw1) { return wide(hw1); }
int hwut_thumb_accesses_memory(uint16_t hw1) { return accesses_memory(hw1); }
uint32_t hwut_thumb_decode(const uint16_t *code, uint32_t halfwords, uint32_t *flags)
{
    return decode(NULL, 0, code, halfwords, flags);
}

/* Code that is no waiting loop (it computes, or stores): leave the next blocks
 * alone, more of them each time, so that it does not pay for the look. */
static void idle_back_off(hwut_idle *d)
{
    d->backoff = d->backoff ? (d->backoff * 2 > IDLE_MAX_BACKOFF ? IDLE_MAX_BACKOFF : d->backoff * 2) : 16;
    d->wait = d->backoff;   /* blocks not looked at (hwut_block_exact) */
    d->head = 0;
    d->churn = 0;
    d->snap_valid = 0;
}

/* The registers an idle loop's turn could depend on or change (FP loops are not skipped). */
static const int idle_regs[IDLE_REGS] = {
    R_R0, R_R1, R_R2, R_R3, R_R4, R_R5, R_R6, R_R7, R_R8, R_R9, R_R10, R_R11, R_R12, R_LR,
    R_SP, R_MSP, R_PSP, R_CONTROL, R_XPSR, R_BASEPRI, R_PRIMASK, R_FAULTMASK,
};

/* rampskip.c: a loop whose turn reads a counting register and nothing else
 * that changes, skipped to the turn that reads the tick it leaves on. */
typedef struct {
    void *uc;
    reg_fn reg_read, reg_write;
    const int32_t *regs;
    int32_t lr_reg, xpsr_reg, nzcv_reg;
} hwut_ramp_engine;
uint64_t hwut_ramp_visit(void *ramp, const hwut_ramp_engine *e, uint32_t head, uint32_t period,
                         uint64_t now, uint64_t horizon, uint32_t *move_to);

static int ramp_skip(hwut_cpu *c, void *uc, uint32_t head, uint64_t period, uint64_t now)
{
    uint64_t horizon = c->limit;
    if (c->fast && due_next(c) < horizon)
        horizon = due_next(c);
    hwut_ramp_engine e = { uc, c->api.reg_read, c->api.reg_write, c->api.regs, R_LR, R_XPSR,
                            R_NZCVQG };
    uint32_t move_to = 0;
    uint64_t turns = hwut_ramp_visit(c->idle.ramp, &e, head, (uint32_t)period, now, horizon,
                                     &move_to);
    if (move_to) {   /* the turn begins elsewhere: watch for the loop there */
        c->idle.head = move_to;
        c->idle.head_count = now;
        c->idle.period = 0;
        c->idle.snap_valid = 0;
        return 1;
    }
    if (!turns)
        return 0;
    c->count = now + turns * period;
    c->idle.head_count = c->count;
    c->idle.snap_valid = 0;
    c->idle.backoff = 0;
    c->idle.churn = 0;
    return 1;
}

/* The idle-loop skip, exact in virtual time. Firmware waits in loops that only
 * read: a tick variable in RAM (HAL_Delay), a flag an interrupt sets, a status
 * register. A turn that stores nothing and ends with every register as it began
 * it (same PC, same count per turn) will repeat itself identically until
 * something outside the CPU changes what it reads: a clock event or an
 * interrupt (both end the slice: ``limit``, SysTick's next wrap), or a
 * peripheral register the read cache answers for a bounded time (``horizon``;
 * a read that Python served makes the turn unskippable). So the turns before
 * that are not run but counted, whole turns only: the count, the registers and
 * memory afterwards are those of running them. Code hooks of the image's
 * sites (traps, unmask, SEV) would have done each turn what they did in the
 * turns seen, which left the state as it was. Called at the start of every
 * block with the count before it; a loop is recognised when the same block
 * (the head) comes back after the same number of instructions twice, then
 * the registers are compared; a loop whose registers change (it computes)
 * is looked at less and less often. */
static void idle_visit(hwut_cpu *c, void *uc, uint32_t address, uint32_t flags)
{
    hwut_idle *d = &c->idle;
    uint64_t now = c->count;
    if (address != d->head) {
        d->flags |= flags;
        if ((d->flags & BLOCK_STORE) && ++d->churn >= IDLE_CHURN) {
            idle_back_off(d);
            return;
        }
        if (now - d->head_count > IDLE_MAX_PERIOD || (d->flags & BLOCK_STORE)) {
            d->head = address;   /* a new candidate */
            d->head_count = now;
            d->flags = flags;
            d->period = 0;
            d->snap_valid = 0;
            d->horizon = NONE_CYCLE;
        }
        return;
    }
    uint64_t period = now - d->head_count, horizon = d->horizon, read_until = d->horizon;
    int same = period == d->period && period && !(d->flags & (BLOCK_STORE | BLOCK_FP));
    int fpu_loop = period == d->period && period && (d->flags & BLOCK_FP);
    d->period = (uint32_t)(period <= IDLE_MAX_PERIOD ? period : 0);
    d->head_count = now;
    d->flags = flags;
    d->horizon = NONE_CYCLE;
    if (!same) {
        d->snap_valid = 0;
        if (fpu_loop)
            idle_back_off(d);   /* an FPU loop: never skipped */
        return;
    }
    /* every read of the turn from the read cache: a counter's ramp may end it */
    if (d->ramp && read_until && read_until != NONE_CYCLE && ramp_skip(c, uc, address, period, now))
        return;
    if (c->limit < horizon)
        horizon = c->limit;
    if (c->fast && due_next(c) < horizon)
        horizon = due_next(c);
    if (horizon <= now || (horizon - now) / period < IDLE_MIN_TURNS
        || horizon - now < IDLE_MIN_INSNS) {
        d->snap_valid = 0;   /* too close to the next event to be worth the registers */
        return;
    }
    if (!d->snap_valid) {
        rd_n(c, uc, idle_regs, d->snap, IDLE_REGS);
        d->snap_valid = 1;
        return;
    }
    uint32_t regs[IDLE_REGS];
    rd_n(c, uc, idle_regs, regs, IDLE_REGS);   /* one call: cheaper than stopping at the first difference */
    for (int i = 0; i < IDLE_REGS; i++) {
        if (regs[i] != d->snap[i]) {
            d->snap_valid = 0;
            if (read_until == NONE_CYCLE)   /* no peripheral read: it computes */
                idle_back_off(d);
            return;
        }
    }
    d->backoff = 0;
    d->churn = 0;
    uint64_t turns = (horizon - now) / period - 1;   /* whole turns before it, less one to spare */
    c->count = now + turns * period;
    d->head_count = c->count;
    d->turns += turns;
    d->skips++;
}

/* hwut_count, all of it; hwut_count below takes the common case first. */
__attribute__((noinline)) static void count_slow(void *uc, uint64_t address, uint32_t size,
                                                 hwut_cpu *c)
{
    if (address != c->next_pc) {
        c->count += skipped(c, uc, c->next_pc, (uint32_t)address);
        c->next_pc = (uint32_t)address;
    }
    if (c->count >= c->limit) {
        c->api.stop(uc);
        return;
    }
    if (c->count >= due_next(c) && c->fast) {
        systick_wrap(c, uc, address);   /* the instruction at ``address`` waits */
        return;
    }
    c->count++;
    c->next_pc = (uint32_t)(address + size);
}

/* The per-instruction hook. The common case (the instruction follows the last
 * one, before the limit and the next event) only reads, compares and counts,
 * without a stack frame: the calls of the rest made each instruction save and
 * restore four registers. */
void hwut_count(void *uc, uint64_t address, uint32_t size, hwut_cpu *c)
{
    uint64_t count = c->count;
    if (address != c->next_pc || count >= c->limit || (count >= due_next(c) && c->fast)) {
        count_slow(uc, address, size, c);
        return;
    }
    c->count = count + 1;
    c->next_pc = (uint32_t)(address + size);
}

/* Block-granular timing (opt-in): the same work once per translated block. An
 * interrupt or a slice end waits for the next block boundary. */
__attribute__((noinline)) static void block_slow(void *uc, uint64_t address, uint32_t size,
                                                 hwut_cpu *c)
{
    if (c->count >= c->limit) {
        c->api.stop(uc);     /* the block does not run: the engine stops before it */
        return;
    }
    if (c->count >= due_next(c) && c->fast) {
        systick_wrap(c, uc, address);   /* the block waits */
        return;
    }
    hwut_block_slot *b = block_info(c, uc, address, size);
    if (c->idle.enabled) {
        if (c->idle.wait)
            c->idle.wait--;
        else
            idle_visit(c, uc, (uint32_t)address, b->flags);
    }
    c->count += b->insns;
}

/* Its common case (the slot filled, before the limit and the next event, the
 * idle skip not looking) without a stack frame; the rest in ``block_slow``. */
void hwut_block(void *uc, uint64_t address, uint32_t size, hwut_cpu *c)
{
    hwut_block_slot *b = block_slot(c, address);
    uint64_t count = c->count;
    if (count >= c->limit || (count >= due_next(c) && c->fast) || b->address != address
        || b->size != size || (c->idle.enabled && !c->idle.wait)) {
        block_slow(uc, address, size, c);
        return;
    }
    if (c->idle.enabled)
        c->idle.wait--;
    c->count = count + b->insns;
}

/* How the canonical flash range [lo, hi) lies in the counted regions: 0 outside
 * them all, 2 inside one, 1 partly inside. */
static int in_region(const hwut_cpu *c, uint32_t lo, uint32_t hi)
{
    int partly = 0;
    for (uint32_t i = 0; i < c->regions.n; i++) {
        if (lo >= c->regions.lo[i] && hi <= c->regions.hi[i])
            return 2;
        if (lo < c->regions.hi[i] && hi > c->regions.lo[i])
            partly = 1;
    }
    return partly;
}

/* A switch of view at the block [lo, hi) (canonical): remember the site, and
 * every SWITCH_WINDOW switches see whether precharging still pays for them. If
 * not, ask for a region around this site and the recent ones near it, and stop
 * (at the block boundary, as a slice end) so that Python adds it now. */
static void note_switch(hwut_cpu *c, void *uc, uint32_t lo, uint32_t hi)
{
    hwut_regions *r = &c->regions;
    r->site_lo[r->site_pos % SITES] = lo;
    r->site_hi[r->site_pos % SITES] = hi;
    r->site_pos++;
    if (++r->window_switches < SWITCH_WINDOW)
        return;
    uint64_t gained = c->pre.precharged_insns - r->window_insns;
    r->window_insns = c->pre.precharged_insns;
    r->window_switches = 0;
    if (gained >= (uint64_t)SWITCH_WINDOW * SWITCH_COST || r->want_hi || r->n >= REGIONS)
        return;
    for (unsigned i = 0; i < SITES; i++) {
        uint32_t a = r->site_lo[i] < lo ? r->site_lo[i] : lo;
        uint32_t z = r->site_hi[i] > hi ? r->site_hi[i] : hi;
        if (r->site_hi[i] && z - a <= REGION_SPAN) {
            lo = a;
            hi = z;
        }
    }
    r->want_lo = lo;
    r->want_hi = hi;
    r->asked++;
    c->limit = c->count;
    c->api.stop(uc);
}

/* What exact timing does at the start of every block, precharged or not: the
 * instructions of an IT block that failed their condition at the end of the
 * last one are counted, and where this one ends is noted. */
static inline void block_start(hwut_cpu *c, void *uc, uint64_t address, uint32_t size)
{
    if (address == c->block_end && c->next_pc != c->block_end)
        c->count += skipped(c, uc, c->next_pc, c->block_end);   /* the last ones failed */
    c->next_pc = (uint32_t)address;
    c->block_end = (uint32_t)(address + size);
    if (c->sites_end)
        c->sites.block_start = (uint32_t)address;   /* only sites need it (in_it_block) */
}

/* The idle skip's look at a block (unless it backs off); the block's slot if it
 * looked it up. */
static inline hwut_block_slot *idle_look(hwut_cpu *c, void *uc, uint64_t address, uint32_t size)
{
    if (c->idle.enabled && c->count < c->limit) {
        if (c->idle.wait) {
            c->idle.wait--;   /* a computing loop was seen: not looked at for a while */
        } else {
            hwut_block_slot *b = block_info(c, uc, address, size);
            idle_visit(c, uc, (uint32_t)address, b->flags);
            return b;
        }
    }
    return NULL;
}

/* Exact timing. Without precharging this only accounts for skipped IT-block
 * instructions (see ``skipped``). With it, flash is mapped twice: code at the
 * canonical address (0x08000000) has no per-instruction hook, code at the alias
 * (0x00000000) has hwut_count. A flash block runs at the canonical address, its instructions all
 * counted here at its start, when nothing in it can tell the difference: no
 * deadline falls inside it, and no instruction in it is marked (CPSIE, MSR to a
 * mask: they must stop right after themselves). An MMIO access is refused while
 * such a block runs (hwut_tlb_fill); Python then rewinds the count to that
 * instruction, marks it, and resumes it at the alias, where each instruction is
 * counted before it runs, as without precharging. Other blocks run at the alias,
 * and return to the canonical address at the first block that qualifies.
 * This is the whole of it; hwut_block_exact below takes the common case first. */
__attribute__((noinline)) static void block_exact_slow(void *uc, uint64_t address, uint32_t size,
                                                       hwut_cpu *c)
{
    if (c->precharge && c->pre.it_stale) {   /* only precharging fills the TLB here */
        c->pre.it_stale = 0;
        uint32_t xpsr = rd(c, uc, R_XPSR);
        if ((address < c->pre.it_lo || address >= c->pre.it_hi) && (xpsr & XPSR_IT)) {
            wr(c, uc, R_XPSR, xpsr & ~XPSR_IT);   /* the IT block is over */
            /* this block was translated for that state: drop it (and the jumps
             * chained to it), and look it up again */
            c->api.ctl(uc, c->api.ctl_tb_remove, (uint64_t)address, (uint64_t)address + 2u);
            wr(c, uc, R_PC, (uint32_t)address | 1u);
            return;
        }
    }
    block_start(c, uc, address, size);
    if (c->pre.call_return) {
        /* The previous block, counted, ended with a call: its return address is
         * the alias's. Canonical before the callee's first instruction sees it,
         * unless the callee is a leaf that only returns through it (BX LR):
         * then it returns to the alias, and a loop calling it stays there
         * (see BLOCK_STICKY). Should anything look at LR before (an exception
         * entry, the host), it is made canonical then (sim/precharge.py). */
        uint32_t lr = rd(c, uc, R_LR);
        if (lr == c->pre.call_return) {
            if (address < c->pre.flash_size && (block_info(c, uc, address, size)->flags & BLOCK_LEAF))
                c->pre.alias_lr = lr;
            else
                wr(c, uc, R_LR, c->pre.call_return + c->pre.flash_base);
        }
        c->pre.call_return = 0;
    }
    hwut_block_slot *b = idle_look(c, uc, address, size);
    if (!c->precharge || c->pre.suspended)
        return;
    c->pre.quick = 0;
    if (c->count >= c->limit) {
        c->api.stop(uc);
        return;
    }
    if (c->count >= due_next(c) && c->fast) {
        systick_wrap(c, uc, address);
        return;
    }
    int canonical = address - c->pre.flash_base < c->pre.flash_size;
    if (!canonical && address >= c->pre.flash_size)
        return;   /* RAM or system memory: always counted */
    if (b == NULL)
        b = block_info(c, uc, address, size);
    uint64_t end = c->count + b->insns;
    int counted = (b->flags & (BLOCK_MARKED | BLOCK_STICKY)) || end > c->limit
                  || (c->fast && end > due_next(c));
    uint32_t clo = canonical ? (uint32_t)address : (uint32_t)address + c->pre.flash_base;
    int region = c->regions.n ? in_region(c, clo, clo + size) : 0;
    if (region == 2 || (region && !canonical)) {
        /* counted where it is: every instruction of it has the hook in this view */
        c->pre.prev_slot = 0;
        if (!canonical && (b->flags & BLOCK_CALL))
            c->pre.call_return = (uint32_t)(address + size) | 1u;
        return;
    }
    if (region)
        counted = 1;   /* partly in a region at the canonical address: the alias counts it whole */
    if (!counted && c->pre.mmio_in_tlb && (b->flags & BLOCK_MEMORY)) {
        /* An MMIO page in the TLB would not be refused: flushing it out costs,
         * so code that touches MMIO often stays counted for a while (a block
         * without loads and stores cannot touch it). */
        if (++c->pre.tlb_streak < FLUSH_AFTER) {
            counted = 1;
        } else {
            c->api.ctl(uc, c->api.ctl_tlb_flush);
            c->pre.tlb_flushes++;
            c->pre.mmio_in_tlb = 0;
            c->pre.tlb_streak = 0;
        }
    }
    /* Each switch of view is a PC write, which ends the engine's chained run: a
     * loop that goes back and forth (precharged code calling a function that
     * reads a peripheral, and the return) paid more for the switches than
     * precharging saved, and ran slower than counted throughout. So a block
     * that switched to canonical only to come back within BOUNCE_INSNS, and a
     * call site whose callee runs counted, become sticky: they stay in the view
     * they are reached in (counted, exact all the same), and such a loop stays
     * at the alias. Slots are per address and view; which view runs a block
     * never changes the count. */
    uint32_t slot = (uint32_t)(b - c->blocks) + 1u;
    if (!canonical) {
        c->pre.prev_slot = 0;
        if (!counted) {
            wr(c, uc, R_PC, (uint32_t)(address + c->pre.flash_base) | 1u);
            c->pre.to_canonical++;
            note_switch(c, uc, clo, clo + size);
            c->pre.switch_slot = slot;
            c->pre.switch_count = c->count;
        }
        else if (b->flags & BLOCK_CALL)
            c->pre.call_return = (uint32_t)(address + size) | 1u;
        return;
    }
    if (counted) {
        wr(c, uc, R_PC, (uint32_t)(address - c->pre.flash_base) | 1u);
        c->pre.to_alias++;
        note_switch(c, uc, clo, clo + size);
        if (c->pre.switch_slot && c->count - c->pre.switch_count < BOUNCE_INSNS)
            c->blocks[c->pre.switch_slot - 1].flags |= BLOCK_STICKY;
        if (c->pre.prev_slot && (c->blocks[c->pre.prev_slot - 1].flags & BLOCK_CALL))
            c->blocks[c->pre.prev_slot - 1].flags |= BLOCK_STICKY;
        c->pre.switch_slot = 0;
        c->pre.prev_slot = 0;
        return;
    }
    c->pre.prev_slot = slot;
    c->pre.quick = 1;
    c->pre.quick_start = c->count;
    c->pre.quick_pc = (uint32_t)address;
    c->pre.quick_size = size;
    c->count = end;
    c->next_pc = c->block_end;
    c->pre.precharged++;
    c->pre.precharged_insns += b->insns;
}

/* The common case of ``block_exact_slow``, with the same effects: a canonical
 * flash block whose slot is filled (BLOCK_QUICK: canonical, not marked), not
 * sticky, no counted regions granted, ending before the limit and the next
 * event, with nothing pending from the block before (an IT block's skipped instructions, a call's
 * return address, a stale IT state) and the idle skip not looking. It runs at
 * every translated block (a busy loop of five instructions: 14 M times per
 * virtual second), so it only reads and compares, and needs no stack frame:
 * the slow path's calls and its decode buffer made each block set one up. Any
 * condition not met, or counted regions granted: the slow path, which looks at
 * everything again. */
void hwut_block_exact(void *uc, uint64_t address, uint32_t size, hwut_cpu *c)
{
    /* one look at a time, so that few values are live at once: with all of them
     * loaded first, the compiler saved four registers on the stack for them */
    /* all of these are 0 nearly always: one branch for them (``|``, not ``||``);
     * first, so that code counted while precharging is suspended leaves at once */
    if ((!c->fast) | (!c->precharge) | c->pre.suspended | c->pre.it_stale | c->pre.call_return
        | c->regions.n)   /* looking at the regions would need a stack frame */
        goto slow;
    uint32_t index = block_index(address);
    hwut_block_slot *b = &c->blocks[index];
    if (b->address != address || b->size != size
        || (b->flags & (BLOCK_QUICK | BLOCK_STICKY)) != BLOCK_QUICK)   /* canonical, not marked */
        goto slow;
    if (address == c->block_end && c->next_pc != c->block_end)
        goto slow;
    if ((c->idle.enabled && !c->idle.wait) || (c->pre.mmio_in_tlb && (b->flags & BLOCK_MEMORY)))
        goto slow;
    uint64_t count = c->count, end = count + b->insns;
    if (count >= c->limit || end > c->limit || count >= c->exc.due || end > c->exc.due)
        goto slow;
    if (c->sites_end)
        c->sites.block_start = (uint32_t)address;
    if (c->idle.enabled)
        c->idle.wait--;
    c->pre.prev_slot = index + 1u;
    c->pre.quick = 1;
    c->pre.quick_start = count;
    c->pre.quick_pc = (uint32_t)address;
    c->pre.quick_size = size;
    c->count = end;
    c->block_end = (uint32_t)(address + size);
    c->next_pc = c->block_end;
    c->pre.precharged++;
    c->pre.precharged_insns += b->insns;
    return;
slow:
    block_exact_slow(uc, address, size, c);
}

/* Exact timing on a machine that never precharges (``precharge=False``, code not
 * in flash): what hwut_block_exact does without it, in a hook of its own so that
 * counting every instruction pays nothing for precharging's checks.
 * sim/counter.py replaces it with hwut_block_exact when precharging is enabled. */
__attribute__((noinline)) static void block_counted_slow(void *uc, uint64_t address,
                                                         uint32_t size, hwut_cpu *c)
{
    block_start(c, uc, address, size);
    idle_look(c, uc, address, size);
}

void hwut_block_counted(void *uc, uint64_t address, uint32_t size, hwut_cpu *c)
{
    /* the common case without a stack frame: nothing skipped before, the idle skip
     * not looking */
    int idle = c->idle.enabled && c->count < c->limit;
    if ((address == c->block_end && c->next_pc != c->block_end) || (idle && !c->idle.wait)) {
        block_counted_slow(uc, address, size, c);
        return;
    }
    c->next_pc = (uint32_t)address;
    c->block_end = (uint32_t)(address + size);
    if (c->sites_end)
        c->sites.block_start = (uint32_t)address;
    if (idle)
        c->idle.wait--;
}

/* A TLB fill inside an IT block leaves the engine's IT state behind once the
 * block is over (Unicorn 2.1, TLB_VIRTUAL mode); the next block looked up by
 * address would run as if still inside it. Note where the IT block ends, so
 * that hwut_block_exact can clear the state and look that block up again. */
static void note_it_state(hwut_cpu *c, void *uc)
{
    uint32_t xpsr = rd(c, uc, R_XPSR);
    uint32_t it = ((xpsr >> 25) & 3u) | (((xpsr >> 10) & 0x3Fu) << 2);
    if (!(it & 0xFu))
        return;
    uint32_t pc = rd(c, uc, R_PC) & ~1u, end = pc;
    uint16_t code[8];
    if (c->api.mem_read(uc, pc, code, sizeof code))
        return;
    for (unsigned left = 4u - (unsigned)__builtin_ctz(it & 0xFu), i = 0; left && i < 8; left--)
        if (wide(code[i])) {
            i += 2;
            end += 4;
        } else {
            i += 1;
            end += 2;
        }
    c->pre.it_stale = 1;
    c->pre.it_lo = pc;
    c->pre.it_hi = end;
}

/* Identity mapping; MMIO refused while a precharged block runs. */
bool hwut_tlb_fill(void *uc, uint64_t vaddr, int access, hwut_tlb_entry *entry, hwut_cpu *c)
{
    note_it_state(c, uc);
    entry->paddr = vaddr;
    entry->perms = c->api.prot_all;   /* the regions' own protection still applies */
    if (access == c->api.mem_fetch)
        return true;
    for (uint32_t i = 0; i < c->pre.n_deny; i++) {
        if (vaddr >= c->pre.deny_lo[i] && vaddr < c->pre.deny_hi[i]) {
            if (c->pre.quick) {
                c->pre.denials++;
                return false;
            }
            c->pre.mmio_in_tlb = 1;
            c->pre.tlb_streak = 0;
            break;
        }
    }
    return true;
}

void hwut_intr(void *uc, uint32_t intno, hwut_cpu *c)
{
    c->idle.period = 0;   /* SVC, BKPT (semihosting), WFI ...: the turn did more than run */
    if (intno == c->api.intr_exc_exit && c->fast) {
        uint32_t pc = rd(c, uc, R_PC);
        if (pc >= 0xFFFFFF00u && exit_exception(c, uc, pc | 1u) == 0) {
            int exc = next_to_take(c, uc);
            if (exc < 0 && highest_pending(c) < 0)
                return;      /* straight back to the interrupted code */
            if (exc >= 0 && enter(c, uc, (unsigned)exc, rd(c, uc, R_PC)) == 0)
                return;      /* tail-chained */
            c->limit = c->count;   /* something waits behind a mask: the run loop decides */
            c->api.stop(uc);
            return;
        }
    }
    c->last_intno = intno;
    c->api.stop(uc);
}

/* Is the half-word at ``address`` a site (in any view of its memory)? */
static int site_at(const hwut_cpu *c, uint32_t address)
{
    const hwut_sites *s = &c->sites;
    for (uint32_t i = 0; i < s->n; i++) {
        uint32_t offset = address - s->base[i];
        if (offset < s->size[i])
            return (s->bits[i][offset >> 4] >> ((offset >> 1) & 7)) & 1u;
    }
    return 0;
}

/* IT-block instructions still to run from ``at`` on (``at`` included), as the
 * engine's translator knows them: the IT instruction found in the 16 bytes
 * before ``at`` (its block is at most four instructions of at most four bytes)
 * whose block reaches ``at``. Only for an IT instruction before the block now
 * running began (a block that begins inside an IT block: an exception return
 * into one, a page boundary); inside the block, ``in_it_block`` decodes it. */
static unsigned it_left_before(hwut_cpu *c, void *uc, uint32_t at)
{
    uint16_t code[8];
    uint32_t from = at >= 16u ? at - 16u : 0u;
    if (at - from < 2u || c->api.mem_read(uc, from, code, at - from))
        return 0;
    for (uint32_t back = 2u; back <= at - from; back += 2u) {
        uint32_t p = at - back;
        uint16_t hw = code[(p - from) / 2u];
        if ((hw & 0xFF00u) != 0xBF00u || !(hw & 0xFu))
            continue;
        unsigned k = 4u - (unsigned)__builtin_ctz(hw & 0xFu), j = 0;
        uint32_t q = p + 2u;
        while (q < at && j < k) {   /* the block's instructions before ``at`` */
            q += wide(code[(q - from) / 2u]) ? 4u : 2u;
            j++;
        }
        if (q == at && j < k)
            return k - j;
    }
    return 0;
}

/* Is the instruction at ``address`` inside an IT block? The engine cannot stop
 * inside one: a stop asked for there is undone once the code hooks of the
 * instruction ran, and they all run, the instruction too. Decoded from the
 * start of the translated block (one memory read; only when the counter stopped
 * at a site). */
__attribute__((noinline)) static int in_it_block(hwut_cpu *c, void *uc, uint32_t address)
{
    uint32_t start = c->sites.block_start;
    if (address < start || address - start > 2048u)
        start = address;   /* not in the block that began last: look before it only */
    unsigned left = it_left_before(c, uc, start);
    uint16_t code[1024];
    uint32_t bytes = address - start;
    if (bytes && c->api.mem_read(uc, start, code, bytes))
        return 0;
    for (uint32_t i = 0; i < bytes / 2u; i++) {
        uint16_t hw = code[i];
        if (left)
            left--;
        else if ((hw & 0xFF00u) == 0xBF00u && (hw & 0xFu))
            left = 4u - (unsigned)__builtin_ctz(hw & 0xFu);
        if (wide(hw))
            i++;
    }
    return left != 0;
}

/* The site's callbacks, in Python (``sim.sites``). Out of line, as the two below:
 * hwut_count stays as small as without sites. */
__attribute__((noinline)) static void site_call(hwut_cpu *c, void *uc, uint64_t address, uint32_t size)
{
    c->sites.fired++;
    c->sites.call(uc, address, size, c->sites.user);
}

/* The counter stopped the engine before the instruction at ``address``: a code
 * hook on a site there runs all the same inside an IT block (see in_it_block),
 * else not (it runs when the instruction does, in the next slice). */
__attribute__((noinline)) static void site_after_stop(hwut_cpu *c, void *uc,
                                                           uint64_t address, uint32_t size)
{
    if (site_at(c, (uint32_t)address) && in_it_block(c, uc, (uint32_t)address))
        site_call(c, uc, address, size);
}

/* A counted instruction below ``sites_end``: a site there is looked at now. */
__attribute__((noinline)) static void site_visit(hwut_cpu *c, void *uc, uint64_t address,
                                                 uint32_t size)
{
    if (site_at(c, (uint32_t)address))
        site_call(c, uc, address, size);
}

/* SysTick's wrap before the instruction at ``address`` (below ``sites_end``): if it
 * entered a handler, the engine did not stop, and a site's code hook ran on. */
__attribute__((noinline)) static void site_after_systick(hwut_cpu *c, void *uc,
                                                              uint64_t address, uint32_t size)
{
    if (c->count >= c->limit)   /* it stopped the engine (see systick_wrap) */
        site_after_stop(c, uc, address, size);
    else
        site_visit(c, uc, address, size);   /* a handler entered: the hooks run on */
}

/* hwut_count with the sites' look (hwut_sites), all of it (hwut_count_sites below
 * takes the common case first): a look costs every instruction,
 * sites or none (~6 % of a compute loop counted per instruction), so sim/counter.py
 * hooks this one only once an image has sites. Here at the end, with what it
 * calls: the hot code above keeps its place (a move alone cost a compute loop
 * as much). */
__attribute__((noinline)) static void count_sites_slow(void *uc, uint64_t address, uint32_t size,
                                                       hwut_cpu *c)
{
    if (address != c->next_pc) {
        c->count += skipped(c, uc, c->next_pc, (uint32_t)address);
        c->next_pc = (uint32_t)address;
    }
    if (c->count >= c->limit) {
        c->api.stop(uc);
        if (address < c->sites_end)
            site_after_stop(c, uc, address, size);
        return;
    }
    if (c->count >= due_next(c) && c->fast) {
        systick_wrap(c, uc, address);   /* the instruction at ``address`` waits */
        if (address < c->sites_end)
            site_after_systick(c, uc, address, size);
        return;
    }
    c->count++;
    c->next_pc = (uint32_t)(address + size);
    if (address < c->sites_end)
        site_visit(c, uc, address, size);
}

/* Its common case, as hwut_count's: counted without a stack frame, the look at
 * the sites a tail call. */
void hwut_count_sites(void *uc, uint64_t address, uint32_t size, hwut_cpu *c)
{
    uint64_t count = c->count;
    if (address != c->next_pc || count >= c->limit || (count >= due_next(c) && c->fast)) {
        count_sites_slow(uc, address, size, c);
        return;
    }
    c->count = count + 1;
    c->next_pc = (uint32_t)(address + size);
    if (address < c->sites_end)
        site_visit(c, uc, address, size);
}

/* -- the layout of the structs above, for the test that holds ctypes to it -- */
#define F(member) HWUT_FIELD(hwut_block_slot, member)
static const hwut_field block_slot_fields[] = {
    F(address), F(size), F(insns), F(flags), F(spare),
};
#undef F
#define F(member) HWUT_FIELD(hwut_api, member)
static const hwut_field api_fields[] = {
    F(stop), F(reg_read), F(reg_write), F(mem_read), F(mem_write), F(ctl), F(reg_read_batch),
    F(reg_write_batch), F(regs),
    F(mem_fetch), F(prot_all), F(ctl_tlb_flush), F(ctl_tb_remove), F(intr_exc_exit), F(spare),
};
#undef F
#define F(member) HWUT_FIELD(hwut_exc, member)
static const hwut_field exc_fields[] = {
    F(due), F(systick_next), F(systick_period), F(pending), F(active), F(enabled), F(levels), F(prio),
    F(n_exc), F(prigroup), F(vtor), F(shcsr_enables), F(priority_mask), F(event_register),
    F(sevonpend), F(spare), F(entries), F(exits), F(pend_next), F(pend_at), F(pend_exc),
    F(pends_fired),
};
#undef F
#define F(member) HWUT_FIELD(hwut_precharge, member)
static const hwut_field precharge_fields[] = {
    F(quick_start), F(quick_pc), F(quick_size), F(quick), F(flash_base),
    F(flash_size), F(mmio_in_tlb), F(call_return), F(tlb_streak), F(it_stale), F(it_lo),
    F(it_hi), F(n_deny), F(deny_lo), F(deny_hi), F(marks), F(precharged), F(denials),
    F(to_canonical), F(to_alias), F(tlb_flushes), F(skip_reads), F(precharged_insns),
    F(suspended), F(spare), F(switch_count), F(switch_slot), F(prev_slot), F(alias_lr),
    F(spare2),
};
#undef F
#define F(member) HWUT_FIELD(hwut_idle, member)
static const hwut_field idle_fields[] = {
    F(head_count), F(horizon), F(turns), F(skips), F(enabled), F(head), F(period), F(flags),
    F(wait), F(backoff), F(snap_valid), F(churn), F(flash_base), F(flash_size), F(snap),
    F(ramp),
};
#undef F
#define F(member) HWUT_FIELD(hwut_skip_slot, member)
static const hwut_field skip_slot_fields[] = { F(from), F(bytes), F(insns) };
#undef F
#define F(member) HWUT_FIELD(hwut_regions, member)
static const hwut_field regions_fields[] = {
    F(lo), F(hi), F(n), F(want_lo), F(want_hi), F(site_pos), F(site_lo), F(site_hi),
    F(window_switches), F(spare), F(window_insns), F(asked),
};
#undef F
#define F(member) HWUT_FIELD(hwut_sites, member)
static const hwut_field sites_fields[] = {
    F(n), F(block_start), F(base), F(size), F(bits), F(call), F(user), F(fired),
};
#undef F
#define F(member) HWUT_FIELD(hwut_cpu, member)
static const hwut_field cpu_fields[] = {
    F(count), F(limit), F(fast), F(last_intno), F(next_pc), F(block_end), F(precharge),
    F(sites_end), F(exc), F(pre), F(api), F(idle), F(blocks), F(skips), F(regions), F(direct),
    F(sites),
};
#undef F
#define F(member) HWUT_FIELD(hwut_tlb_entry, member)
static const hwut_field tlb_entry_fields[] = { F(paddr), F(perms) };
#undef F
#define F(member) HWUT_FIELD(hwut_direct, member)
static const hwut_field direct_fields[] = { F(n), F(spare), F(base), F(size), F(host) };
#undef F

static const hwut_layout layouts[] = {
    HWUT_LAYOUT("BlockSlot", hwut_block_slot, block_slot_fields),
    HWUT_LAYOUT("EngineApi", hwut_api, api_fields),
    HWUT_LAYOUT("ExceptionState", hwut_exc, exc_fields),
    HWUT_LAYOUT("PrechargeState", hwut_precharge, precharge_fields),
    HWUT_LAYOUT("IdleState", hwut_idle, idle_fields),
    HWUT_LAYOUT("SkipSlot", hwut_skip_slot, skip_slot_fields),
    HWUT_LAYOUT("RegionState", hwut_regions, regions_fields),
    HWUT_LAYOUT("CpuState", hwut_cpu, cpu_fields),
    HWUT_LAYOUT("TlbEntry", hwut_tlb_entry, tlb_entry_fields),
    HWUT_LAYOUT("DirectState", hwut_direct, direct_fields),
    HWUT_LAYOUT("SiteState", hwut_sites, sites_fields),
    { NULL, 0, 0, NULL },
};

const hwut_layout *hwut_counter_layouts(void) { return layouts; }
