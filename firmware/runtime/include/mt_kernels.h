/**
 * @file mt_kernels.h
 * @brief mcutrain kernel runtime: forward, weight-gradient, input-gradient, loss and optimizer kernels.
 *
 * Portable C99, float32, no dynamic memory, no mutable static state: every kernel is re-entrant.
 * docs/kernels.md describes the conventions at length; the short version:
 *
 * - **Tensors** are per sample (no batch axis), channels first, contiguous float32: images `(C, H, W)`
 *   (element `(c, y, x)` at `(c * H + y) * W + x`), vectors `(F,)`.
 * - **Weights**: conv2d `[Cout, Cin/groups, kh, kw]`; conv_transpose2d in the *output-major* layout
 *   `[Cout, Cin/groups, kh, kw]` (see ::mt_conv_transpose2d_dims_t for the permutation from PyTorch);
 *   linear `[out, in]`; channel_affine `w[C]`, `b[C]`.
 * - **Output-channel ranges**: the parameterized kernels (conv2d, conv_transpose2d, linear,
 *   channel_affine) work on output channels `[co_begin, co_end)`. `w`/`gw` point at the first row of the
 *   range (the rows of a range are compact), `b`/`gb` at `bias[co_begin]`. Activation tensors
 *   (`x`, `y`, `gy`, `gx`) are always the full tensors. `fw` writes `y` channels of the range only;
 *   `bw_wgrad` writes `gw`/`gb` of the range; `bw_igrad` adds the range's contribution to all of `gx`.
 * - **accumulate**: every backward kernel takes `int32_t accumulate`: 0 overwrites (`dst = g`), 1 adds
 *   (`dst += g`). For a range-wise `bw_igrad`, accumulate 0 first zeroes the *whole* `gx`, so calling the
 *   first range with 0 and the others with 1 gives the full input gradient.
 * - **Scratch**: kernels that may need working memory take `float *scratch` and have a matching
 *   `mt_<op>_<pass>_scratch_bytes()`; the caller passes at least that many bytes, 4-byte aligned
 *   (NULL is allowed when the size is 0). The reference kernels here need none.
 * - **Names**: `mt_<op>_<pass>_f32`, passes `fw`, `bw_wgrad`, `bw_igrad`; dims structs `mt_<op>_dims_t`.
 * - Sizes and counts are `int32_t` elements (not bytes) unless the name says bytes.
 * - Outputs must not overlap inputs unless a function says it may (in place).
 */
#ifndef MT_KERNELS_H
#define MT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================================================== */
/* conv2d                                                                                             */
/* ================================================================================================== */

/**
 * @brief Geometry of a 2-D convolution (cross-correlation, as PyTorch) on one sample.
 *
 * Input `(in_c, in_h, in_w)`, output `(out_c, out_h, out_w)`, weight `[out_c, in_c/groups, kernel_h,
 * kernel_w]`. Output `(co, oy, ox)` reads input rows `oy*stride_h - pad_top + ky*dilation_h` and
 * columns `ox*stride_w - pad_left + kx*dilation_w`; positions outside the input read zero. The bottom and
 * right padding follow from `out_h`/`out_w` (asymmetric padding is allowed; padding may exceed the
 * kernel). Output channel `co` belongs to group `co / (out_c/groups)` and reads input channels
 * `g*(in_c/groups) ... (g+1)*(in_c/groups) - 1` (depthwise: `groups == in_c`).
 */
typedef struct {
    int32_t in_c, in_h, in_w;       /**< input tensor shape */
    int32_t out_c, out_h, out_w;    /**< output tensor shape */
    int32_t kernel_h, kernel_w;     /**< kernel size */
    int32_t stride_h, stride_w;     /**< strides (>= 1) */
    int32_t dilation_h, dilation_w; /**< dilations (>= 1) */
    int32_t pad_top, pad_left;      /**< zero rows above / columns left of the input (< 0 crops it) */
    int32_t groups;                 /**< divides in_c and out_c */
} mt_conv2d_dims_t;

/** Scratch bytes of ::mt_conv2d_fw_f32 (0 for the reference kernel). */
size_t mt_conv2d_fw_scratch_bytes(const mt_conv2d_dims_t *d);
/** Scratch bytes of ::mt_conv2d_bw_wgrad_f32 (0 for the reference kernel). */
size_t mt_conv2d_bw_wgrad_scratch_bytes(const mt_conv2d_dims_t *d);
/** Scratch bytes of ::mt_conv2d_bw_igrad_f32 (0 for the reference kernel). */
size_t mt_conv2d_bw_igrad_scratch_bytes(const mt_conv2d_dims_t *d);

