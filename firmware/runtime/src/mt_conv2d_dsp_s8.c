/* conv2d int8 forward with the Arm DSP extension (selected by mt_s8_dsp.h): the reference kernel's integers
 * from dual 16-bit multiply-accumulates (SMLAD, two MACs per instruction).
 *
 * Every convolution but the depthwise ones of mt_dwconv_dsp_s8.c is a matrix product per group. For a run
 * of output positions (mt_s8_gemm_positions), the taps' 2 * (x - in_zp) go into column tiles in the
 * scratch as int16 (zero for taps outside the input), 4 positions per tile. Then, for each output channel
 * of the group, mt_s8_gemm_row runs over the tiles: per group of 4 taps one LDRD of the weight pairs
 * (w0, w2), (w1, w3) (the pairs the tiles hold the columns' taps in), two LDMs of the 4 columns' pairs and
 * 8 SMLADs; then the 4 outputs' requantization (mt_s8_dsp.h) and one store. The first tile reads the
 * channel's int8 weight row and unpacks it (SXTB16) into int16 pairs in the scratch for the other tiles.
 * Kernels whose rows are whole words of taps (kernel_w a multiple of 4: audio models' first layers) load
 * each group of 4 taps as one word of the input row, shifted at the input's edges (mt_s8_im2col_words).
 * Other kernels gather each position's taps into a byte row on the stack and unpack its words, a chunk of
 * input channels at a time (up to MT_S8_GATHER_TAPS taps; 4 positions of an output row at once in chunks
 * of up to MT_S8_GATHER4_TAPS); kernels whose one channel does not fit a chunk go tap by tap. A last tile
 * of one position is one column's dot product. */
#include "mt_s8_dsp.h"

#if MT_S8_DSP

/* The next pair of taps of the 4 columns (LDM) against the weight pair in register W: 4 SMLADs. */
#define MT_S8_PAIR(W)                   \
    "ldmia r1!, {r8, r9, r10, r11}\n\t" \
    "smlad r4, r8, " W ", r4\n\t"       \
    "smlad r5, r9, " W ", r5\n\t"       \
    "smlad r6, r10, " W ", r6\n\t"      \
    "smlad r7, r11, " W ", r7\n\t"
/* One group of 4 taps of the 4 columns: two weight pairs (LDRD), the columns' pairs (LDM), 8 SMLADs. */
#define MT_S8_GROUP "ldrd r2, r3, [r12], #8\n\t" MT_S8_PAIR("r2") MT_S8_PAIR("r3")
/* The next 4 int8 weights (r12) as the pairs (w0, w2), (w1, w3) in r2, r3, also stored (lr) for the next
 * tiles; MT_S8_GROUP from them. */
#define MT_S8_UNPACK4           \
    "ldr r2, [r12], #4\n\t"     \
    "sxtb16 r3, r2, ror #8\n\t" \
    "sxtb16 r2, r2\n\t"         \
    "strd r2, r3, [lr], #8\n\t"
#define MT_S8_GROUP_UNPACK MT_S8_UNPACK4 MT_S8_PAIR("r2") MT_S8_PAIR("r3")
/* The first pair of taps of a tile's sums: the accumulators start from the channel's start value (r4). */
#define MT_S8_PAIR_FIRST(W)             \
    "ldmia r1!, {r8, r9, r10, r11}\n\t" \
    "smlad r5, r9, " W ", r4\n\t"       \
    "smlad r6, r10, " W ", r4\n\t"      \
    "smlad r7, r11, " W ", r4\n\t"      \
    "smlad r4, r8, " W ", r4\n\t"
#define MT_S8_GROUP_FIRST \
    "ldr r4, [r0]\n\t"    \
    "ldrd r2, r3, [r12], #8\n\t" MT_S8_PAIR_FIRST("r2") MT_S8_PAIR("r3")
#define MT_S8_GROUP_UNPACK_FIRST "ldr r4, [r0]\n\t" MT_S8_UNPACK4 MT_S8_PAIR_FIRST("r2") MT_S8_PAIR("r3")
/* FIELD (a word of the channel) iterations of BODY, the counter in c->count (no register is free). */
#define MT_S8_MEM_LOOP(FIELD, L, E, BODY)                          \
    "ldr r2, [r0, #" FIELD "]\n\t"                                 \
    "cmp r2, #0\n\t"                                               \
    "beq " E "f\n\t"                                               \
    "str r2, [r0, #84]\n\t" L ":\n\t" BODY "ldr r2, [r0, #84]\n\t" \
    "subs r2, r2, #1\n\t"                                          \
    "str r2, [r0, #84]\n\t"                                        \
    "bne " L "b\n\t" E ":\n\t"
/* The sums of one tile, from the int16 weight row: the first group, then c->g1 single groups and c->g4
 * groups of 4; MT_S8_SUMS_G4 where c->g1 = 3 (rows of whole groups of 16 taps), the 3 unrolled and the
 * groups of 4 run by 8 (LSRS leaves the odd one in the carry, the zero in Z: the groups set no flag). */
