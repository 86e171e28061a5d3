/* The native read cache's state (mmio.c), shared with the native peripheral
 * handlers that fill its slots (see hwut_native). */
#ifndef HWUT_MMIO_H
#define HWUT_MMIO_H

#include <stdint.h>

#define SLOTS 64
#define QUIET 8
#define SCOPES 16
#define NATIVES 4

typedef uint64_t (*hwut_read_fn)(uint64_t address, uint32_t size);
typedef void (*hwut_write_fn)(uint64_t address, uint32_t size, uint64_t value);

typedef struct {
    uint64_t address;
    uint64_t value;       /* with ``period``: the value at cycle ``anchor`` */
    uint64_t valid_until; /* cycle count; 0 = empty */
    uint64_t anchor;      /* a counter register (a timer's CNT) goes up by one */
    uint64_t period;      /* every ``period`` cycles from ``anchor``; 0: a constant */
    uint32_t size;
    uint32_t pad;
    uint64_t step_at;     /* a constant becomes ``step_value`` from this cycle (an ADC's */
    uint64_t step_value;  /* EOC at its conversion's end); UINT64_MAX: it does not */
} hwut_slot;

/* A write that the model says changes nothing until ``valid_until``: one of
 * ``value`` with ``(value & mask) == expect`` (TIM2->DIER rewritten with its own
 * value, TIM2->SR cleared of flags already clear). */
typedef struct {
    uint64_t address, mask, expect, valid_until;
    uint32_t size, pad;
} hwut_quiet;

typedef struct hwut_mmio hwut_mmio;

/* Peripherals whose accesses C takes itself while their model has handed it a
 * state it can keep (a timer's compare path, an ADC's single conversion): a
 * handler returns 1 when it took the access, 0 to leave it to what follows
 * (the cache's slots and quiet writes, then Python). Reads reach a handler only
 * when the cache misses. */
typedef int (*hwut_native_read_fn)(void *state, hwut_mmio *c, uint64_t address, uint32_t size,
                                   uint64_t *value);
typedef int (*hwut_native_write_fn)(void *state, hwut_mmio *c, uint64_t address, uint32_t size,
                                    uint64_t value);
typedef struct {
    uint64_t lo, hi;              /* the peripheral's window [lo, hi) */
    hwut_native_read_fn read;     /* NULL: none */
    hwut_native_write_fn write;   /* NULL: none */
    void *state;
} hwut_native;

struct hwut_mmio {
    const uint64_t *cycles;   /* the instruction counter's count */
    uint64_t *horizon;        /* the idle skip's (counter.c): until when this turn's reads hold */
    hwut_read_fn read;        /* Python: model read (may fill a slot) */
    hwut_write_fn write;      /* Python: model write */
    uint64_t hits;
    uint64_t misses;
    hwut_slot slots[SLOTS];
    uint64_t quiet_hits;      /* writes answered by ``quiet`` */
    hwut_quiet quiet[QUIET];
    /* Peripherals whose writes ``write_scoped`` takes: it empties what the write may
     * change itself (all of the cache, or a range), before the model takes it. */
    hwut_write_fn write_scoped;
    uint64_t n_scopes;
    uint64_t scope_lo[SCOPES], scope_hi[SCOPES];
    uint64_t native_hits;     /* accesses a native handler took */
    uint64_t n_natives;
    hwut_native natives[NATIVES];
};

void hwut_mmio_fill(hwut_mmio *c, uint64_t address, uint32_t size, uint64_t value,
                    uint64_t valid_until, uint64_t anchor, uint64_t period);
void hwut_mmio_fill_step(hwut_mmio *c, uint64_t address, uint32_t size, uint64_t value,
                         uint64_t step_at, uint64_t step_value, uint64_t valid_until);
void hwut_mmio_clear_words(hwut_mmio *c, uint64_t base, uint64_t words);

#endif