/**
 * @brief Forward: `y[co] = b[co] + sum w[co] * x` for `co` in `[co_begin, co_end)`.
 * @param x  input `(in_c, in_h, in_w)`
 * @param w  weight rows of the range: `[co_end-co_begin, in_c/groups, kernel_h, kernel_w]`
 * @param b  bias of the range `[co_end-co_begin]`, or NULL for none
 * @param y  full output `(out_c, out_h, out_w)`; only channels of the range are written
 */
void mt_conv2d_fw_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                      const float *w, const float *b, float *y, float *scratch);

/**
 * @brief Weight and bias gradient of the range.
 * @param x   forward input `(in_c, in_h, in_w)`
 * @param gy  full output gradient `(out_c, out_h, out_w)` (channels of the range are read)
 * @param gw  weight gradient of the range (same layout as `w`), or NULL for none (bias-only update)
 * @param gb  bias gradient of the range `[co_end-co_begin]`, or NULL for none
 */
void mt_conv2d_bw_wgrad_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                            const float *gy, float *gw, float *gb, int32_t accumulate, float *scratch);

/**
 * @brief Input gradient contribution of the range: `gx += W[range]^T * gy[range]`.
 * @param w   weight rows of the range (as in ::mt_conv2d_fw_f32)
 * @param gy  full output gradient `(out_c, out_h, out_w)`
 * @param gx  full input gradient `(in_c, in_h, in_w)`; accumulate 0 zeroes all of it first
 */
void mt_conv2d_bw_igrad_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *w,
                            const float *gy, float *gx, int32_t accumulate, float *scratch);

/* ================================================================================================== */
/* conv_transpose2d                                                                                   */
/* ================================================================================================== */

/**
 * @brief Geometry of a 2-D transposed convolution on one sample.
 *
 * Input `(in_c, in_h, in_w)`, output `(out_c, out_h, out_w)`. The *full* output has
 * `(in_h-1)*stride_h + dilation_h*(kernel_h-1) + 1` rows (columns alike); input `(ci, iy, ix)` and tap
 * `(ky, kx)` contribute to full position `(iy*stride_h + ky*dilation_h, ix*stride_w + kx*dilation_w)`.
 * Output index `oy` is full index `oy + pad_top` (`ox + pad_left`): the pads crop the full output. An
 * output position whose full index lies outside the full output (PyTorch's `output_padding`, a negative
 * crop) receives only the bias.
 *
 * **Weight layout** (output-major, differs from PyTorch): `wc[co][ci_g][ky][kx]` with `G = groups`,
 * `cin_g = in_c/G`, `cout_g = out_c/G`, `g = co / cout_g`, equals PyTorch's
 * `w[g*cin_g + ci_g][co - g*cout_g][ky][kx]` (PyTorch shape `[in_c, out_c/G, kh, kw]`). In NumPy:
 * `wc = w.reshape(G, cin_g, cout_g, kh, kw).transpose(0, 2, 1, 3, 4).reshape(out_c, cin_g, kh, kw)`.
 * The code generator applies it (and its inverse to read trained weights back).
 */
typedef struct {
    int32_t in_c, in_h, in_w;       /**< input tensor shape */
    int32_t out_c, out_h, out_w;    /**< output tensor shape (after the crop / extension) */
    int32_t kernel_h, kernel_w;     /**< kernel size */
    int32_t stride_h, stride_w;     /**< strides (>= 1) */
    int32_t dilation_h, dilation_w; /**< dilations (>= 1) */
    int32_t pad_top, pad_left;      /**< crop of the full output (< 0 extends it): output o = full o + pad */
    int32_t groups;                 /**< divides in_c and out_c */
} mt_conv_transpose2d_dims_t;

/** Scratch bytes of ::mt_conv_transpose2d_fw_f32 (0 for the reference kernel). */
size_t mt_conv_transpose2d_fw_scratch_bytes(const mt_conv_transpose2d_dims_t *d);
/** Scratch bytes of ::mt_conv_transpose2d_bw_wgrad_f32 (0 for the reference kernel). */
size_t mt_conv_transpose2d_bw_wgrad_scratch_bytes(const mt_conv_transpose2d_dims_t *d);
/** Scratch bytes of ::mt_conv_transpose2d_bw_igrad_f32 (0 for the reference kernel). */
size_t mt_conv_transpose2d_bw_igrad_scratch_bytes(const mt_conv_transpose2d_dims_t *d);