#define MT_S8_GROUP4 MT_S8_GROUP MT_S8_GROUP MT_S8_GROUP MT_S8_GROUP
#define MT_S8_SUMS_G4                                                                   \
    "ldrd r12, lr, [r0, #36]\n\t" MT_S8_GROUP_FIRST MT_S8_GROUP MT_S8_GROUP MT_S8_GROUP \
    "lsrs lr, lr, #1\n\t"                                                               \
    "bcc 2f\n\t" MT_S8_GROUP4 "2:\n\t"                                                  \
    "beq 3f\n\t"                                                                        \
    "1:\n\t" MT_S8_GROUP4 MT_S8_GROUP4 "subs lr, lr, #1\n\t"                            \
    "bne 1b\n\t"                                                                        \
    "3:\n\t"
#define MT_S8_SUMS_ANY                                                             \
    "ldr r12, [r0, #36]\n\t" MT_S8_GROUP_FIRST "ldr r2, [r0, #44]\n\t"             \
    "tbb [pc, r2]\n\t"                                                             \
    "20:\n\t"                                                                      \
    ".byte (24f - 20b) / 2, (21f - 20b) / 2, (22f - 20b) / 2, (23f - 20b) / 2\n\t" \
    "23:\n\t" MT_S8_GROUP "22:\n\t" MT_S8_GROUP "21:\n\t" MT_S8_GROUP "24:\n\t"    \
    "ldr lr, [r0, #40]\n\t"                                                        \
    "cmp lr, #0\n\t"                                                               \
    "beq 3f\n\t"                                                                   \
    "1:\n\t" MT_S8_GROUP4 "subs lr, lr, #1\n\t"                                    \
    "bne 1b\n\t"                                                                   \
    "3:\n\t"

/* The first tile's sums from the int8 row c->w8 (taps a multiple of 4), which they unpack into c->wq: the
 * groups in the order of MT_S8_SUMS_ANY (counters in memory: r12 and lr hold the rows) or, for rows of
 * whole groups of 16 taps, of MT_S8_SUMS_G4 (the 3 single groups unrolled). */
#define MT_S8_UNPACK_ANY                                                                        \
    MT_S8_GROUP_UNPACK_FIRST MT_S8_MEM_LOOP("44", "6", "9", MT_S8_GROUP_UNPACK) MT_S8_MEM_LOOP( \
        "40", "5", "8", MT_S8_GROUP_UNPACK MT_S8_GROUP_UNPACK MT_S8_GROUP_UNPACK MT_S8_GROUP_UNPACK)
#define MT_S8_UNPACK_G4                                                                               \
    MT_S8_GROUP_UNPACK_FIRST MT_S8_GROUP_UNPACK MT_S8_GROUP_UNPACK MT_S8_GROUP_UNPACK MT_S8_MEM_LOOP( \
        "40", "5", "8", MT_S8_GROUP_UNPACK MT_S8_GROUP_UNPACK MT_S8_GROUP_UNPACK MT_S8_GROUP_UNPACK)

/* One channel over the tiles from `tile` (at least one): 4 outputs per tile from c->y to c->yend. With
 * `unpack`, the first tile's sums (UNPACK) read the int8 row c->w8 and write c->wq. */
#define MT_S8_GEMM_ROW(NAME, UNPACK, SUMS, OUT)                                                       \
    static void __attribute__((noinline)) NAME(mt_s8_chan_t *c, const uint32_t *tile, int32_t unpack) \
    {                                                                                                 \
        register mt_s8_chan_t *r0 __asm__("r0") = c;                                                  \
        register const uint32_t *r1 __asm__("r1") = tile;                                             \
        register int32_t r2 __asm__("r2") = unpack;                                                   \
        __asm__ volatile("cmp r2, #0\n\t"                                                             \
                         "beq 0f\n\t"                                                                 \
                         "ldr r12, [r0, #80]\n\t"                                                     \
                         "ldr lr, [r0, #36]\n\t" UNPACK "b 4f\n\t"                                    \
                         "0:\n\t" SUMS "4:\n\t" OUT "ldrd r12, r11, [r0, #72]\n\t"                    \
                         "str r4, [r12], #4\n\t"                                                      \
                         "str r12, [r0, #72]\n\t"                                                     \
                         "cmp r12, r11\n\t"                                                           \
                         "bne 0b\n\t"                                                                 \
                         : "+r"(r0), "+r"(r1), "+r"(r2)                                               \
                         :                                                                            \
                         : "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12", "lr", "cc", \
                           "memory");                                                                 \
    }

/* One per requantization kind (FAST, FOLDED with and without the activation's clamp, WIDE) and, but for
 * WIDE, for weight rows of whole groups of 16 taps (_g4: c->g1 = 3) or any length. */
