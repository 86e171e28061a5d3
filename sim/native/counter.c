/* Instruction counter for the virtual clock, called by Unicorn before every
 * instruction.  In C because a Python hook per instruction would cost ~100x;
 * sim/counter.py has the same logic in Python for machines without a compiler. */
#include <stdint.h>

typedef int (*hwut_stop_fn)(void *uc);

typedef struct {
    uint64_t count;   /* instructions executed */
    uint64_t limit;   /* stop before executing instruction number limit+1 */
    hwut_stop_fn stop;
} hwut_counter;

void hwut_count(void *uc, uint64_t address, uint32_t size, hwut_counter *c)
{
    (void)address;
    (void)size;
    if (c->count >= c->limit) {
        c->stop(uc);
        return;
    }
    c->count++;
}