/**
 * @brief Forward of output channels `[co_begin, co_end)`.
 * @param w  weight rows of the range in the output-major layout `[co_end-co_begin, in_c/groups, kh, kw]`
 * @param b  bias of the range, or NULL
 * @param y  full output `(out_c, out_h, out_w)`; only channels of the range are written
 */
void mt_conv_transpose2d_fw_f32(const mt_conv_transpose2d_dims_t *d, int32_t co_begin, int32_t co_end,
                                const float *x, const float *w, const float *b, float *y, float *scratch);

/** @brief Weight (output-major layout, may be NULL) and bias (may be NULL) gradient of the range. */
void mt_conv_transpose2d_bw_wgrad_f32(const mt_conv_transpose2d_dims_t *d, int32_t co_begin, int32_t co_end,
                                      const float *x, const float *gy, float *gw, float *gb,
                                      int32_t accumulate, float *scratch);

/** @brief Input gradient contribution of the range; accumulate 0 zeroes all of `gx` first. */
void mt_conv_transpose2d_bw_igrad_f32(const mt_conv_transpose2d_dims_t *d, int32_t co_begin, int32_t co_end,
                                      const float *w, const float *gy, float *gx, int32_t accumulate,
                                      float *scratch);

/* ================================================================================================== */
/* linear                                                                                             */
/* ================================================================================================== */

/** @brief Fully connected layer `y = W x + b`, `x` `(in_features,)`, `W` `[out_features, in_features]`. */
typedef struct {
    int32_t in_features;
    int32_t out_features;
} mt_linear_dims_t;

/** Scratch bytes of ::mt_linear_fw_f32 (0 for the reference kernel). */
size_t mt_linear_fw_scratch_bytes(const mt_linear_dims_t *d);
/** Scratch bytes of ::mt_linear_bw_wgrad_f32 (0 for the reference kernel). */
size_t mt_linear_bw_wgrad_scratch_bytes(const mt_linear_dims_t *d);
/** Scratch bytes of ::mt_linear_bw_igrad_f32 (0 for the reference kernel). */
size_t mt_linear_bw_igrad_scratch_bytes(const mt_linear_dims_t *d);

/** @brief `y[o] = b[o] + w[o] . x` for `o` in the range; `w` holds rows of the range, `b` may be NULL. */
void mt_linear_fw_f32(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                      const float *w, const float *b, float *y, float *scratch);
/** @brief `gw[o] (+)= gy[o] * x`, `gb[o] (+)= gy[o]` for the range; `gw`, `gb` may be NULL. */
void mt_linear_bw_wgrad_f32(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                            const float *gy, float *gw, float *gb, int32_t accumulate, float *scratch);
/** @brief `gx (+)= sum_o gy[o] * w[o]` over the range; accumulate 0 zeroes all of `gx` first. */
void mt_linear_bw_igrad_f32(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end, const float *w,
                            const float *gy, float *gx, int32_t accumulate, float *scratch);

/* ================================================================================================== */
/* channel_affine                                                                                     */
/* ================================================================================================== */

/** @brief Per-channel affine `y[c] = x[c] * w[c] + b[c]` over `(c, h, w)` (a vector is `(c, 1, 1)`). */
typedef struct {
    int32_t c, h, w;
} mt_channel_affine_dims_t;

/** @brief Forward for channels in the range; may run in place (`x == y`). `b` may be NULL. */
void mt_channel_affine_fw_f32(const mt_channel_affine_dims_t *d, int32_t co_begin, int32_t co_end,
                              const float *x, const float *w, const float *b, float *y);
/** @brief `gw[c] (+)= sum gy[c]*x[c]`, `gb[c] (+)= sum gy[c]` for the range; `gw`, `gb` may be NULL. */
void mt_channel_affine_bw_wgrad_f32(const mt_channel_affine_dims_t *d, int32_t co_begin, int32_t co_end,
                                    const float *x, const float *gy, float *gw, float *gb,
                                    int32_t accumulate);
/** @brief `gx[c] (+)= gy[c] * w[c]` for the range; accumulate 0 zeroes all of `gx` first. */
void mt_channel_affine_bw_igrad_f32(const mt_channel_affine_dims_t *d, int32_t co_begin, int32_t co_end,
                                    const float *w, const float *gy, float *gx, int32_t accumulate);

