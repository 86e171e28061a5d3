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
#include <stdint.h>
#include <string.h>

typedef int (*stop_fn)(void *uc);
typedef int (*reg_fn)(void *uc, int regid, void *value);
typedef int (*mem_read_fn)(void *uc, uint64_t address, void *bytes, uint64_t size);
typedef int (*mem_write_fn)(void *uc, uint64_t address, const void *bytes, uint64_t size);

enum { R_R0, R_R1, R_R2, R_R3, R_R12, R_LR, R_PC, R_SP, R_MSP, R_PSP, R_CONTROL, R_XPSR,
       R_NZCVQG, R_IPSR, R_BASEPRI, R_PRIMASK, R_FAULTMASK, R_FPSCR, R_S0, R_COUNT = R_S0 + 16 };

#define WORDS 4
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

/* Instruction counts of translated blocks, by address (block-granular timing). */
typedef struct {
    uint64_t address;
    uint32_t size, insns;
} hwut_block_slot;

typedef struct {
    uint64_t count;          /* instructions executed (plus cycles slept) */
    uint64_t limit;          /* stop before executing instruction number limit+1 */
    stop_fn stop;
    uint64_t systick_next;   /* cycle at which SysTick next pends, NONE_CYCLE if never */
    uint64_t systick_period;
    uint32_t pending[WORDS], active[WORDS], enabled[WORDS], levels[WORDS];
    int32_t prio[WORDS * 32];
    uint32_t n_exc, prigroup, vtor, shcsr_enables, priority_mask;
    uint32_t event_register, sevonpend, fast, last_intno;
    uint64_t entries, exits;
    reg_fn reg_read, reg_write;
    mem_read_fn mem_read;
    mem_write_fn mem_write;
    int32_t regs[R_COUNT];
    hwut_block_slot blocks[BLOCK_SLOTS];   /* per machine: images differ */
} hwut_cpu;

static int bit(const uint32_t *set, unsigned n) { return (set[n >> 5] >> (n & 31)) & 1u; }
static void set_bit(uint32_t *set, unsigned n) { set[n >> 5] |= 1u << (n & 31); }
static void clear_bit(uint32_t *set, unsigned n) { set[n >> 5] &= ~(1u << (n & 31)); }

static uint32_t rd(hwut_cpu *c, void *uc, int r)
{
    uint64_t v = 0;
    c->reg_read(uc, c->regs[r], &v);
    return (uint32_t)v;
}

static void wr(hwut_cpu *c, void *uc, int r, uint32_t value)
{
    uint64_t v = value;
    c->reg_write(uc, c->regs[r], &v);
}

static int group(const hwut_cpu *c, int prio)
{
    if (prio < 0)
        return prio;
    return prio & (0xFF << (c->prigroup + 1)) & 0xFF;
}

static int usable(const hwut_cpu *c, unsigned exc)
{
    if (exc >= IRQ_BASE)
        return bit(c->enabled, exc);
    if (exc == MEMMANAGE || exc == BUSFAULT || exc == USAGEFAULT)
        return (c->shcsr_enables >> (16 + exc - MEMMANAGE)) & 1u;
    return 1;
}

static int highest_pending(const hwut_cpu *c)
{
    int best = -1, best_prio = 1 << 16;
    for (unsigned w = 0; w < WORDS; w++) {
        uint32_t bits = c->pending[w];
        while (bits) {
            unsigned exc = 32 * w + (unsigned)__builtin_ctz(bits);
            bits &= bits - 1;
            if (exc < c->n_exc && usable(c, exc) && c->prio[exc] < best_prio) {
                best = (int)exc;
                best_prio = c->prio[exc];
            }
        }
    }
    return best;
}

static int active_priority(const hwut_cpu *c)
{
    int best = 256;
    for (unsigned w = 0; w < WORDS; w++) {
        uint32_t bits = c->active[w];
        while (bits) {
            unsigned exc = 32 * w + (unsigned)__builtin_ctz(bits);
            bits &= bits - 1;
            int g = group(c, c->prio[exc]);
            if (g < best)
                best = g;
        }
    }
    return best;
}

static int execution_priority(hwut_cpu *c, void *uc)
{
    int best = active_priority(c);
    uint32_t basepri = rd(c, uc, R_BASEPRI) & c->priority_mask;
    if (basepri && group(c, (int)basepri) < best)
        best = group(c, (int)basepri);
    if ((rd(c, uc, R_PRIMASK) & 1u) && best > 0)
        best = 0;
    if ((rd(c, uc, R_FAULTMASK) & 1u) && best > -1)
        best = -1;
    return best;
}

