/**
 * @file mt_link.h
 * @brief mcutrain serial link, device side: protocol version 1 (docs/protocol.md).
 *
 * Three layers, each usable alone, none allocating memory:
 *  - framing: a byte-at-a-time receiver (mt_link_feed) that undoes COBS into a caller-provided
 *    buffer and checks the CRC-32, and a sender (mt_link_send) that writes CRC + COBS to a putc-style
 *    callback without a transmit buffer;
 *  - samples: parsing of a SAMPLE payload and conversion of its blocks (uint8 images, int16
 *    distances, class labels, mask bits, float32) to float on the device;
 *  - service: mt_link_service(), the dispatcher of protocol v1. It owns sequence numbers and
 *    idempotence (the last applied sequence number and its acknowledgement), and calls the
 *    application through a table of callbacks (mt_link_app_t), so that the generated mt_model API
 *    and the board UART plug in without this code knowing either.
 *
 * Wire format (all integers little-endian): every frame is sent as 0x00, COBS(frame), 0x00 where
 * frame = header (8 bytes: version, type, flags, reserved, seq u32) + payload + CRC-32 (IEEE,
 * reflected, as zlib.crc32) of header + payload.
 *
 * The frame buffer must be 4-byte aligned: parameter chunks are read and written in place as float.
 * Portable C99; the byte order of the host CPU does not matter.
 */
#ifndef MT_LINK_H
#define MT_LINK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------- */
/* Constants of protocol version 1                                                                 */
/* ---------------------------------------------------------------------------------------------- */

#define MT_LINK_VERSION      1u
#define MT_LINK_HEADER_BYTES 8u
#define MT_LINK_CRC_BYTES    4u
#define MT_LINK_OVERHEAD     (MT_LINK_HEADER_BYTES + MT_LINK_CRC_BYTES)
/** Largest unstuffed frame (header + payload + CRC) of protocol v1; a device may use less (INFO). */
#define MT_LINK_MAX_FRAME 6144u
/** Smallest frame buffer a device may use: INFO and every other reply fit (PARAMS/OUTPUT in chunks). */
#define MT_LINK_MIN_FRAME 320u
/** Bytes on the wire of an unstuffed frame of @p n bytes, at most: COBS adds one byte per 254,
 *  plus the code byte and the two delimiters. */
#define MT_LINK_WIRE_MAX(n) ((n) + (n) / 254u + 3u)
/** Bytes of a SAMPLE payload before the blocks, and of each block's header. */
#define MT_LINK_SAMPLE_HEADER_BYTES 8u
#define MT_LINK_BLOCK_HEADER_BYTES  16u
/** Payload of an ACK. */
#define MT_LINK_ACK_BYTES 16u

/** Message types. Requests (host -> device) are below 0x80, replies have the top bit set. */
enum {
    MT_MSG_HELLO = 0x01,      /**< query: -> INFO */
    MT_MSG_SAMPLE = 0x02,     /**< sequenced: store a sample (flag TRAIN: and train on it) -> ACK */
    MT_MSG_TRAIN = 0x03,      /**< sequenced: one training step on the stored sample -> ACK */
    MT_MSG_INFER = 0x04,      /**< query: forward pass of the stored input -> OUTPUT */
    MT_MSG_EVAL = 0x05,       /**< query: loss of the stored sample or the validation set -> EVAL_RESULT */
    MT_MSG_STATS = 0x06,      /**< query: -> STATS_REPLY */
    MT_MSG_GET_PARAMS = 0x07, /**< query: one chunk of the trainable parameters -> PARAMS */
    MT_MSG_PUT_PARAMS = 0x08, /**< sequenced: write one chunk of trainable parameters -> ACK */
    MT_MSG_CHECKPOINT = 0x09, /**< sequenced: snapshot / accept-if-better -> ACK */
    MT_MSG_ROLLBACK = 0x0A,   /**< sequenced: restore the snapshot -> ACK */
    MT_MSG_RESET = 0x0B,      /**< sequenced: re-initialise the model, or end the program -> ACK */