/* ================================================================================================== */
/* activations                                                                                        */
/* ================================================================================================== */

/** @brief Elementwise activation functions. */
typedef enum {
    MT_ACT_RELU = 0,       /**< max(x, 0) */
    MT_ACT_RELU6 = 1,      /**< min(max(x, 0), 6) (hardtanh(0, 6)) */
    MT_ACT_LEAKY_RELU = 2, /**< x > 0 ? x : alpha * x (alpha >= 0) */
    MT_ACT_SIGMOID = 3,    /**< 1 / (1 + exp(-x)) */
    MT_ACT_TANH = 4        /**< tanh(x) */
} mt_act_t;

/** @brief `y = fn(x)` over `n` elements; may run in place (`x == y`). `alpha`: leaky slope. */
void mt_activation_fw_f32(mt_act_t fn, float alpha, int32_t n, const float *x, float *y);

/**
 * @brief Pack the derivative's branch from the forward *output* `y`: 1 bit per element, LSB first,
 * `(n+7)/8` bytes (unused high bits of the last byte are 0). Bit = 1 where the derivative is the identity
 * branch: relu `y > 0`, relu6 `0 < y < 6`, leaky relu `y > 0`. For sigmoid/tanh the mask is meaningless
 * (all bits 0); use ::mt_activation_bw_f32.
 */
void mt_activation_mask_f32(mt_act_t fn, int32_t n, const float *y, uint8_t *mask);

/**
 * @brief Backward from a bit mask (relu, relu6, leaky relu): `gx (+)= bit ? gy : slope * gy` with slope 0
 * (relu, relu6) or `alpha` (leaky relu). Matches PyTorch at the boundaries (relu'(0) = 0, relu6'(0) =
 * relu6'(6) = 0, leaky'(0) = alpha). `gx` may alias `gy`.
 */
void mt_activation_bw_mask_f32(mt_act_t fn, float alpha, int32_t n, const uint8_t *mask, const float *gy,
                               float *gx, int32_t accumulate);

/**
 * @brief Backward from the forward output `y`, all five functions: relu/relu6/leaky as the mask form,
 * sigmoid `gy * y * (1 - y)`, tanh `gy * (1 - y*y)`. `gx` may alias `gy`.
 */
void mt_activation_bw_f32(mt_act_t fn, float alpha, int32_t n, const float *y, const float *gy, float *gx,
                          int32_t accumulate);

/* ================================================================================================== */
/* pooling                                                                                            */
/* ================================================================================================== */

/**
 * @brief Max pooling window geometry. Output `(c, oy, ox)` covers input rows
 * `oy*stride_h - pad_top ... + kernel_h - 1` (columns alike); padding acts as -inf (never selected).
 */
typedef struct {
    int32_t c, in_h, in_w;
    int32_t out_h, out_w;
    int32_t kernel_h, kernel_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left; /**< >= 0; bottom/right follow from out_h/out_w */
} mt_max_pool2d_dims_t;

/** @brief Max over each window (-inf for a window entirely in the padding). */
void mt_max_pool2d_fw_f32(const mt_max_pool2d_dims_t *d, const float *x, float *y);
/**
 * @brief `gx[argmax] (+)= gy`, the argmax recomputed from the forward input `x` (first maximum in
 * row-major window order, as PyTorch). Accumulate 0 zeroes `gx` first.
 */
void mt_max_pool2d_bw_igrad_f32(const mt_max_pool2d_dims_t *d, const float *x, const float *gy, float *gx,
                                int32_t accumulate);

/** @brief Average pooling geometry (fields as ::mt_max_pool2d_dims_t, padding acts as zeros). */
typedef struct {
    int32_t c, in_h, in_w;
    int32_t out_h, out_w;
    int32_t kernel_h, kernel_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left;
    int32_t count_include_pad; /**< 1: divide by kernel_h*kernel_w; 0: by the in-bounds count (TFLite) */
} mt_avg_pool2d_dims_t;

/** @brief Mean over each window. */
void mt_avg_pool2d_fw_f32(const mt_avg_pool2d_dims_t *d, const float *x, float *y);
/** @brief `gx[window] (+)= gy / count`. Accumulate 0 zeroes `gx` first. */
void mt_avg_pool2d_bw_igrad_f32(const mt_avg_pool2d_dims_t *d, const float *gy, float *gx,
                                int32_t accumulate);

