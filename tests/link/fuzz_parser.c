/**
 * @file fuzz_parser.c
 * @brief Seeded random + bit-flip fuzzer of the device side of the link (build it with ASan/UBSan).
 *
 *   fuzz_parser [-n FRAMES] [-s SEED]   generate FRAMES frames (default 1000000): well-formed requests
 *                                        of every type (samples with every encoding, parameter chunks,
 *                                        in- and out-of-sequence numbers), half of them mutated (bit
 *                                        flips, byte edits, truncation, insertion, deletion, splices,
 *                                        duplicates, stray zeros) or replaced by garbage, fed to
 *                                        mt_link_service() with frame buffers from 320 to 6144 bytes.
 *   fuzz_parser FILE...                  replay files (a regression corpus) through fresh devices.
 *
 * Checks, besides the sanitizers: every intact frame that fits is received as a frame; every byte
 * the device sends parses as a valid reply frame of the right length (fuzz_common.c).
 * Prints one line of counts; exits 0 when every check held.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuzz_common.h"
#include "mt_link_le.h"

static uint64_t rng;

static uint32_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545F4914F6CDD1DULL) >> 32);
}

static uint32_t below(uint32_t n)
{
    return n ? rnd() % n : 0;
}

/* ---- frame generation ----------------------------------------------------------------------- */

static uint8_t payload[MT_LINK_MAX_FRAME];
static uint8_t wire[4 * MT_LINK_MAX_FRAME];
static size_t wire_n;
static float send_buf[MT_LINK_MAX_FRAME / 4];

static void wire_putc(void *ctx, uint8_t b)
{
    (void)ctx;
    if (wire_n < sizeof wire)
        wire[wire_n++] = b;
}

static size_t put_block(uint8_t *p, uint8_t enc, uint32_t count, int exact)
{
    size_t n = 0, i;
    float scale = (float)(below(2000) + 1) * 0.001f, offset = (float)below(100) * 0.01f - 0.5f;
    if (!exact)
        count = below(4) == 0 ? rnd() : count + below(3) - 1u;
    p[0] = enc;
    p[1] = p[2] = p[3] = 0;
    mt_put_u32(p + 4, enc == MT_ENC_NONE && exact ? 0u : count);
    mt_put_f32(p + 8, scale);
    mt_put_f32(p + 12, offset);
    switch (enc) {
    case MT_ENC_F32:
        n = 4u * (size_t)count;
        break;
    case MT_ENC_U8:
        n = count;
        break;
    case MT_ENC_I16:
        n = 2u * (size_t)count;
        break;
    case MT_ENC_LABEL:
        n = 2;
        break;
    case MT_ENC_BITS:
        n = ((size_t)count + 7u) / 8u;
        break;
    default:
        n = 0;
    }
    if (n > 2048)
        n = below(64); /* a wild count: short data */
    for (i = 0; i < n; i++)
        p[16 + i] = (uint8_t)rnd();
    if (enc == MT_ENC_LABEL && exact)
        mt_put_u16(p + 16, (uint16_t)below(count + 1u)); /* sometimes one past the end */
    if (enc == MT_ENC_F32 && below(8) == 0 && n >= 4)
        mt_put_u32(p + 16, 0x7FC00000u); /* a NaN: the guard skips the step */
    return 16u + n;
}

static size_t gen_sample(uint8_t *p)
{
    static const uint8_t in_enc[] = {MT_ENC_F32, MT_ENC_U8, MT_ENC_I16, MT_ENC_NONE};
    static const uint8_t t_enc[] = {MT_ENC_F32, MT_ENC_U8, MT_ENC_I16, MT_ENC_LABEL, MT_ENC_NONE};
    static const uint8_t m_enc[] = {MT_ENC_NONE, MT_ENC_BITS, MT_ENC_F32, MT_ENC_U8};
    const int exact = below(10) != 0;
    size_t n = 8;
    mt_put_u32(p, rnd());
    p[4] = (uint8_t)(below(4) == 0 ? below(FUZZ_VAL + 2u) : 0u);
    p[5] = p[6] = p[7] = 0;
    n += put_block(p + n, below(16) ? in_enc[below(4)] : (uint8_t)rnd(), FUZZ_X, exact);
    n += put_block(p + n, t_enc[below(5)], FUZZ_T, exact || below(2));
    n += put_block(p + n, m_enc[below(4)], FUZZ_T, exact || below(2));
    return n;
}