MT_S8_GEMM_ROW(mt_s8_gemm_row, MT_S8_UNPACK_ANY, MT_S8_SUMS_ANY, MT_S8_OUT4)
MT_S8_GEMM_ROW(mt_s8_gemm_row_g4, MT_S8_UNPACK_G4, MT_S8_SUMS_G4, MT_S8_OUT4)
MT_S8_GEMM_ROW(mt_s8_gemm_row_folded, MT_S8_UNPACK_ANY, MT_S8_SUMS_ANY, MT_S8_OUT4_FOLDED)
MT_S8_GEMM_ROW(mt_s8_gemm_row_folded_g4, MT_S8_UNPACK_G4, MT_S8_SUMS_G4, MT_S8_OUT4_FOLDED)
MT_S8_GEMM_ROW(mt_s8_gemm_row_folded_clamp, MT_S8_UNPACK_ANY, MT_S8_SUMS_ANY, MT_S8_OUT4_FOLDED MT_S8_CLAMP4)
MT_S8_GEMM_ROW(mt_s8_gemm_row_folded_clamp_g4, MT_S8_UNPACK_G4, MT_S8_SUMS_G4, MT_S8_OUT4_FOLDED MT_S8_CLAMP4)
MT_S8_GEMM_ROW(mt_s8_gemm_row_wide, MT_S8_UNPACK_ANY, MT_S8_SUMS_ANY, MT_S8_OUT4_WIDE)

/* The 4 sums of one tile in C (a SLOW channel), from the int16 weight row wq (g groups of 4 taps). */
static void mt_s8_dot4(const uint32_t *wq, const uint32_t *col, int32_t g, int32_t a[4])
{
    for (int32_t i = 0; i < g; ++i, wq += 2, col += 8) {
        for (int32_t j = 0; j < 4; ++j) { /* memcpy loads: the tiles may be written as int16 */
            a[j] = __smlad(mt_ld32(col + 4 + j), wq[1], __smlad(mt_ld32(col + j), wq[0], a[j]));
        }
    }
}

/* ---- column tiles ---------------------------------------------------------------------------------- */

/* Word index in a tile of the pair (k0, k2) (h = 0) or (k1, k3) (h = 1) of group g, column c. */
static inline int32_t mt_s8_word(int32_t g, int32_t h, int32_t c)
{
    return g * 8 + h * 4 + c;
}

/* 2 * (x - zp) of the pairs of bytes 0 and 2 (lo) and 1 and 3 (hi) of a word; nz2 = (-2 zp, -2 zp). */
static inline void mt_s8_pairs(uint32_t u, uint32_t nz2, uint32_t *lo, uint32_t *hi)
{
    *lo = mt_sxtab16(mt_sxtab16(nz2, u), u);
    *hi = mt_sxtab16_ror8(mt_sxtab16_ror8(nz2, u), u);
}

/* Column c of a tile (kp taps) for output position p, or zero (p < 0). Taps run over (ci, ky, kx); a run
 * of 4 taps inside one input row (kernel_w a multiple of 4, no dilation) is one word. */
static void mt_s8_im2col_any(const mt_conv_geom_t *g, const int8_t *xg, int32_t zp, int32_t p, uint32_t *tile,
                             int32_t c)
{
    const int32_t kp = (g->K + 3) & ~3;
    int16_t *t16 = (int16_t *)(void *)tile;
    const uint32_t nz2 = (uint32_t)(uint16_t)(-2 * zp) * 0x00010001u;
    int32_t k = 0;
    if (p >= 0) {
        const int32_t oy = p / g->out_w, ox = p - oy * g->out_w;
        const int32_t iy0 = oy * g->sh - g->pt, ix0 = ox * g->sw - g->pl;
        int32_t ky0, ky1, kx0, kx1;
        mt_valid_range(iy0, g->dh, g->kh, g->in_h, &ky0, &ky1);
        mt_valid_range(ix0, g->dw, g->kw, g->in_w, &kx0, &kx1);
        const int32_t words = (g->kw & 3) == 0 && g->dw == 1;
        for (int32_t ci = 0; ci < g->cin_g; ++ci) {
            for (int32_t ky = 0; ky < g->kh; ++ky) {
                const int8_t *row = xg + ci * g->plane + (iy0 + ky * g->dh) * g->in_w + ix0;
                const int32_t inside = ky >= ky0 && ky < ky1;
                const int32_t a = inside ? kx0 : g->kw, e = inside ? kx1 : g->kw;
                int32_t kx = 0;
                for (; words && kx >= a && kx + 4 <= e; kx += 4, k += 4) {
                    mt_s8_pairs(mt_ld32(row + kx), nz2, &tile[mt_s8_word(k >> 2, 0, c)],
                                &tile[mt_s8_word(k >> 2, 1, c)]);
                }
                for (; kx < g->kw; ++kx, ++k) {
                    const int32_t v = (kx >= a && kx < e) ? 2 * ((int32_t)row[kx * g->dw] - zp) : 0;
                    t16[2 * mt_s8_word(k >> 2, k & 1, c) + ((k >> 1) & 1)] = (int16_t)v;
                }
            }
        }
    }
    for (; k < kp; ++k) {
        t16[2 * mt_s8_word(k >> 2, k & 1, c) + ((k >> 1) & 1)] = 0;
    }
}

