/**
 * @file mt_semihost.h
 * @brief Host files through Arm semihosting: the storage of the QEMU boards (a file standing in for
 *        flash). Only for a target that runs under QEMU (-semihosting-config enable=on) or a debugger:
 *        on a bare board a semihosting call without a debugger locks the core up.
 *
 * Names are host paths, relative to the emulator's working directory. Every call returns a negative
 * value on failure.
 */
#ifndef MT_SEMIHOST_H
#define MT_SEMIHOST_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** fopen()-style modes of SYS_OPEN. */
enum { MT_SH_RB = 1, MT_SH_RPLUSB = 3, MT_SH_WPLUSB = 7 };

/** Open @p name with MT_SH_* @p mode; returns a handle >= 0 or -1. */
int mt_semihost_open(const char *name, int mode);
/** Close a handle. */
int mt_semihost_close(int handle);
/** Move to byte @p offset from the start. */
int mt_semihost_seek(int handle, uint32_t offset);
/** Read exactly @p n bytes; -1 when fewer were available. */
int mt_semihost_read(int handle, void *buf, uint32_t n);
/** Write exactly @p n bytes; -1 when fewer were written. */
int mt_semihost_write(int handle, const void *buf, uint32_t n);

#ifdef __cplusplus
}
#endif
#endif /* MT_SEMIHOST_H */