    MT_MSG_ACK = 0x80,
    MT_MSG_INFO = 0x81,
    MT_MSG_OUTPUT = 0x84,
    MT_MSG_EVAL_RESULT = 0x85,
    MT_MSG_STATS_REPLY = 0x86,
    MT_MSG_PARAMS = 0x87,
    MT_MSG_LOG = 0x90, /**< unsolicited text from the device (debug) */
    MT_MSG_ERROR = 0xFF
};

/** Header flags (meaning depends on the message type). */
enum {
    MT_FLAG_TRAIN = 0x01,   /**< SAMPLE: train on the sample once stored */
    MT_FLAG_REPLAY = 0x02,  /**< SAMPLE: offer it to the replay reservoir and run its steps */
    MT_FLAG_RUN = 0x01,     /**< INFER: run the model first (else read the last output again) */
    MT_FLAG_BLEND = 0x02,   /**< INFER: the blended prediction in the targets' space (mt_blend_t) */
    MT_FLAG_VALSET = 0x01,  /**< EVAL: mean over the validation slots instead of the stored sample */
    MT_FLAG_LAST = 0x01,    /**< PUT_PARAMS: last chunk: commit */
    MT_FLAG_PERSIST = 0x01, /**< CHECKPOINT: also write the kept parameters to storage */
    MT_FLAG_DUP = 0x01      /**< ACK: the request was a duplicate and was not applied again */
};

/** Encodings of a sample block. */
enum {
    MT_ENC_NONE = 0,  /**< no data (count 0): input/target keep their values, a mask is all ones */
    MT_ENC_F32 = 1,   /**< float32 values */
    MT_ENC_U8 = 2,    /**< uint8 raw: value = raw * scale + offset */
    MT_ENC_I16 = 3,   /**< int16 raw: value = raw * scale + offset (e.g. mm with scale 0.001) */
    MT_ENC_LABEL = 4, /**< uint16 class index -> one-hot of length count (targets only) */
    MT_ENC_BITS = 5   /**< mask bits, LSB first: bit i set -> 1.0, clear -> 0.0 (masks only) */
};

/** CHECKPOINT modes (payload byte 0) and RESET modes. */
enum { MT_CKPT_SNAPSHOT = 0, MT_CKPT_ACCEPT_IF_BETTER = 1 };
enum { MT_RESET_MODEL = 0, MT_RESET_EXIT = 1 };

/** ACK result codes. */
enum {
    MT_RESULT_OK = 0,
    MT_RESULT_NONFINITE = 1,  /**< the loss was NaN/Inf: the update was skipped (still acknowledged) */
    MT_RESULT_ROLLED_BACK = 2 /**< accept-if-better: the new parameters were worse and were rolled back */
};

/** Error codes (ERROR payload; negative values of them are returned by the functions below). */
enum {
    MT_LINK_ERR_CRC = 1,          /**< CRC mismatch (transient: the host retransmits) */
    MT_LINK_ERR_FRAMING = 2,      /**< COBS block cut short by a delimiter (transient) */
    MT_LINK_ERR_OVERSIZE = 3,     /**< frame larger than the device's buffer (transient: lost delimiter) */
    MT_LINK_ERR_SHORT = 4,        /**< frame shorter than header + CRC (transient) */
    MT_LINK_ERR_VERSION = 5,      /**< protocol version of the frame is not MT_LINK_VERSION */
    MT_LINK_ERR_TYPE = 6,         /**< unknown request type */
    MT_LINK_ERR_LENGTH = 7,       /**< payload length does not match the message */
    MT_LINK_ERR_ENCODING = 8,     /**< encoding not allowed for this block */
    MT_LINK_ERR_SIZE = 9,         /**< element count differs from the model's (detail: expected) */
    MT_LINK_ERR_RANGE = 10,       /**< offset, label, slot or mode out of range (detail: the limit) */
    MT_LINK_ERR_SEQUENCE = 11,    /**< sequence gap: the device applied less than the host thinks */
    MT_LINK_ERR_UNSUPPORTED = 12, /**< the application has no callback for this request */
    MT_LINK_ERR_NO_SAMPLE = 13,   /**< TRAIN/INFER/EVAL before a sample was stored */
    MT_LINK_ERR_APP = 14          /**< a callback failed (detail: its return value) */
};