/* Whether each kernel row of g is whole words of taps that mt_s8_im2col_words loads as words: kernel_w a
 * multiple of 4, no dilation across a row, input rows at least a word wide. */
static inline int32_t mt_s8_words(const mt_conv_geom_t *g)
{
    return (g->kw & 3) == 0 && g->dw == 1 && g->in_w >= 4;
}

/* Column c of a tile for output position p (0 <= p < P) when mt_s8_words(g): each group of 4 taps is one
 * word of its input row. Where the window crosses the input's left (right) edge, its first (last) group is
 * loaded from the row's first (last) 4 bytes and shifted into place, the taps outside taking the zero
 * point, whose 2 * (x - zp) is 0 as the reference's missing taps; the groups of rows outside the input are
 * 0. Returns 0 (nothing written) where a whole group lies outside the input (padding of 4 or more). */
static int32_t __attribute__((noinline)) mt_s8_im2col_words(const mt_conv_geom_t *g, const int8_t *xg,
                                                            int32_t zp, int32_t p, uint32_t *tile, int32_t c)
{
    const int32_t kw = g->kw, kh = g->kh, cin = g->cin_g, rstep = g->dh * g->in_w, plane = g->plane;
    const int32_t oy = p / g->out_w, ox = p - oy * g->out_w;
    const int32_t iy0 = oy * g->sh - g->pt, ix0 = ox * g->sw - g->pl;
    int32_t ky0, ky1, kx0, kx1;
    mt_valid_range(iy0, g->dh, kh, g->in_h, &ky0, &ky1);
    mt_valid_range(ix0, 1, kw, g->in_w, &kx0, &kx1);
    const int32_t la = kx0, rb = kw - kx1; /* taps outside on the left, on the right */
    if (la >= 4 || rb >= 4) {
        return 0;
    }
    const uint32_t nz2 = (uint32_t)(uint16_t)(-2 * zp) * 0x00010001u,
                   zp4 = ((uint32_t)zp & 0xFFu) * 0x01010101u;
    /* the first group: loaded at row + o0, shifted left by l0 and right by r0 bits, or-ed with f0 (the last
     * group too when it is the only one); the last: at row + kw - 4 - rb, shifted right by 8 rb, or fr */
    const uint32_t fl = la ? zp4 >> (32 - 8 * la) : 0u, fr = rb ? zp4 << (32 - 8 * rb) : 0u;
    const int32_t one = kw == 4, o0 = la ? la : (one ? -rb : 0), l0 = 8 * la, r0 = one ? 8 * rb : 0;
    const uint32_t f0 = fl | (one ? fr : 0u);
    const int32_t n = kw >> 2; /* groups per kernel row */
    uint32_t *t = tile + c;    /* group k / 4: words 8 (k / 4) + c and + 4 */
    for (int32_t ci = 0; ci < cin; ++ci) {
        for (uint32_t *e = t + 8 * n * ky0; t != e; t += 8) { /* rows above the input */
            t[0] = 0u;
            t[4] = 0u;
        }
        const int8_t *row = xg + ci * plane + (iy0 + ky0 * g->dh) * g->in_w + ix0;
        for (int32_t ky = ky0; ky < ky1; ++ky, row += rstep) {
            mt_s8_pairs(((mt_ld32(row + o0) << l0) >> r0) | f0, nz2, &t[0], &t[4]);
            t += 8;
            if (one) {
                continue;
            }
            for (int32_t kx = 4; kx < kw - 4; kx += 4, t += 8) {
                mt_s8_pairs(mt_ld32(row + kx), nz2, &t[0], &t[4]);
            }
            mt_s8_pairs((mt_ld32(row + kw - 4 - rb) >> (8 * rb)) | fr, nz2, &t[0], &t[4]);
            t += 8;
        }
        for (uint32_t *e = t + 8 * n * (kh - ky1); t != e; t += 8) { /* rows below the input */
            t[0] = 0u;
            t[4] = 0u;
        }
    }
    return 1;
}

/* Byte rows on the stack that the gathers below fill (bytes), one window's (mt_s8_im2col_gather) or 4
 * windows' (mt_s8_im2col_gather4). */
#define MT_S8_GATHER_TAPS  128
#define MT_S8_GATHER4_TAPS 64

/* How many input channels a gather takes at a time into byte rows of `limit` bytes: a multiple of the
 * channels whose taps fill whole words (so that each chunk's groups of 4 taps start on a word), or 0 when
 * not even those fit. */