/* The exception to take now, or -1. */
static int next_to_take(hwut_cpu *c, void *uc)
{
    int exc = highest_pending(c);
    if (exc < 0)
        return -1;
    if (group(c, c->prio[exc]) < execution_priority(c, uc))
        return exc;
    return -1;
}

/* Stack the frame and start the handler; 0 on success, -1 to leave it to Python. */
static int enter(hwut_cpu *c, void *uc, unsigned exc, uint32_t return_address)
{
    uint32_t control = rd(c, uc, R_CONTROL), xpsr = rd(c, uc, R_XPSR), sp = rd(c, uc, R_SP);
    uint32_t vector;
    if (c->mem_read(uc, (uint64_t)((c->vtor & ~0x7Fu) + 4u * exc), &vector, 4) || !(vector & 1u))
        return -1;   /* Python raises the lockup with its message */
    int handler_mode = (xpsr & 0x1FFu) != 0;
    int on_psp = !handler_mode && (control & CONTROL_SPSEL);
    int extended = (control & CONTROL_FPCA) != 0;
    uint32_t size = extended ? 0x68u : 0x20u;
    uint32_t frame = (sp - size) & ~7u;
    uint32_t realigned = (sp - size) & 4u;
    uint32_t words[26];
    static const int basic[6] = { R_R0, R_R1, R_R2, R_R3, R_R12, R_LR };
    for (int i = 0; i < 6; i++)
        words[i] = rd(c, uc, basic[i]);
    words[6] = return_address & ~1u;
    words[7] = (xpsr & ~(1u << 9)) | (1u << 24) | (realigned ? (1u << 9) : 0u);
    if (extended) {
        for (int i = 0; i < 16; i++)
            words[8 + i] = rd(c, uc, R_S0 + i);
        words[24] = rd(c, uc, R_FPSCR);
        words[25] = 0;
    }
    if (c->mem_write(uc, frame, words, size))
        return -1;
    uint32_t exc_return = extended ? 0xFFFFFFE1u : 0xFFFFFFF1u;
    if (!handler_mode) {
        exc_return |= 0x8u;
        if (on_psp)
            exc_return |= 0x4u;
    }
    wr(c, uc, R_XPSR, (xpsr & 0xF80F0000u) | (1u << 24) | exc);
    wr(c, uc, on_psp ? R_PSP : R_SP, frame);
    wr(c, uc, R_CONTROL, control & CONTROL_NPRIV);
    wr(c, uc, R_LR, exc_return);
    wr(c, uc, R_PC, vector | 1u);
    clear_bit(c->pending, exc);
    set_bit(c->active, exc);
    c->event_register = 1;
    c->entries++;
    return 0;
}

/* Undo ``enter``; 0 on success, -1 to leave it to Python (it raises the fault). */
static int exit_exception(hwut_cpu *c, void *uc, uint32_t exc_return)
{
    uint32_t ipsr = rd(c, uc, R_IPSR) & 0x1FFu;
    uint32_t kind = exc_return & 0xFu;
    if (ipsr == 0 || (kind != 0x1u && kind != 0x9u && kind != 0xDu) || !bit(c->active, ipsr))
        return -1;
    uint32_t control = rd(c, uc, R_CONTROL);
    int to_thread = (exc_return & 0x8u) != 0;
    int use_psp = (exc_return & 0x4u) != 0;
    int extended = !(exc_return & 0x10u);
    uint32_t frame = rd(c, uc, use_psp ? R_PSP : R_MSP);
    uint32_t size = extended ? 0x68u : 0x20u;
    uint32_t words[26];
    if (c->mem_read(uc, frame, words, size))
        return -1;
    clear_bit(c->active, ipsr);
    if (ipsr >= IRQ_BASE && bit(c->levels, ipsr))
        set_bit(c->pending, ipsr);
    uint32_t pc = words[6], xpsr = words[7];
    uint32_t sp = frame + size + ((xpsr & (1u << 9)) ? 4u : 0u);
    control &= CONTROL_NPRIV;
    if (to_thread && use_psp)
        control |= CONTROL_SPSEL;
    if (extended)
        control |= CONTROL_FPCA | CONTROL_SFPA;
    uint32_t stacked_ipsr = to_thread ? 0u : (xpsr & 0x1FFu);
    static const int basic[6] = { R_R0, R_R1, R_R2, R_R3, R_R12, R_LR };
    for (int i = 0; i < 6; i++)
        wr(c, uc, basic[i], words[i]);
    if (extended)
        for (int i = 0; i < 16; i++)
            wr(c, uc, R_S0 + i, words[8 + i]);
    wr(c, uc, R_CONTROL, control);
    if (extended)
        wr(c, uc, R_FPSCR, words[24]);
    wr(c, uc, use_psp ? R_PSP : R_MSP, sp);
    wr(c, uc, R_NZCVQG, xpsr & 0xF80F0000u);
    wr(c, uc, R_XPSR, (xpsr & 0xFE0FFC00u & ~(1u << 9)) | stacked_ipsr | (1u << 24));
    wr(c, uc, R_PC, pc | 1u);
    c->event_register = 1;
    c->exits++;
    return 0;
}