/* ---------------------------------------------------------------------------------------------- */
/* Framing                                                                                          */
/* ---------------------------------------------------------------------------------------------- */

/** Return values of mt_link_feed(): 0 = need more bytes, 1 = a verified frame, < 0 = -MT_LINK_ERR_*. */
enum { MT_LINK_NEED_MORE = 0, MT_LINK_FRAME = 1 };

/** A verified frame; payload points into the link's buffer and stays valid until the next byte is fed. */
typedef struct {
    uint8_t version;
    uint8_t type;
    uint8_t flags;
    uint32_t seq;
    uint8_t *payload;
    size_t len;
} mt_link_frame_t;

/** Writes one byte to the wire (blocking). */
typedef void (*mt_link_putc_fn)(void *ctx, uint8_t byte);
/** Called after each complete frame (e.g. to flush a buffered stream); may be NULL. */
typedef void (*mt_link_flush_fn)(void *ctx);

/** Counters of the link (reported in STATS). */
typedef struct {
    uint32_t frames;      /**< verified frames received */
    uint32_t crc_errors;  /**< frames dropped for a CRC mismatch */
    uint32_t bad_frames;  /**< frames dropped for framing, size or short-frame errors */
    uint32_t duplicates;  /**< sequenced requests acknowledged again without being applied */
    uint32_t errors_sent; /**< ERROR replies sent */
} mt_link_counters_t;

/** State of one link. Initialise with mt_link_init(); treat the fields as private. */
typedef struct {
    uint8_t *buf;  /* frame buffer (caller's, 4-byte aligned) */
    size_t cap;    /* its size in bytes */
    size_t len;    /* bytes of the frame being received */
    uint8_t code;  /* code byte of the current COBS block */
    uint8_t left;  /* data bytes left in the current block */
    uint8_t state; /* receiver state */
    mt_link_frame_t frame;
    mt_link_putc_fn putc;
    mt_link_flush_fn flush;
    void *io_ctx;
    mt_link_counters_t count;
    /* sequencing, owned by mt_link_service() */
    uint32_t last_seq;       /* last applied sequence number (0 = none yet) */
    uint32_t last_sample_id; /* sample_id of the last applied SAMPLE (0xFFFFFFFF = none) */
    uint8_t have_input;      /* a stored input / target exists */
    uint8_t have_target;
    uint8_t have_output; /* an INFER output exists */
    uint8_t have_ref;    /* ref_loss holds the validation loss of the kept (snapshot) state */
    uint8_t last_ack[MT_LINK_ACK_BYTES];
    uint32_t val_written; /* bit k: validation slot k was written (slots >= 32 always count as written) */
    float ref_loss;       /* validation loss at the last accepted checkpoint */
} mt_link_t;

/**
 * Initialise @p link with a frame buffer of @p cap bytes (at least MT_LINK_MIN_FRAME, at most
 * MT_LINK_MAX_FRAME are used; 4-byte aligned) and the output callback.
 * @return 0, or -1 when the buffer is too small or misaligned, or putc is NULL.
 */
int mt_link_init(mt_link_t *link, uint8_t *buf, size_t cap, mt_link_putc_fn putc, mt_link_flush_fn flush,
                 void *io_ctx);