static inline int32_t mt_s8_gather_chans(const mt_conv_geom_t *g, int32_t limit)
{
    const int32_t ks = g->ksize, unit = (ks & 3) == 0 ? 1 : ((ks & 1) == 0 ? 2 : 4);
    const int32_t cc = limit / (ks * unit) * unit;
    return cc < g->cin_g ? cc : g->cin_g;
}

/* The taps of channels ci0 .. ci1 - 1 of the window at x0 (its first channel's top-left input byte, rows
 * outside [ky0, ky1) and taps outside [kx0, kx1) of a row taking z) into the bytes at o, window after
 * window `stride` bytes apart for n windows `sw` input bytes apart. Returns the bytes of one window. */
static inline __attribute__((always_inline)) int32_t
mt_s8_gather_chans_into(const mt_conv_geom_t *g, const int8_t *x0, int32_t ci0, int32_t ci1, int32_t ky0,
                        int32_t ky1, int32_t kx0, int32_t kx1, int8_t z, int8_t *o, int32_t stride, int32_t n)
{
    const int32_t kw = g->kw, dw = g->dw, kh = g->kh, rstep = g->dh * g->in_w, sw = g->sw;
    const int32_t full = kx0 == 0 && kx1 == kw, three = full && kw == 3 && dw == 1;
    int8_t *const o0 = o;
    for (int32_t ci = ci0; ci < ci1; ++ci) {
        const int8_t *row = x0 + ci * g->plane;
        for (int32_t ky = 0; ky < kh; ++ky, row += rstep, o += kw) {
            if (ky < ky0 || ky >= ky1) {
                for (int32_t c = 0; c < n; ++c) {
                    for (int32_t kx = 0; kx < kw; ++kx) {
                        o[c * stride + kx] = z;
                    }
                }
            } else if (three) { /* the 3 bytes as locals: the byte stores may alias the input */
                for (int32_t c = 0; c < n; ++c) {
                    const int8_t *r = row + c * sw;
                    const int8_t r0 = r[0], r1 = r[1], r2 = r[2];
                    o[c * stride] = r0;
                    o[c * stride + 1] = r1;
                    o[c * stride + 2] = r2;
                }
            } else {
                for (int32_t c = 0; c < n; ++c) {
                    for (int32_t kx = 0; kx < kw; ++kx) {
                        o[c * stride + kx] = kx >= kx0 && kx < kx1 ? row[c * sw + kx * dw] : z;
                    }
                }
            }
        }
    }
    return (int32_t)(o - o0);
}

/* Column c of a tile for output position p (as mt_s8_im2col_any), cc = mt_s8_gather_chans(g,
 * MT_S8_GATHER_TAPS) > 0: the taps' bytes of cc input channels at a time are gathered in order into a row,
 * the zero point for those outside the input (and past K), and the row's words unpack into the tile's
 * pairs: 2 * (x - zp) is 0 for them, as the reference's missing taps. */
static void __attribute__((noinline))
mt_s8_im2col_gather(const mt_conv_geom_t *g, const int8_t *xg, int32_t zp, int32_t p, uint32_t *tile,
                    int32_t c, int32_t cc)
{
    uint32_t buf[MT_S8_GATHER_TAPS / 4];
    int8_t *lin = (int8_t *)(void *)buf;
    const int32_t kp = (g->K + 3) & ~3;
    const uint32_t nz2 = (uint32_t)(uint16_t)(-2 * zp) * 0x00010001u;
    const int32_t oy = p / g->out_w, ox = p - oy * g->out_w;
    const int32_t iy0 = oy * g->sh - g->pt, ix0 = ox * g->sw - g->pl;
    int32_t ky0, ky1, kx0, kx1;
    mt_valid_range(iy0, g->dh, g->kh, g->in_h, &ky0, &ky1);
    mt_valid_range(ix0, g->dw, g->kw, g->in_w, &kx0, &kx1);
    const int8_t *x0 = xg + iy0 * g->in_w + ix0;
    uint32_t *t = tile + c; /* group k / 4: words 8 (k / 4) + c and + 4 */
    for (int32_t ci0 = 0; ci0 < g->cin_g; ci0 += cc) {
        const int32_t ci1 = ci0 + cc < g->cin_g ? ci0 + cc : g->cin_g;
        int32_t n = mt_s8_gather_chans_into(g, x0, ci0, ci1, ky0, ky1, kx0, kx1, (int8_t)zp, lin, 0, 1);
        if (ci1 == g->cin_g) { /* 0..3 taps past K: the zero point (not a memset call) */
            for (; n < kp - ci0 * g->ksize; ++n) {
                lin[n] = (int8_t)zp;
            }
        }
        for (int32_t k = 0; k < n; k += 4, t += 8) {
            mt_s8_pairs(buf[k >> 2], nz2, &t[0], &t[4]);
        }
    }
}

