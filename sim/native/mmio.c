/* Read cache in front of the Python peripheral models.
 *
 * Every MMIO access through Python costs over a microsecond. Most reads in a
 * polling loop return a value the model has declared stable until a known
 * cycle (no write and no clock event can intervene before it), so the first
 * read is answered by Python and the rest, up to that cycle, from here. Any
 * write through this window empties the cache; Python empties it whenever a
 * clock event fires. Without this file the same Python callbacks serve every
 * access, with the same results. A write to a peripheral in a ``scope`` goes to
 * ``write_scoped``, which empties only what the write may change (sim/machine.py
 * ``_scoped_write``). */
#include <stdint.h>

#include "layout.h"
#include "mmio.h"

typedef struct {
    hwut_mmio *cache;
    uint64_t base;
} hwut_window;

static unsigned slot_of(uint64_t address) { return (unsigned)((address >> 2) % SLOTS); }

static void clear(hwut_mmio *c)
{
    for (unsigned i = 0; i < SLOTS; i++)
        c->slots[i].valid_until = 0;
    for (unsigned i = 0; i < QUIET; i++)
        c->quiet[i].valid_until = 0;
}

uint64_t hwut_mmio_read(void *uc, uint64_t offset, unsigned size, hwut_window *w)
{
    (void)uc;
    hwut_mmio *c = w->cache;
    uint64_t address = w->base + offset;
    hwut_slot *s = &c->slots[slot_of(address)];
    if (s->valid_until && s->address == address && s->size == size && *c->cycles < s->valid_until) {
        c->hits++;
        if (!s->period) {
            uint64_t until = s->valid_until, v = s->value;
            if (*c->cycles >= s->step_at)   /* the word after the step, read at offset 0 */
                v = size >= 8 ? s->step_value : s->step_value & ((1ull << (8 * size)) - 1);
            else if (s->step_at < until)
                until = s->step_at;
            if (until < *c->horizon)
                *c->horizon = until;
            return v;
        }
        uint64_t k = (*c->cycles - s->anchor) / s->period;
        uint64_t next = s->anchor + (k + 1) * s->period;   /* the value holds until then */
        if (next < *c->horizon)
            *c->horizon = next;
        uint64_t v = s->value + k;
        return size >= 8 ? v : v & ((1ull << (8 * size)) - 1);
    }
    c->misses++;
    *c->horizon = 0;   /* the model may have changed */
    for (unsigned i = 0; i < c->n_natives; i++) {
        hwut_native *n = &c->natives[i];
        uint64_t v;
        if (address >= n->lo && address < n->hi && n->read && n->read(n->state, c, address, size, &v)) {
            c->native_hits++;
            return v;
        }
    }
    return c->read(address, size);
}

void hwut_mmio_write(void *uc, uint64_t offset, unsigned size, uint64_t value, hwut_window *w)
{
    (void)uc;
    hwut_mmio *c = w->cache;
    uint64_t address = w->base + offset;
    hwut_quiet *q = &c->quiet[(address >> 2) % QUIET];
    *c->horizon = 0;
    for (unsigned i = 0; i < c->n_natives; i++) {
        hwut_native *n = &c->natives[i];
        if (address >= n->lo && address < n->hi && n->write && n->write(n->state, c, address, size, value)) {
            c->native_hits++;
            return;
        }
    }
    if (q->valid_until && q->address == address && q->size == size
        && *c->cycles < q->valid_until && (value & q->mask) == q->expect) {
        c->quiet_hits++;   /* the model would change nothing: neither it nor the cache */
        return;
    }
    for (unsigned i = 0; i < c->n_scopes; i++) {
        if (address >= c->scope_lo[i] && address < c->scope_hi[i]) {
            c->write_scoped(address, size, value);   /* Python forgets what it must */
            return;
        }
    }
    clear(c);
    c->write(address, size, value);
}

/* Accesses of [lo, hi) are offered to ``read`` and ``write`` first (see
 * hwut_native); 0 when the table is full (they all go the usual way). */
int hwut_mmio_native(hwut_mmio *c, uint64_t lo, uint64_t hi, hwut_native_read_fn read,
                     hwut_native_write_fn write, void *state)
{
    if (c->n_natives >= NATIVES)
        return 0;
    hwut_native *n = &c->natives[c->n_natives++];
    n->lo = lo;
    n->hi = hi;
    n->read = read;
    n->write = write;
    n->state = state;
    return 1;
}

void hwut_mmio_quiet(hwut_mmio *c, uint64_t address, uint32_t size, uint64_t mask,
                     uint64_t expect, uint64_t valid_until)
{
    hwut_quiet *q = &c->quiet[(address >> 2) % QUIET];
    q->address = address;
    q->size = size;
    q->mask = mask;
    q->expect = expect;
    q->valid_until = valid_until;
}