/**
 * Feed one received byte.
 * @return MT_LINK_NEED_MORE, MT_LINK_FRAME (see mt_link_last_frame()), or -MT_LINK_ERR_CRC,
 *         -MT_LINK_ERR_FRAMING, -MT_LINK_ERR_OVERSIZE, -MT_LINK_ERR_SHORT for a dropped frame.
 *         Empty frames (two delimiters in a row) are ignored.
 */
int mt_link_feed(mt_link_t *link, uint8_t byte);

/** The frame of the last MT_LINK_FRAME result. */
const mt_link_frame_t *mt_link_last_frame(const mt_link_t *link);

/**
 * Send one frame: 0x00, COBS(header + payload + CRC), 0x00, through the putc callback; no buffer
 * is needed (@p payload may point into the link's own buffer).
 * @return bytes written to the wire, or 0 when @p len exceeds the link's frame size.
 */
size_t mt_link_send(mt_link_t *link, uint8_t type, uint8_t flags, uint32_t seq, const uint8_t *payload,
                    size_t len);

/** CRC-32 (IEEE 802.3, reflected, as zlib.crc32): pass 0 first, chainable. */
uint32_t mt_link_crc32(uint32_t crc, const uint8_t *data, size_t len);

/* ---------------------------------------------------------------------------------------------- */
/* Samples                                                                                          */
/* ---------------------------------------------------------------------------------------------- */

/** One block of a SAMPLE payload, as parsed (data points into the payload). */
typedef struct {
    uint8_t enc;
    uint32_t count;
    float scale;
    float offset;
    const uint8_t *data;
    size_t nbytes;
} mt_link_block_t;

/** A parsed SAMPLE payload. */
typedef struct {
    uint32_t sample_id;
    uint8_t slot; /**< 0: the working sample; k > 0: validation slot k - 1 */
    mt_link_block_t input, target, mask;
} mt_link_sample_t;

/** Roles of a block: which encodings are allowed. */
enum { MT_ROLE_INPUT = 0, MT_ROLE_TARGET = 1, MT_ROLE_MASK = 2 };

/**
 * Parse and check the structure of a SAMPLE payload (lengths, encodings per role).
 * @return 0 or -MT_LINK_ERR_LENGTH / -MT_LINK_ERR_ENCODING.
 */
int mt_link_parse_sample(const uint8_t *payload, size_t len, mt_link_sample_t *sample);

/**
 * Check a parsed block against the element count the model expects (@p numel) and, for labels,
 * the class index. @return 0, -MT_LINK_ERR_SIZE (*detail = numel) or -MT_LINK_ERR_RANGE.
 */
int mt_link_check_block(const mt_link_block_t *block, uint32_t numel, uint32_t *detail);

/**
 * Convert a checked block to @p numel floats in @p dst. MT_ENC_NONE leaves dst as it is, except for
 * masks (@p role MT_ROLE_MASK), which become all ones. Integer encodings compute
 * raw * scale + offset in float (two roundings, no fused multiply-add).
 */
void mt_link_decode_block(const mt_link_block_t *block, int role, float *dst, uint32_t numel);

/* ---------------------------------------------------------------------------------------------- */
/* Service: the protocol v1 dispatcher                                                              */
/* ---------------------------------------------------------------------------------------------- */

/** What a sequenced callback reports (ACK payload). */
typedef struct {
    uint8_t result; /**< MT_RESULT_* */
    uint32_t step;  /**< updates applied so far */
    float loss;     /**< loss of the step / validation loss of a checkpoint decision */
} mt_link_result_t;

