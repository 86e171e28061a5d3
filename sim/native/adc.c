/* An ADC's software-started conversions, taken in C (a native handler of the
 * read cache, see hwut_native in mmio.h).
 *
 * Mbed's AnalogIn reads some 5000 times a second: CR |= ADSTART, a poll of EOC
 * (answered by the cache's step slot), DR. Through Python the ADSTART write
 * and the DR read cost several microseconds each. While the Python model
 * (sim/peripherals/adc.py) says its state is one C can keep exactly — its
 * regular sequence converted once per ADSTART (single mode), no DMA, no
 * interrupt enabled, exact timing, the inputs' values known and holding until
 * ``until`` — it hands that state here (sim/adc_native.py), and these
 * handlers take:
 *   - word writes of CR that only set ADEN/ADSTART and the stored bits (the
 *     sequence's first conversion starts at the write's cycle, each next one
 *     at the end of the one before, ``length[rank]`` cycles each),
 *   - word writes of ISR (flags cleared by writing 1),
 *   - word reads of ISR, CR and DR (DR clears EOC),
 * as the model does: a conversion ending at cycle N is seen by the
 * instructions after N (EOSMP and EOC set, OVR over an unread EOC, DR loaded
 * unless an overrun keeps the old data; after the last rank EOS set and
 * ADSTART cleared). After each access the cache's ISR and CR slots are
 * refilled (with their step at the next conversion's end). Everything else is
 * declined (returns 0) and reaches Python, which first takes the state back
 * (``changes`` tells it whether C moved it). The registers' layout comes from
 * the model, as data. */
#include <stdint.h>

#include "layout.h"
#include "mmio.h"

#define NONE UINT64_MAX
#define ADCS 4
#define RANKS 16

typedef struct {
    uint64_t active;      /* 1 while C keeps the state below; Python sets and clears it */
    uint64_t base;        /* the ADC's window: [base, base + 0x100) */
    uint64_t until;       /* C takes accesses only before this cycle (the input holds) */
    uint64_t isr, cr;     /* the registers' words */
    uint64_t data;        /* what DR reads */
    uint64_t due;         /* the end cycle of the conversion going on; NONE: none */
    uint64_t rank;        /* the rank of that conversion in the regular sequence (0 first) */
    uint64_t ranks;       /* the sequence's length (SQR1.L + 1) */
    uint64_t length[RANKS]; /* each rank's conversion, in core cycles */
    uint64_t value[RANKS];  /* each rank's DR data (input, resolution, alignment applied) */
    uint64_t ovrmod;      /* 1: a conversion over an unread EOC overwrites DR */
    uint64_t off_isr, off_cr, off_dr;
    uint64_t isr_clear1;  /* ISR's bits a write of 1 clears */
    uint64_t cr_rw;       /* CR's bits stored as written */
    uint64_t cr_set;      /* CR's bits a write of 1 sets */
    uint64_t cr_refuse;   /* CR's bits whose write is left to Python (ADCAL, ADDIS, ADSTP ...) */
    uint64_t aden, adstart, adrdy, eoc, ovr;
    uint64_t done;        /* ISR's bits each conversion's end sets (EOSMP, EOC) */
    uint64_t eos;         /* ISR's bit the sequence's last end sets */
    uint64_t changes;     /* accesses C took since Python handed the state over */
    uint64_t conversions; /* conversions C started (for figures) */
    uint64_t reads;       /* reads C answered (cache misses that never reached Python) */
} hwut_adc;

/* mmio.c */
void hwut_mmio_clear_range(hwut_mmio *c, uint64_t lo, uint64_t hi);

/* The conversions ended by the instruction before the one running now, each
 * starting the next rank's at its own end cycle (Adc._converted). */
static void catch_up(hwut_adc *a, uint64_t now)
{
    while (a->due != NONE && a->due + 1 <= now) {
        uint64_t value = a->value[a->rank];
        if (a->isr & a->eoc) {
            a->isr |= a->ovr;
            if (a->ovrmod)
                a->data = value;
        } else {
            a->data = value;
        }
        a->isr |= a->done;
        if (++a->rank >= a->ranks) {
            a->isr |= a->eos;
            a->rank = 0;
            a->cr &= ~a->adstart;   /* single mode: the sequence is over */
            a->due = NONE;
        } else {
            a->due += a->length[a->rank];
        }
    }
}