/* The tile of positions p0 .. p0+3 of one output row whose windows lie inside the input, x0 the first
 * window's top-left input byte (the next ones sw bytes further), cc = mt_s8_gather_chans(g,
 * MT_S8_GATHER4_TAPS) > 0: per cc input channels each window's taps are gathered into its byte row,
 * the rows then unpacked into the tile's pairs (as mt_s8_im2col_gather, without its bounds). */
static void __attribute__((noinline))
mt_s8_im2col_gather4(const mt_conv_geom_t *g, const int8_t *x0, int32_t zp, uint32_t *tile, int32_t cc)
{
    uint32_t buf[MT_S8_GATHER4_TAPS]; /* 4 rows of MT_S8_GATHER4_TAPS bytes */
    int8_t *lin = (int8_t *)(void *)buf;
    const int32_t kp = (g->K + 3) & ~3;
    const uint32_t nz2 = (uint32_t)(uint16_t)(-2 * zp) * 0x00010001u;
    for (int32_t ci0 = 0; ci0 < g->cin_g; ci0 += cc, tile += 2 * ((cc * g->ksize) & ~3)) {
        const int32_t ci1 = ci0 + cc < g->cin_g ? ci0 + cc : g->cin_g;
        int32_t n =
            mt_s8_gather_chans_into(g, x0, ci0, ci1, 0, g->kh, 0, g->kw, 0, lin, MT_S8_GATHER4_TAPS, 4);
        if (ci1 == g->cin_g) { /* 0..3 taps past K: the zero point (not a memset call) */
            for (int32_t c = 0; c < 4; ++c) {
                for (int32_t k = n; k < kp - ci0 * g->ksize; ++k) {
                    lin[c * MT_S8_GATHER4_TAPS + k] = (int8_t)zp;
                }
            }
            n = kp - ci0 * g->ksize;
        }
        for (int32_t c = 0; c < 4; ++c) { /* group k / 4 of column c: words 8 (k / 4) + c and + 4 */
            const uint32_t *src = buf + c * (MT_S8_GATHER4_TAPS / 4), *end = src + n / 4;
            for (uint32_t *t = tile + c; src != end; ++src, t += 8) {
                mt_s8_pairs(*src, nz2, &t[0], &t[4]);
            }
        }
    }
}

/* A tile of a 1x1 convolution (stride 1, no padding), 4 positions from xp: each input channel's 4 bytes
 * are one word; the pairs of channels (0, 2) and (1, 3) of each group of 4 become the tile's words. */
static void mt_s8_im2col_1x1(const int8_t *xp, int32_t plane, int32_t cin, uint32_t nz2, uint32_t *tile)
{
    for (int32_t ci = 0; ci < cin; ci += 4, xp += 4 * plane, tile += 8) {
        uint32_t a02, a13, b02, b13, c02, c13, d02, d13; /* channel, positions */
        mt_s8_pairs(mt_ld32(xp), nz2, &a02, &a13);
        mt_s8_pairs(mt_ld32(xp + plane), nz2, &b02, &b13);
        mt_s8_pairs(mt_ld32(xp + 2 * plane), nz2, &c02, &c13);
        mt_s8_pairs(mt_ld32(xp + 3 * plane), nz2, &d02, &d13);
        tile[0] = mt_pkhbt(a02, c02); /* channels 0, 2 of position 0 */
        tile[1] = mt_pkhbt(a13, c13);
        tile[2] = mt_pkhtb(c02, a02);
        tile[3] = mt_pkhtb(c13, a13);
        tile[4] = mt_pkhbt(b02, d02); /* channels 1, 3 */
        tile[5] = mt_pkhbt(b13, d13);
        tile[6] = mt_pkhtb(d02, b02);
        tile[7] = mt_pkhtb(d13, b13);
    }
}

/* The tile of positions p0 .. p0+3 (those >= P zero). */
static void mt_s8_im2col(const mt_conv_geom_t *g, const int8_t *xg, int32_t zp, int32_t p0, uint32_t *tile,
                         int32_t cc1, int32_t cc4)
{
    const int32_t P = g->oplane;
    const int32_t pointwise = g->ksize == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pl == 0 &&
                              g->in_w == g->out_w && g->in_h == g->out_h;
    if (pointwise && p0 + 4 <= P && (g->cin_g & 3) == 0) {
        mt_s8_im2col_1x1(xg + p0, g->plane, g->cin_g, (uint32_t)(uint16_t)(-2 * zp) * 0x00010001u, tile);
        return;
    }
    const int32_t words = mt_s8_words(g);
    if (cc4 > 0 && p0 + 4 <= P) { /* 4 windows inside the input, one row */
        const int32_t oy = p0 / g->out_w, ox = p0 - oy * g->out_w;
        const int32_t iy0 = oy * g->sh - g->pt, ix0 = ox * g->sw - g->pl;
        if (ox + 4 <= g->out_w && iy0 >= 0 && iy0 + (g->kh - 1) * g->dh < g->in_h && ix0 >= 0 &&
            ix0 + 3 * g->sw + (g->kw - 1) * g->dw < g->in_w) {
            mt_s8_im2col_gather4(g, xg + iy0 * g->in_w + ix0, zp, tile, cc4);
            return;
        }
    }
    for (int32_t c = 0; c < 4; ++c) {
        if (words && p0 + c < P && mt_s8_im2col_words(g, xg, zp, p0 + c, tile, c)) {
            continue;
        }
        if (cc1 > 0 && p0 + c < P) {
            mt_s8_im2col_gather(g, xg, zp, p0 + c, tile, c, cc1);
        } else {
            mt_s8_im2col_any(g, xg, zp, p0 + c < P ? p0 + c : -1, tile, c);
        }
    }
}