void hwut_mmio_fill(hwut_mmio *c, uint64_t address, uint32_t size, uint64_t value,
                    uint64_t valid_until, uint64_t anchor, uint64_t period)
{
    hwut_slot *s = &c->slots[slot_of(address)];
    s->address = address;
    s->size = size;
    s->value = value;
    s->valid_until = valid_until;
    s->anchor = anchor;
    s->period = period;
    s->step_at = UINT64_MAX;
}

/* A constant that becomes ``step_value`` at cycle ``step_at`` and holds until
 * ``valid_until`` (``step_at`` < ``valid_until``). */
void hwut_mmio_fill_step(hwut_mmio *c, uint64_t address, uint32_t size, uint64_t value,
                         uint64_t step_at, uint64_t step_value, uint64_t valid_until)
{
    hwut_mmio_fill(c, address, size, value, valid_until, 0, 0);
    hwut_slot *s = &c->slots[slot_of(address)];
    s->step_at = step_at;
    s->step_value = step_value;
}

/* The ramp (a counting register) the cache holds for ``address`` at cycle
 * ``now``, for the ramp skip (rampskip.c): 1 and its terms, or 0 if there is none. */
typedef struct {
    uint64_t value, anchor, period, valid_until;
} hwut_ramp_view;

int hwut_mmio_ramp_view(const hwut_mmio *c, uint64_t address, uint32_t size, uint64_t now,
                        hwut_ramp_view *out)
{
    const hwut_slot *s = &c->slots[slot_of(address)];
    if (!s->valid_until || !s->period || s->address != address || s->size != size
        || now < s->anchor || now >= s->valid_until)
        return 0;
    out->value = s->value;
    out->anchor = s->anchor;
    out->period = s->period;
    out->valid_until = s->valid_until;
    return 1;
}

void hwut_mmio_clear(hwut_mmio *c)
{
    clear(c);
}

/* Forget what the cache holds for the words at ``base`` + 4 * i whose bit i is set
 * in ``words`` (any access size within them; reads and quiet writes). */
void hwut_mmio_clear_words(hwut_mmio *c, uint64_t base, uint64_t words)
{
    for (unsigned i = 0; i < SLOTS; i++) {
        uint64_t w = (c->slots[i].address - base) >> 2;
        if (c->slots[i].address >= base && w < 64 && (words >> w & 1))
            c->slots[i].valid_until = 0;
    }
    for (unsigned i = 0; i < QUIET; i++) {
        uint64_t w = (c->quiet[i].address - base) >> 2;
        if (c->quiet[i].address >= base && w < 64 && (words >> w & 1))
            c->quiet[i].valid_until = 0;
    }
}

/* Forget what the cache holds for [lo, hi) only (reads and quiet writes). */
void hwut_mmio_clear_range(hwut_mmio *c, uint64_t lo, uint64_t hi)
{
    for (unsigned i = 0; i < SLOTS; i++)
        if (c->slots[i].address >= lo && c->slots[i].address < hi)
            c->slots[i].valid_until = 0;
    for (unsigned i = 0; i < QUIET; i++)
        if (c->quiet[i].address >= lo && c->quiet[i].address < hi)
            c->quiet[i].valid_until = 0;
}

/* -- the layout of the structs above, for the test that holds ctypes to it -- */
#define F(member) HWUT_FIELD(hwut_slot, member)
static const hwut_field slot_fields[] = {
    F(address), F(value), F(valid_until), F(anchor), F(period), F(size), F(pad), F(step_at),
    F(step_value),
};
#undef F
#define F(member) HWUT_FIELD(hwut_mmio, member)
static const hwut_field mmio_fields[] = {
    F(cycles), F(horizon), F(read), F(write), F(hits), F(misses), F(slots), F(quiet_hits),
    F(quiet), F(write_scoped), F(n_scopes), F(scope_lo), F(scope_hi), F(native_hits),
    F(n_natives), F(natives),
};
#undef F
#define F(member) HWUT_FIELD(hwut_native, member)
static const hwut_field native_fields[] = { F(lo), F(hi), F(read), F(write), F(state) };
#undef F
#define F(member) HWUT_FIELD(hwut_quiet, member)
static const hwut_field quiet_fields[] = {
    F(address), F(mask), F(expect), F(valid_until), F(size), F(pad),
};
#undef F
#define F(member) HWUT_FIELD(hwut_window, member)
static const hwut_field window_fields[] = { F(cache), F(base) };
#undef F

static const hwut_layout layouts[] = {
    HWUT_LAYOUT("_Slot", hwut_slot, slot_fields),
    HWUT_LAYOUT("_Cache", hwut_mmio, mmio_fields),
    HWUT_LAYOUT("_Quiet", hwut_quiet, quiet_fields),
    HWUT_LAYOUT("_Window", hwut_window, window_fields),
    HWUT_LAYOUT("_Native", hwut_native, native_fields),
    { NULL, 0, 0, NULL },
};

const hwut_layout *hwut_mmio_layouts(void) { return layouts; }
