/* Each native struct that Python mirrors in ctypes describes itself: the size
 * and offset of every field, read by tests/sim/test_native.py and compared with
 * the mirror, so that the two cannot drift apart unnoticed. */
#ifndef HWUT_LAYOUT_H
#define HWUT_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name;
    uint32_t offset, size;
} hwut_field;

typedef struct {
    const char *name;        /* the ctypes mirror's class name; NULL ends a list */
    uint32_t size, n_fields;
    const hwut_field *fields;
} hwut_layout;

#define HWUT_FIELD(type, member) \
    { #member, (uint32_t)offsetof(type, member), (uint32_t)sizeof(((type *)0)->member) }
#define HWUT_LAYOUT(mirror, type, fields) \
    { mirror, (uint32_t)sizeof(type), (uint32_t)(sizeof fields / sizeof fields[0]), fields }

#endif