/** Training statistics the application reports in STATS (fields it does not track: 0, metric NaN). */
typedef struct {
    uint32_t step;            /**< updates applied (mt_steps()) */
    uint32_t samples_trained; /**< training steps attempted, including skipped ones */
    uint32_t nonfinite_skips; /**< steps skipped by the NaN/Inf guard */
    float last_loss;
    float loss_avg;             /**< e.g. an exponential moving average */
    float metric;               /**< application metric (e.g. accuracy or RMSE), NaN when none */
    uint64_t last_step_instr;   /**< instructions (or ns on hardware) of the last training step */
    uint64_t total_train_instr; /**< the same, summed over all steps */
    uint32_t stack_used;        /**< bytes, mt_board_stack_used() */
    uint8_t restored_from; /**< INFO: 0 compiled-in parameters, 1 + k: loaded from storage slot k at boot */
    uint8_t bad_slots;     /**< INFO: bit k: storage slot k held a damaged or foreign record at boot */
} mt_link_app_stats_t;

/** Static description of the device, sent in INFO. */
typedef struct {
    const char *model_hash; /**< MT_MODEL_HASH (at most 64 characters are sent) */
    const char *plan;  /**< one line: strategy, what is updated, optimizer (at most 96 characters are sent) */
    const char *board; /**< mt_board_name() (at most 32 characters are sent) */
    uint16_t input_c, input_h, input_w; /**< input shape (C x H x W) */
    uint32_t trainable_numel;           /**< MT_TRAINABLE_NUMEL */
    uint32_t arena_bytes;               /**< MT_ARENA_BYTES */
    uint32_t peak_ram_bytes;            /**< MT_PLAN_PEAK_RAM_BYTES */
    uint32_t stack_bytes;               /**< mt_board_stack_size() */
    uint32_t cpu_hz;                    /**< mt_board_cpu_hz() */
} mt_link_info_t;

struct mt_replay; /* the replay reservoir (below), NULL in firmware without one */
struct mt_blend;  /* the running mean of the targets (below), NULL in firmware without one */

/**
 * The application: sample buffers and callbacks. Every callback is optional (NULL: the request
 * is answered with MT_LINK_ERR_UNSUPPORTED). Callbacks return 0 on success or a negative
 * application error code (reported as MT_LINK_ERR_APP with that detail).
 */
typedef struct {
    void *ctx;
    mt_link_info_t info;
    /* the working sample (float buffers of the model's sizes) */
    float *x;
    uint32_t x_numel; /**< MT_INPUT_NUMEL */
    float *target;
    uint32_t target_numel; /**< MT_TARGET_NUMEL */
    float *mask;           /**< target_numel floats, or NULL when the plan uses no mask */
    float *y;
    uint32_t y_numel; /**< MT_OUTPUT_NUMEL */
    /* optional validation set: val_slots samples back to back (x_numel / target_numel floats each), written
     * by SAMPLE slot k > 0; EVAL VALSET and accept-if-better use the written ones (the first 32 are tracked
     * one by one, later slots always count as written) */
    float *val_x;
    float *val_target;
    float *val_mask;
    uint32_t val_slots;
    /* optional replay reservoir: SAMPLE with MT_FLAG_REPLAY (NULL: ERROR UNSUPPORTED) */
    const struct mt_replay *replay;
    /* optional running mean of the trained-on targets: INFER with MT_FLAG_BLEND (NULL: ERROR UNSUPPORTED) */
    const struct mt_blend *blend;

    /** One training step on (x, target, mask); fill res (result MT_RESULT_NONFINITE when skipped). */
    int (*train)(void *ctx, const float *x, const float *target, const float *mask, mt_link_result_t *res);
    /** y = model(x). */
    int (*infer)(void *ctx, const float *x, float *y);
    /** Loss (and metric, NaN if none) of one sample, without updating anything. */
    int (*eval)(void *ctx, const float *x, const float *target, const float *mask, float *loss,
                float *metric);
    /** Copy trainable parameters [offset, offset + n) to dst. */
    int (*read_params)(void *ctx, uint32_t offset, float *dst, uint32_t n);
    /** Write trainable parameters [offset, offset + n); @p last: the final chunk (commit). */
    int (*write_params)(void *ctx, uint32_t offset, const float *src, uint32_t n, int last);
    /* Checkpoints. The service decides (CHECKPOINT accept-if-better: validation loss over the written
     * slots against the loss at the last accepted checkpoint); the application only copies state. */
    /** Copy the training state (trainable parameters, optimizer state, step) into the snapshot. */
    int (*snapshot)(void *ctx);
    /** Copy the snapshot back into the training state (CHECKPOINT rolled back, ROLLBACK). */
    int (*restore)(void *ctx);
    /** Write the snapshot to storage (CHECKPOINT with PERSIST); NULL: the device has no storage. */
    int (*persist)(void *ctx);
    /** Re-initialise the model (mt_init()) and the training statistics. */
    int (*reset)(void *ctx, mt_link_result_t *res);
    /** Fill the training statistics. */
    void (*stats)(void *ctx, mt_link_app_stats_t *st);
} mt_link_app_t;