/* The weight row w (K taps) as int16 pairs (w0, w2), (w1, w3) per group of 4 taps, zero past K. */
static void mt_s8_unpack_row(const int8_t *w, int32_t K, uint32_t *wq)
{
    int32_t k = 0;
    for (; k + 4 <= K; k += 4, wq += 2) {
        const uint32_t u = mt_ld32(w + k);
        wq[0] = __sxtb16(u);
        wq[1] = mt_sxtb16_ror8(u);
    }
    if (k < K) {
        uint32_t u = (uint8_t)w[k];
        if (k + 1 < K) {
            u |= (uint32_t)(uint8_t)w[k + 1] << 8;
        }
        if (k + 2 < K) {
            u |= (uint32_t)(uint8_t)w[k + 2] << 16;
        }
        wq[0] = __sxtb16(u);
        wq[1] = mt_sxtb16_ror8(u);
    }
}

/* ---- one channel over the tiles of a run of positions ---------------------------------------------- */

typedef void (*mt_s8_row_fn)(mt_s8_chan_t *, const uint32_t *, int32_t);

/* The assembly row of a channel: by kind (FOLDED with the clamp in place of SLOW, which has none), for rows
 * of any length and of whole groups of 16 taps. */
static const mt_s8_row_fn mt_s8_rows[4][2] = {
    {mt_s8_gemm_row_folded_clamp, mt_s8_gemm_row_folded_clamp_g4},
    {mt_s8_gemm_row, mt_s8_gemm_row_g4},
    {mt_s8_gemm_row_folded, mt_s8_gemm_row_folded_g4},
    {mt_s8_gemm_row_wide, mt_s8_gemm_row_wide},
};

/* The outputs of a SLOW channel (c->wq unpacked) over the ns positions of the tiles, in C. */
static void mt_s8_gemm_slow(const mt_s8_chan_t *c, const uint32_t *tiles, int32_t ns, int32_t kp, int8_t *y)
{
    for (int32_t t = 0; t < ns; t += 4, tiles += 2 * kp) {
        int32_t a[4] = {0, 0, 0, 0};
        mt_s8_dot4(c->wq, tiles, kp >> 2, a);
        const uint32_t v =
            mt_s8_pack4(c, mt_s8_out(a[0], c), mt_s8_out(a[1], c), mt_s8_out(a[2], c), mt_s8_out(a[3], c));
        for (int32_t i = 0; i < 4 && t + i < ns; ++i) {
            y[t + i] = (int8_t)(v >> (8 * i));
        }
    }
}

/* The output of a last tile of one position (column `col`): its column alone, 2 SMLADs per 4 taps, from
 * the int8 row (`unpack`: not unpacked yet; taps a multiple of 4) or the int16 one. */