/** @brief `(c, hw) -> (c,)` mean over the `hw` = H*W elements of each channel. */
void mt_global_avg_pool_fw_f32(int32_t c, int32_t hw, const float *x, float *y);
/** @brief `gx[c, :] (+)= gy[c] / hw`. */
void mt_global_avg_pool_bw_igrad_f32(int32_t c, int32_t hw, const float *gy, float *gx, int32_t accumulate);
/** @brief `(c, hw) -> (c,)` max of each channel. */
void mt_global_max_pool_fw_f32(int32_t c, int32_t hw, const float *x, float *y);
/**
 * @brief Gradient of the channel max (PyTorch `amax`): `gy[c]` is split evenly between all elements
 * equal to the maximum. Needs the forward input `x`. Accumulate 0 zeroes `gx` first.
 */
void mt_global_max_pool_bw_igrad_f32(int32_t c, int32_t hw, const float *x, const float *gy, float *gx,
                                     int32_t accumulate);

/* ================================================================================================== */
/* add, copy, accumulate (add / reshape / concat and their backward)                                  */
/* ================================================================================================== */

/** @brief `y = a + b` over `n` elements; `y` may alias `a` or `b`. */
void mt_add_fw_f32(int32_t n, const float *a, const float *b, float *y);
/**
 * @brief `dst = src` over `n` elements (`src == dst` allowed, other overlaps not). Concat along channels
 * is a copy of each input to its channel offset `c_off * H * W` of the output; its backward (and the
 * backward of add and reshape) copies or accumulates the matching slices with these two functions.
 */
void mt_copy_f32(int32_t n, const float *src, float *dst);
/** @brief `dst = src` (accumulate 0) or `dst += src` (accumulate 1) over `n` elements. */
void mt_accumulate_f32(int32_t n, const float *src, float *dst, int32_t accumulate);

/**
 * @brief x[i] *= s for i in [0, n), in place (averages gradients summed over a mini-batch).
 */
void mt_scale_f32(int32_t n, float *x, float s);

/* ================================================================================================== */
/* upsample                                                                                           */
/* ================================================================================================== */

/**
 * @brief Upsampling by integer factors: `(c, in_h, in_w) -> (c, in_h*scale_h, in_w*scale_w)`, matching
 * `F.interpolate(x, size=(H*sh, W*sw), mode=...)`. Bilinear with `align_corners` 1 maps output `o` to
 * source `o * (in-1)/(out-1)`; with 0 to `max((o + 0.5) / scale - 0.5, 0)` (half-pixel centres, clamped
 * at the top/left border, the last row/column repeated at the bottom/right).
 */
typedef struct {
    int32_t c, in_h, in_w;
    int32_t scale_h, scale_w; /**< integer factors >= 1 */
    int32_t align_corners;    /**< bilinear only */
} mt_upsample_dims_t;

/** @brief Nearest: each input element becomes a `scale_h x scale_w` block. */
void mt_upsample_nearest_fw_f32(const mt_upsample_dims_t *d, const float *x, float *y);
/** @brief `gx (+)= sum of gy over each block`. */
void mt_upsample_nearest_bw_igrad_f32(const mt_upsample_dims_t *d, const float *gy, float *gx,
                                      int32_t accumulate);
/** @brief Bilinear forward (see ::mt_upsample_dims_t). */
void mt_upsample_bilinear_fw_f32(const mt_upsample_dims_t *d, const float *x, float *y);
/** @brief Bilinear backward: scatters `gy` with the forward weights. Accumulate 0 zeroes `gx` first. */
void mt_upsample_bilinear_bw_igrad_f32(const mt_upsample_dims_t *d, const float *gy, float *gx,
                                       int32_t accumulate);

/* ================================================================================================== */
/* pad                                                                                                */
/* ================================================================================================== */

/** @brief Constant padding `(c, in_h, in_w) -> (c, in_h+top+bottom, in_w+left+right)`, pads >= 0. */
typedef struct {
    int32_t c, in_h, in_w;
    int32_t pad_top, pad_bottom, pad_left, pad_right;
} mt_pad_dims_t;

/** @brief `y` = `x` surrounded by `value`. */
void mt_pad_fw_f32(const mt_pad_dims_t *d, float value, const float *x, float *y);
/** @brief `gx (+)=` the interior (crop) of `gy`. */
void mt_pad_bw_igrad_f32(const mt_pad_dims_t *d, const float *gy, float *gx, int32_t accumulate);

/* ================================================================================================== */
/* softmax                                                                                            */
/* ================================================================================================== */