/* A request of a random type with a mostly well-formed payload; returns the payload length. */
static size_t gen_request(uint8_t *type, uint8_t *flags, uint32_t *seq)
{
    static const uint8_t types[] = {MT_MSG_HELLO,
                                    MT_MSG_SAMPLE,
                                    MT_MSG_SAMPLE,
                                    MT_MSG_SAMPLE,
                                    MT_MSG_TRAIN,
                                    MT_MSG_INFER,
                                    MT_MSG_EVAL,
                                    MT_MSG_STATS,
                                    MT_MSG_GET_PARAMS,
                                    MT_MSG_PUT_PARAMS,
                                    MT_MSG_CHECKPOINT,
                                    MT_MSG_ROLLBACK,
                                    MT_MSG_RESET,
                                    MT_MSG_ACK,
                                    0x42,
                                    0x00};
    const uint32_t last = fuzz_dev.last_seq, pick = below(10);
    size_t n = 0, i;
    *type = types[below(sizeof types)];
    *flags = (uint8_t)(below(2) ? 1u + below(2) : below(4) == 0 ? rnd() : 0u); /* SAMPLE: TRAIN or REPLAY */
    *seq = pick < 7 ? last + 1u : pick < 8 ? last : pick < 9 ? last - below(5) : rnd();
    switch (*type) {
    case MT_MSG_SAMPLE:
        n = gen_sample(payload);
        break;
    case MT_MSG_INFER:
    case MT_MSG_GET_PARAMS:
        mt_put_u32(payload, below(4) ? below(FUZZ_PARAMS + 4u) : rnd());
        mt_put_u32(payload + 4, below(3) ? below(200) : rnd());
        n = 8;
        break;
    case MT_MSG_PUT_PARAMS: {
        const uint32_t cnt =
            below(4) ? below(80) : below((MT_LINK_MAX_FRAME - MT_LINK_OVERHEAD - 8u) / 4u + 1u);
        mt_put_u32(payload, below(4) ? below(FUZZ_PARAMS) : rnd());
        mt_put_u32(payload + 4, below(8) ? FUZZ_PARAMS : rnd());
        for (i = 0; i < 4u * cnt; i++)
            payload[8 + i] = (uint8_t)rnd();
        n = 8u + 4u * cnt;
        break;
    }
    case MT_MSG_CHECKPOINT:
    case MT_MSG_RESET:
        payload[0] = (uint8_t)(*type == MT_MSG_RESET && below(50) ? 0u : below(3));
        n = 1;
        break;
    case MT_MSG_HELLO:
    case MT_MSG_STATS:
    case MT_MSG_TRAIN:
    case MT_MSG_EVAL:
    case MT_MSG_ROLLBACK:
        n = 0;
        break;
    default:
        n = below(32);
        for (i = 0; i < n; i++)
            payload[i] = (uint8_t)rnd();
    }
    if (below(50) == 0) /* wrong length */
        n = n ? n - 1u : 1u;
    return n;
}

/* ---- mutation ------------------------------------------------------------------------------- */

static const char *mutate(void)
{
    uint32_t k, i;
    if (wire_n == 0)
        return "none";
    switch (below(9)) {
    case 0:
        k = 1u + below(4);
        for (i = 0; i < k; i++)
            wire[below((uint32_t)wire_n)] ^= (uint8_t)(1u << below(8));
        return "bitflip";
    case 1:
        wire[below((uint32_t)wire_n)] = (uint8_t)rnd();
        return "byte";
    case 2:
        wire_n = below((uint32_t)wire_n);
        return "truncate";
    case 3:
        if (wire_n + 16 < sizeof wire) {
            const uint32_t at = below((uint32_t)wire_n), cnt = 1u + below(16);
            memmove(wire + at + cnt, wire + at, wire_n - at);
            for (i = 0; i < cnt; i++)
                wire[at + i] = (uint8_t)rnd();
            wire_n += cnt;
        }
        return "insert";
    case 4: {
        const uint32_t at = below((uint32_t)wire_n), cnt = 1u + below(8);
        const size_t c = at + cnt > wire_n ? wire_n - at : cnt;
        memmove(wire + at, wire + at + c, wire_n - at - c);
        wire_n -= c;
        return "delete";
    }
    case 5:
        wire[below((uint32_t)wire_n)] = 0;
        return "zero";
    case 6:
        if (2 * wire_n < sizeof wire) {
            memcpy(wire + wire_n, wire, wire_n);
            wire_n *= 2;
        }
        return "duplicate";
    case 7: /* drop the delimiters: this frame runs into the next one */
        if (wire_n > 2) {
            memmove(wire, wire + 1, wire_n - 2);
            wire_n -= 2;
        }
        return "undelimited";
    default:
        wire_n = below(600);
        for (i = 0; i < wire_n; i++)
            wire[i] = (uint8_t)(below(4) ? rnd() : 0u);
        return "garbage";
    }
}