/* ISR and CR as the cache answers them from now on (Adc.read_backs / Adc.step). */
static void refill(hwut_adc *a, hwut_mmio *c)
{
    uint64_t isr = a->base + a->off_isr, cr = a->base + a->off_cr;
    if (a->due != NONE && a->due + 1 < a->until) {
        uint64_t after = a->isr | a->done | ((a->isr & a->eoc) ? a->ovr : 0);
        if (a->rank + 1 >= a->ranks) {   /* the last: ISR and CR hold after it */
            hwut_mmio_fill_step(c, isr, 4, a->isr, a->due + 1, after | a->eos, a->until);
            hwut_mmio_fill_step(c, cr, 4, a->cr, a->due + 1, a->cr & ~a->adstart, a->until);
        } else {   /* ISR steps, and holds until the next rank's end */
            uint64_t next = a->due + a->length[a->rank + 1] + 1;
            if (next > a->until)
                next = a->until;
            hwut_mmio_fill_step(c, isr, 4, a->isr, a->due + 1, after, next);
            hwut_mmio_fill(c, cr, 4, a->cr, next, 0, 0);
        }
    } else {   /* no conversion, or one ending once C no longer takes the ADC */
        hwut_mmio_fill(c, isr, 4, a->isr, a->until, 0, 0);
        hwut_mmio_fill(c, cr, 4, a->cr, a->until, 0, 0);
    }
}

/* The ADCs of one chip, behind one entry of the handler table (their windows
 * lie next to each other; the common blocks between them are declined). */
typedef struct {
    uint64_t n;
    hwut_adc adc[ADCS];
} hwut_adcs;

/* The ADC whose state C holds for an access of ``size`` bytes at ``address`` now,
 * or 0: the access goes on to the cache and Python. */
static hwut_adc *taking(hwut_adcs *bank, const hwut_mmio *c, uint64_t address, uint32_t size)
{
    for (uint64_t i = 0; i < bank->n; i++) {
        hwut_adc *a = &bank->adc[i];
        if (a->base == (address & ~(uint64_t)0xFF))
            return a->active && size == 4 && *c->cycles < a->until ? a : 0;
    }
    return 0;
}

int hwut_adc_write(void *state, hwut_mmio *c, uint64_t address, uint32_t size, uint64_t value)
{
    hwut_adc *a = taking(state, c, address, size);
    if (!a)
        return 0;
    uint64_t now = *c->cycles, off = address - a->base;
    if (off == a->off_cr) {
        if (value & a->cr_refuse)
            return 0;
        catch_up(a, now);
        uint64_t cr = (a->cr & ~a->cr_rw) | (value & a->cr_rw) | (value & a->cr_set);
        a->cr = cr & 0xFFFFFFFFu;
        if (value & a->aden)
            a->isr |= a->adrdy;            /* ready at once, as the model says */
        if (value & a->adstart) {
            if (!(a->cr & a->aden)) {
                a->cr &= ~a->adstart;      /* ignored unless the ADC is enabled */
            } else if (a->due == NONE) {
                a->rank = 0;
                a->due = now + a->length[0];
                a->conversions++;
            }
        }
    } else if (off == a->off_isr) {
        catch_up(a, now);
        a->isr &= ~(value & a->isr_clear1);
    } else {
        return 0;
    }
    a->changes++;
    hwut_mmio_clear_range(c, a->base, a->base + 0x100);   /* as Python forgets the ADC's */
    refill(a, c);
    return 1;
}

int hwut_adc_read(void *state, hwut_mmio *c, uint64_t address, uint32_t size, uint64_t *value)
{
    hwut_adc *a = taking(state, c, address, size);
    if (!a)
        return 0;
    uint64_t now = *c->cycles, off = address - a->base;
    if (off == a->off_dr) {
        catch_up(a, now);
        a->isr &= ~a->eoc;
        *value = a->data & 0xFFFFFFFFu;
        hwut_mmio_clear_range(c, a->base, a->base + 0x100);
    } else if (off == a->off_isr || off == a->off_cr) {
        catch_up(a, now);
        *value = off == a->off_isr ? a->isr : a->cr;
    } else {
        return 0;
    }
    a->changes++;
    a->reads++;
    refill(a, c);
    return 1;
}

/* -- the layout of the struct above, for the test that holds ctypes to it -- */
#define F(member) HWUT_FIELD(hwut_adc, member)
static const hwut_field adc_fields[] = {
    F(active), F(base), F(until), F(isr), F(cr), F(data), F(due), F(rank), F(ranks),
    F(length), F(value), F(ovrmod), F(off_isr), F(off_cr), F(off_dr), F(isr_clear1), F(cr_rw), F(cr_set),
    F(cr_refuse), F(aden), F(adstart), F(adrdy), F(eoc), F(ovr), F(done), F(eos), F(changes),
    F(conversions), F(reads),
};
#undef F
#define F(member) HWUT_FIELD(hwut_adcs, member)
static const hwut_field bank_fields[] = { F(n), F(adc) };
#undef F

static const hwut_layout layouts[] = {
    HWUT_LAYOUT("AdcState", hwut_adc, adc_fields),
    HWUT_LAYOUT("AdcBank", hwut_adcs, bank_fields),
    { NULL, 0, 0, NULL },
};

const hwut_layout *hwut_adc_layouts(void) { return layouts; }