/**
 * Decode a checked sample's input, target and (when @p mask is not NULL) mask blocks into @p x, @p target
 * and @p mask, as a SAMPLE is stored (a NONE block leaves its buffer as it is; a NONE mask is all ones).
 */
void mt_link_decode_sample(const mt_link_sample_t *s, const mt_link_app_t *app, float *x, float *target,
                           float *mask);

/** Return values of mt_link_service() besides the (negative) framing errors of mt_link_feed(). */
enum {
    MT_LINK_SVC_IDLE = 0,    /**< nothing complete yet */
    MT_LINK_SVC_HANDLED = 1, /**< a frame was handled and answered */
    MT_LINK_SVC_EXIT = 2     /**< RESET(EXIT) was acknowledged: the caller should end the program */
};

/**
 * Feed one received byte; when it completes a frame, handle the request (calling @p app) and send
 * the reply. Replies to framing errors with an ERROR frame. Request frames of other versions get
 * MT_LINK_ERR_VERSION; reply-type frames (an echo) are ignored.
 * @return MT_LINK_SVC_*, or the negative error of a dropped frame.
 */
int mt_link_service(mt_link_t *link, const mt_link_app_t *app, uint8_t byte);

/** Handle one verified frame (what mt_link_service() does after mt_link_feed() returns a frame). */
int mt_link_handle(mt_link_t *link, const mt_link_app_t *app, const mt_link_frame_t *frame);

/** Send an unsolicited LOG frame with a text message (at most the frame size). */
void mt_link_log(mt_link_t *link, const char *text);

/* ---------------------------------------------------------------------------------------------- */
/* Replay reservoir (mt_link_replay.c; docs/depth.md, "The reservoir on the device")                */
/* ---------------------------------------------------------------------------------------------- */

/** Bytes of one stored sample: the input's and the target's f32 scale and offset, the uint8 input,
 *  the int16 target, and (masked plans) the mask bits, exactly as they arrived in the SAMPLE. */
#define MT_REPLAY_SLOT_BYTES(x_numel, target_numel, masked) \
    (16u + (x_numel) + 2u * (target_numel) + ((masked) ? ((target_numel) + 7u) / 8u : 0u))

/** The reservoir's mutable state (12 bytes of RAM). */
typedef struct {
    uint32_t rng;    /**< xorshift32 state, never 0 */
    uint32_t seen;   /**< samples offered so far */
    uint32_t filled; /**< slots written so far (at most slots) */
} mt_replay_state_t;

/**
 * A reservoir of @p slots samples (Vitter's algorithm R with xorshift32), fixed when the firmware is
 * generated (the plan's LinkApp). Per SAMPLE with MT_FLAG_REPLAY: offer it (the n-th sample, 0-based,
 * goes to slot n while n < slots, afterwards to slot j = rand() % (n + 1) if j < slots), one training
 * step on it when @p train_new, then @p replay steps on slot rand() % filled each.
 */