/** @brief Numerically stable softmax over a vector of `n`; may run in place. */
void mt_softmax_fw_f32(int32_t n, const float *x, float *y);
/** @brief `gx (+)= y * (gy - sum(gy * y))` from the forward output `y`. */
void mt_softmax_bw_igrad_f32(int32_t n, const float *y, const float *gy, float *gx, int32_t accumulate);

/* ================================================================================================== */
/* losses: return the loss and overwrite d loss / d pred                                              */
/* ================================================================================================== */

/**
 * @brief Softmax cross-entropy against a target probability vector (one-hot or soft):
 * `loss = -sum_i t_i * log_softmax(z)_i`, `glogits = softmax(z) * sum(t) - t`. Numerically stable.
 * `glogits` may be NULL (loss only) or alias `logits`.
 */
float mt_loss_softmax_xent_f32(int32_t n, const float *logits, const float *target_prob, float *glogits);

/**
 * @brief Mean squared error over valid elements: `mean (pred - target)^2`, gradient `2 d / count`.
 * @param mask NULL (all valid) or one float per element, nonzero = valid. No valid element: loss 0 and a
 *             zero gradient. Invalid elements get a zero gradient. `gpred` may be NULL.
 */
float mt_loss_mse_f32(int32_t n, const float *pred, const float *target, const float *mask, float *gpred);
/** @brief Mean absolute error over valid elements; gradient `sign(d) / count`, sign(0) = 0. */
float mt_loss_l1_f32(int32_t n, const float *pred, const float *target, const float *mask, float *gpred);
/**
 * @brief Reverse Huber (berHu) over valid elements, `d = pred - target`, `c = 0.2 * max |d|` (valid
 * elements, treated as a constant in the gradient): `|d| <= c ? |d| : (d^2 + c^2) / (2c)`, mean over
 * valid elements. Gradient `(|d| <= c ? sign(d) : d / c) / count`.
 */
float mt_loss_berhu_f32(int32_t n, const float *pred, const float *target, const float *mask, float *gpred);

/* ================================================================================================== */
/* zone pooling (dense prediction vs. a coarse multi-zone sensor, e.g. 8x8 ToF)                       */
/* ================================================================================================== */

/**
 * @brief A `rows x cols` grid of `zone_h x zone_w` zones over a `(1, h, w)` map, starting at
 * `(top, left)`; zone `(i, j)` covers rows `top + i*zone_h ... + zone_h - 1` and columns
 * `left + j*zone_w ... + zone_w - 1`. The grid must lie inside the map.
 */
typedef struct {
    int32_t h, w;
    int32_t top, left;
    int32_t zone_h, zone_w;
    int32_t rows, cols;
} mt_zone_dims_t;

/** @brief `zones[i*cols + j]` = mean of `pred` over zone `(i, j)`. */
void mt_zone_pool_fw_f32(const mt_zone_dims_t *d, const float *pred, float *zones);
/** @brief `gpred (+)= gzones[i, j] / (zone_h*zone_w)` over each zone; accumulate 0 zeroes all of `gpred`
 * first. */
void mt_zone_pool_bw_f32(const mt_zone_dims_t *d, const float *gzones, float *gpred, int32_t accumulate);

/* ================================================================================================== */
/* optimizers (in place, PyTorch semantics; weight decay is L2 added to the gradient)                 */
/* ================================================================================================== */

/** @brief torch.optim.SGD without momentum: `w -= lr * (g + wd * w)`. */
void mt_sgd_f32(int32_t n, float *w, const float *g, float lr, float wd);
/**
 * @brief torch.optim.SGD with momentum (dampening 0, no Nesterov): `m = momentum * m + (g + wd * w)`,
 * `w -= lr * m`. `m` (momentum buffer, `n` floats) starts at 0.
 */
void mt_sgd_momentum_f32(int32_t n, float *w, const float *g, float *m, float lr, float momentum, float wd);
/**
 * @brief torch.optim.Adam (amsgrad off): `g' = g + wd * w`, `m = lerp(m, g', 1 - beta1)`,
 * `v = beta2 * v + (1 - beta2) * g'^2`, `w -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step)
 * + eps)`. `m`, `v` start at 0; `step` is 1-based (1 on the first update).
 */
void mt_adam_f32(int32_t n, float *w, const float *g, float *m, float *v, float lr, float beta1, float beta2,
                 float eps, float wd, int32_t step);

#ifdef __cplusplus
}
#endif

#endif /* MT_KERNELS_H */