static int8_t mt_s8_gemm_column(const mt_s8_chan_t *c, const uint32_t *col, int32_t kp, int32_t unpack)
{
    const uint32_t *t = col, *end = col + 2 * kp;
    int32_t a = c->b2;
    if (unpack) {
        for (const int8_t *w8 = c->w8; t != end; t += 8, w8 += 4) {
            const uint32_t u = mt_ld32(w8);
            a = __smlad(mt_sxtb16_ror8(u), t[4], __smlad(__sxtb16(u), t[0], a));
        }
    } else { /* per group of 4 taps: the weight pairs (LDRD), the column's two words, 2 SMLADs */
        const uint32_t *wq = c->wq;
        int32_t g = kp >> 2;
        __asm__ volatile("1:\n\t"
                         "ldrd r4, r5, [%[w]], #8\n\t"
                         "ldr r6, [%[t], #16]\n\t"
                         "ldr r12, [%[t]], #32\n\t"
                         "smlad %[a], r4, r12, %[a]\n\t"
                         "smlad %[a], r5, r6, %[a]\n\t"
                         "subs %[g], %[g], #1\n\t"
                         "bne 1b\n\t"
                         : [a] "+r"(a), [w] "+r"(wq), [t] "+r"(t), [g] "+r"(g)
                         :
                         : "r4", "r5", "r6", "r12", "cc", "memory");
    }
    const int32_t v = mt_s8_out(a, c), lo = (int8_t)c->lo4, hi = (int8_t)c->hi4;
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

static void mt_s8_conv_gemm(const mt_conv_geom_t *g, const mt_conv2d_dims_t *d, const mt_conv2d_q8_t *q,
                            int32_t co_begin, int32_t co_end, const int8_t *x, const int8_t *w,
                            const int32_t *b, int8_t *y, uint32_t *tiles, int32_t room)
{
    const int32_t P = g->oplane, K = g->K, kp = mt_s8_taps(d), S = mt_s8_gemm_positions(d);
    mt_s8_chan_t c;
    mt_s8_chan_act(&c, q->act_min, q->act_max);
    c.wq = tiles + S * kp / 2;   /* after the tiles: S * kp int16 */
    c.g4 = ((kp >> 2) - 1) >> 2; /* the groups after the first */
    c.g1 = ((kp >> 2) - 1) & 3;
    const int32_t g16 = c.g1 == 3, words = (K & 3) == 0; /* rows of whole groups of 16 taps; of 4 */
    /* the gathers' chunks of input channels (0: no gather) */
    const int32_t cc1 = mt_s8_gather_chans(g, MT_S8_GATHER_TAPS),
                  cc4 = mt_s8_gather_chans(g, MT_S8_GATHER4_TAPS);
    for (int32_t grp = co_begin / g->cout_g; grp * g->cout_g < co_end; ++grp) {
        const int32_t c0 = grp * g->cout_g > co_begin ? grp * g->cout_g : co_begin;
        const int32_t c1 = (grp + 1) * g->cout_g < co_end ? (grp + 1) * g->cout_g : co_end;
        const int8_t *xg = x + grp * g->cin_g * g->plane;
        for (int32_t p0 = 0; p0 < P; p0 += S) {
            const int32_t ns = P - p0 < S ? P - p0 : S, whole = ns & ~3, rest = ns - whole;
            const uint32_t *tail = tiles + whole * kp / 2;
            for (int32_t t = 0; t < ns; t += 4) {
                mt_s8_im2col(g, xg, q->in_zp, p0 + t, tiles + t * kp / 2, cc1, cc4);
            }
            int8_t *yc = y + c0 * P + p0;
            for (int32_t r = c0 - co_begin; r < c1 - co_begin; ++r, yc += P) {
                mt_s8_chan_init(&c, q->mult[r], q->shift[r], q->out_zp, b ? b[r] : 0, room);
                c.w8 = w + r * K;
                int32_t unpack = words && c.kind != MT_S8_SLOW; /* in the first tile's sums */
                if (!unpack) {
                    mt_s8_unpack_row(c.w8, K, c.wq);
                }
                if (c.kind == MT_S8_SLOW) {
                    mt_s8_gemm_slow(&c, tiles, ns, kp, yc);
                    continue;
                }
                const mt_s8_row_fn row = mt_s8_rows[c.kind == MT_S8_FOLDED && c.clamp ? 0 : c.kind][g16];
                if (whole) {
                    c.y = yc;
                    c.yend = yc + whole;
                    row(&c, tiles, unpack);
                    unpack = 0;
                }
                if (rest == 1) {
                    yc[whole] = mt_s8_gemm_column(&c, tail, kp, unpack);
                } else if (rest) { /* a last tile of 2 or 3 positions: its 4 outputs, the first ones kept */
                    uint32_t out;
                    c.y = (int8_t *)(void *)&out;
                    c.yend = c.y + 4;
                    row(&c, tail, unpack);
                    for (int32_t i = 0; i < rest; ++i) {
                        yc[whole + i] = (int8_t)(out >> (8 * i));
                    }
                }
            }
        }
    }
}

int32_t mt_conv2d_fw_s8_dsp(const mt_conv2d_dims_t *d, const mt_conv2d_q8_t *q, int32_t co_begin,
                            int32_t co_end, const int8_t *x, const int8_t *w, const int32_t *b, int8_t *y,
                            int8_t *scratch)
{
    const mt_conv_geom_t g = mt_conv2d_geom(d);
    const int32_t room = mt_s8_room(g.K);
    if (scratch == NULL || ((uintptr_t)scratch & 3u) || room == 0) {
        return 0;
    }
    if (mt_s8_dw_path(d)) {
        return mt_s8_conv_dw(&g, d, q, co_begin, co_end, x, w, b, y, scratch);
    }
    mt_s8_conv_gemm(&g, d, q, co_begin, co_end, x, w, b, y, (uint32_t *)(void *)scratch, room);
    return 1;
}

#else
typedef int mt_conv2d_dsp_s8_unused_t; /* ISO C: a translation unit declares something */
#endif /* MT_S8_DSP */