typedef struct mt_replay {
    uint8_t *bytes;    /**< slots * MT_REPLAY_SLOT_BYTES(x_numel, target_numel, mask != NULL) */
    uint32_t slots;    /**< samples kept */
    uint32_t replay;   /**< replayed training steps per incoming sample */
    uint32_t seed;     /**< the rng state after a reset (non-zero) */
    uint8_t train_new; /**< 1: one step on the incoming sample, before the replayed ones */
    mt_replay_state_t *st;
} mt_replay_t;

/** One xorshift32 step (x ^= x << 13; x ^= x >> 17; x ^= x << 5): the new state, also the draw. */
uint32_t mt_replay_rand(mt_replay_state_t *st);

/** Empty the reservoir: state back to the seed, nothing seen, no slot filled. */
void mt_replay_reset(const mt_replay_t *r);

/**
 * Check that a parsed sample can be stored: uint8 input, int16 target, and a bits or NONE mask
 * (NONE stored as all ones) when @p masked, else a NONE mask. @return 0 or -MT_LINK_ERR_ENCODING.
 */
int mt_replay_check(const mt_link_sample_t *s, int masked);

/**
 * Offer a checked sample (algorithm R). @return the slot it was stored in, or -1 when dropped.
 */
int32_t mt_replay_offer(const mt_replay_t *r, const mt_link_app_t *app, const mt_link_sample_t *s);

/** A uniformly drawn filled slot: rand() % filled (the reservoir must hold a sample). */
uint32_t mt_replay_draw(const mt_replay_t *r);

/** Decode stored slot @p k into the app's working x, target and mask, as the SAMPLE was decoded. */
void mt_replay_load(const mt_replay_t *r, const mt_link_app_t *app, uint32_t k);

/**
 * The reservoir's steps for one incoming sample, already checked and decoded into the app's working
 * buffers: offer, train_new, replay. The working buffers hold the incoming sample again afterwards.
 * @p res: the first step's loss, the step count after the last step, MT_RESULT_NONFINITE when any step
 * was skipped. @return 0 or the (negative) return value of a failing train callback.
 */
int mt_replay_train(const mt_link_app_t *app, const mt_link_sample_t *s, mt_link_result_t *res);

/* ---------------------------------------------------------------------------------------------- */
/* Blend: the prediction shrunk toward the running mean of the targets (mt_link_blend.c)            */
/* ---------------------------------------------------------------------------------------------- */

/**
 * The running mean of every target element over the samples the device trained on (each SAMPLE with
 * TRAIN or REPLAY counts once, its valid elements only: mask != 0, finite), and the prediction INFER BLEND
 * answers in the targets' space: a * p + (1 - a) * mean per element, p the model's output mapped to the
 * targets (@p to_targets: e.g. pooled over the ToF zones; NULL: the output is the targets' space), the
 * output itself where no valid target was seen yet. Fixed when the firmware is generated (the plan's
 * LinkApp.blend); 12 bytes of RAM per target element. RESET (model) empties it; checkpoints keep it.
 */
typedef struct mt_blend {
    float *mean;     /**< target_numel: the valid targets' means (0 before the first) */
    uint32_t *count; /**< target_numel: how many */
    float *out;      /**< target_numel: the last blended prediction (INFER BLEND reads it in chunks) */
    float a;         /**< the prediction's weight, in [0, 1] */
    void (*to_targets)(const float *y, float *p); /**< y_numel -> target_numel floats, or NULL */
} mt_blend_t;

/** Forget every target seen. */
void mt_blend_reset(const mt_blend_t *b, uint32_t target_numel);

/** Count one trained-on sample's valid targets (@p mask NULL: all are valid). */
void mt_blend_observe(const mt_blend_t *b, const float *target, const float *mask, uint32_t target_numel);

/** b->out = the blended prediction of the model output @p y. */
void mt_blend_predict(const mt_blend_t *b, const float *y, uint32_t target_numel);

#ifdef __cplusplus
}
#endif
#endif /* MT_LINK_H */