/* ---- modes ---------------------------------------------------------------------------------- */

/* Each file as a fuzz input (its first byte picks the device), then its rest through every device. */
static int replay(int argc, char **argv)
{
    static uint8_t data[1 << 20];
    int i;
    for (i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        size_t n;
        uint8_t sel;
        if (!f) {
            fprintf(stderr, "fuzz: cannot open %s\n", argv[i]);
            return 2;
        }
        n = fread(data, 1, sizeof data, f);
        fclose(f);
        if (n == 0)
            continue;
        sel = data[0];
        for (data[0] = 0; data[0] < 8; data[0]++)
            fuzz_one_input(data, n);
        data[0] = sel;
        fuzz_one_input(data, n);
    }
    printf("replayed %d files, %llu replies, all valid\n", argc - 1, (unsigned long long)fuzz_replies());
    return 0;
}

int main(int argc, char **argv)
{
    static const size_t caps[] = {MT_LINK_MIN_FRAME, 512, 1024, MT_LINK_MAX_FRAME};
    unsigned long long frames = 1000000ULL, i, mutated = 0, intact = 0, bytes = 0;
    unsigned long long seed = 1;
    mt_link_t sender;
    clock_t t0;
    int a;
    if (argc > 1 && argv[1][0] != '-')
        return replay(argc, argv);
    for (a = 1; a + 1 < argc; a += 2) {
        if (!strcmp(argv[a], "-n"))
            frames = strtoull(argv[a + 1], NULL, 10);
        else if (!strcmp(argv[a], "-s"))
            seed = strtoull(argv[a + 1], NULL, 10);
        else
            return 2;
    }
    rng = seed * 0x9E3779B97F4A7C15ULL + 1u;
    if (mt_link_init(&sender, (uint8_t *)send_buf, sizeof send_buf, wire_putc, NULL, NULL) != 0)
        return 2;
    fuzz_device_init(MT_LINK_MAX_FRAME, 0);
    t0 = clock();
    for (i = 0; i < frames; i++) {
        uint8_t type, flags;
        uint32_t seq, before;
        const uint64_t restarts = fuzz_restarts;
        size_t len;
        if (i % 5000 == 0)
            fuzz_device_init(caps[below(4)], below(5) == 0);
        if (below(1000) == 0)
            mt_link_log(&fuzz_dev, "a log line from the device");
        len = gen_request(&type, &flags, &seq);
        wire_n = 0;
        (void)mt_link_send(&sender, type, flags, seq, payload, len);
        before = fuzz_dev.count.frames;
        if (below(2)) {
            (void)mutate();
            mutated++;
            fuzz_feed(wire, wire_n);
        } else {
            const int fits = len + MT_LINK_OVERHEAD <= fuzz_dev.cap;
            intact++;
            fuzz_feed(wire, wire_n);
            /* the frame is the last one received (a preceding undelimited frame may count too) */
            if (fits && fuzz_restarts == restarts &&
                (fuzz_dev.count.frames == before || fuzz_dev.frame.type != type ||
                 fuzz_dev.frame.seq != seq || fuzz_dev.frame.len != len)) {
                fprintf(stderr, "fuzz: intact frame %llu (type 0x%02x, %zu bytes) was not received\n", i,
                        type, len);
                return 1;
            }
        }
        bytes += wire_n;
    }
    printf(
        "fuzzed %llu frames (%llu intact, %llu mutated or garbage), %llu bytes in, %llu replies, seed %llu, "
        "%.2f s\n",
        frames, intact, mutated, bytes, (unsigned long long)fuzz_replies(), seed,
        (double)(clock() - t0) / CLOCKS_PER_SEC);
    return 0;
}