/* Pend the SysTick wrap that is due at ``count``, as sim/core/systick.py does. */
static void systick_due(hwut_cpu *c)
{
    set_bit(c->pending, SYSTICK);
    if (c->sevonpend)
        c->event_register = 1;
    c->systick_next = c->systick_period ? c->systick_next + c->systick_period : NONE_CYCLE;
}

/* SysTick wrapped before the code at ``address``: take it now if it may preempt,
 * else stop so the run loop decides (a mask or an active handler holds it). */
static void systick_wrap(hwut_cpu *c, void *uc, uint64_t address)
{
    systick_due(c);
    int exc = next_to_take(c, uc);
    if (exc >= 0 && enter(c, uc, (unsigned)exc, (uint32_t)address) == 0)
        return;
    c->limit = c->count;
    c->stop(uc);
}

void hwut_count(void *uc, uint64_t address, uint32_t size, hwut_cpu *c)
{
    (void)size;
    if (c->count >= c->limit) {
        c->stop(uc);
        return;
    }
    if (c->count >= c->systick_next && c->fast) {
        systick_wrap(c, uc, address);   /* the instruction at ``address`` waits */
        return;
    }
    c->count++;
}

/* Block-granular timing (opt-in): the same work once per translated block.
 * A block's instruction count is decoded once and cached by address; an
 * interrupt or a slice end waits for the next block boundary. */
static uint32_t block_insns(hwut_cpu *c, void *uc, uint64_t address, uint32_t size)
{
    hwut_block_slot *block_cache = c->blocks;
    unsigned slot = (unsigned)((address >> 1) % BLOCK_SLOTS);
    if (block_cache[slot].size == size && block_cache[slot].address == address)
        return block_cache[slot].insns;
    uint16_t code[512];
    uint32_t n = 0, bytes = size > sizeof code ? (uint32_t)sizeof code : size;
    if (c->mem_read(uc, address, code, bytes) == 0) {
        for (uint32_t i = 0; i < bytes / 2; i++, n++) {
            unsigned top = code[i] >> 11;
            if (top == 0x1D || top == 0x1E || top == 0x1F)
                i++;   /* the second half of a 32-bit instruction */
        }
    } else {
        n = (size + 1) / 2;
    }
    block_cache[slot].address = address;
    block_cache[slot].size = size;
    block_cache[slot].insns = n;
    return n;
}

void hwut_block(void *uc, uint64_t address, uint32_t size, hwut_cpu *c)
{
    if (c->count >= c->limit) {
        c->stop(uc);     /* the block does not run: the engine stops before it */
        return;
    }
    if (c->count >= c->systick_next && c->fast) {
        systick_wrap(c, uc, address);   /* the block waits */
        return;
    }
    c->count += block_insns(c, uc, address, size);
}

void hwut_intr(void *uc, uint32_t intno, hwut_cpu *c)
{
    if (intno == 8 && c->fast) {
        uint32_t pc = rd(c, uc, R_PC);
        if (pc >= 0xFFFFFF00u && exit_exception(c, uc, pc | 1u) == 0) {
            int exc = next_to_take(c, uc);
            if (exc < 0 && highest_pending(c) < 0)
                return;      /* straight back to the interrupted code */
            if (exc >= 0 && enter(c, uc, (unsigned)exc, rd(c, uc, R_PC)) == 0)
                return;      /* tail-chained */
            c->limit = c->count;   /* something waits behind a mask: the run loop decides */
            c->stop(uc);
            return;
        }
    }
    c->last_intno = intno;
    c->stop(uc);
}
