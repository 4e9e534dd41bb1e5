"""Write the regression corpus of the device parser (tests/link/corpus/*.bin) from readable cases.

Each file is a fuzz input (fuzz_common.h): byte 0 picks the device's frame buffer (bits 0-1: 320,
512, 1024, 6144 bytes) and a sparse application (bit 2); the rest is the byte stream. The fuzzed
toy device has an input of 3x4x4 floats, 8 targets with a mask, 700 parameters, 2 validation slots.
Run ``python tests/link/make_corpus.py`` after changing a case; tests check the files match. Files
that libFuzzer finds (crash-*, any other name) can be added next to these and are replayed too.
"""

from __future__ import annotations

import random
import struct
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mcutrain.host.framing import (
    FLAG_LAST,
    FLAG_REPLAY,
    FLAG_RUN,
    FLAG_TRAIN,
    FLAG_VALSET,
    HEADER,
    Frame,
    MsgType,
    cobs_encode,
    crc32,
)
from mcutrain.host.messages import chunk_request, put_params_payload
from mcutrain.host.sample_encoding import Block, Enc, Sample

CORPUS = Path(__file__).resolve().parent / "corpus"
X, T, PARAMS = 48, 8, 700
CAP_320, CAP_512, CAP_1024, CAP_6144, SPARSE = 0, 1, 2, 3, 4


def sample(i: int, **kw: Block) -> Sample:
    rng = np.random.default_rng(i)
    blocks = {
        "input": Block.u8(rng.integers(0, 256, X)),
        "target": Block.i16(rng.integers(0, 4000, T)),
        "mask": Block.bits(rng.random(T) < 0.8),
    }
    blocks.update(kw)
    return Sample(sample_id=i, **blocks)


def f(type_: MsgType | int, seq: int = 0, payload: bytes = b"", flags: int = 0) -> bytes:
    return Frame(int(type_), flags, seq, payload).encode()


def raw_frame(version: int, type_: int, seq: int, payload: bytes) -> bytes:
    head = HEADER.pack(version, type_, 0, seq) + payload
    return b"\x00" + cobs_encode(head + struct.pack("<I", crc32(head))) + b"\x00"


def cases() -> dict[str, bytes]:
    s1 = sample(1).pack()
    big_block = struct.pack("<IBxxx", 9, 0) + struct.pack("<BxxxIff", 1, 0x40000001, 1.0, 0.0) + b"\x00" * 8
    hello = f(MsgType.HELLO, 77)
    c = {
        "hello": bytes([CAP_320]) + hello,
        "sample_train": bytes([CAP_1024]) + f(MsgType.SAMPLE, 1, s1, FLAG_TRAIN),
        "sample_label_f32": bytes([CAP_6144])
        + f(
            MsgType.SAMPLE,
            1,
            sample(2, input=Block.f32(np.linspace(-1, 1, X)), target=Block.label(3, T)).pack(),
            FLAG_TRAIN,
        ),
        "sample_label_out_of_range": bytes([CAP_512])
        + f(MsgType.SAMPLE, 1, sample(3, target=Block(Enc.LABEL, T, struct.pack("<H", T))).pack()),
        "sample_wrong_count": bytes([CAP_512])
        + f(MsgType.SAMPLE, 1, sample(4, input=Block.u8([1] * 47)).pack()),
        "sample_nan_target": bytes([CAP_512])
        + f(MsgType.SAMPLE, 1, sample(5, target=Block.f32([float("nan")] * T)).pack(), FLAG_TRAIN),
        "sample_count_overflow": bytes([CAP_1024]) + f(MsgType.SAMPLE, 1, big_block),
        "sample_to_sparse": bytes([CAP_1024 | SPARSE]) + f(MsgType.SAMPLE, 1, s1, FLAG_TRAIN),
        "dup_and_gap": bytes([CAP_1024])
        + f(MsgType.SAMPLE, 1, s1, FLAG_TRAIN)
        + f(MsgType.SAMPLE, 1, s1, FLAG_TRAIN)
        + f(MsgType.TRAIN, 5),
        "params": bytes([CAP_320])
        + f(MsgType.GET_PARAMS, 9, chunk_request(0, 0))
        + f(MsgType.GET_PARAMS, 10, chunk_request(690, 100))
        + f(MsgType.GET_PARAMS, 11, chunk_request(701, 1))
        + f(MsgType.PUT_PARAMS, 1, put_params_payload(0, PARAMS, np.ones(60, np.float32)))
        + f(MsgType.PUT_PARAMS, 2, put_params_payload(680, PARAMS, np.ones(20, np.float32)), FLAG_LAST)
        + f(MsgType.PUT_PARAMS, 3, put_params_payload(690, PARAMS, np.ones(20, np.float32))),
        "checkpoint_rollback_reset": bytes([CAP_512])
        + f(MsgType.ROLLBACK, 1)
        + f(MsgType.SAMPLE, 1, sample(6, input=Block.none()).pack(), 0)
        + f(MsgType.SAMPLE, 1, sample(6).pack(), FLAG_TRAIN)
        + f(MsgType.CHECKPOINT, 2, b"\x00")
        + f(MsgType.CHECKPOINT, 3, b"\x01", 1)
        + f(MsgType.CHECKPOINT, 4, b"\x07")
        + f(MsgType.ROLLBACK, 4)
        + f(MsgType.RESET, 5, b"\x00")
        + f(MsgType.RESET, 6, b"\x01")
        + hello,
        "infer_eval_stats": bytes([CAP_320])
        + f(MsgType.INFER, 1, chunk_request(0), FLAG_RUN)
        + f(MsgType.SAMPLE, 1, s1)
        + f(MsgType.INFER, 2, chunk_request(0, 3), FLAG_RUN)
        + f(MsgType.INFER, 3, chunk_request(3))
        + f(MsgType.INFER, 4, chunk_request(9))
        + f(MsgType.EVAL, 5)
        + f(MsgType.EVAL, 6, b"", FLAG_VALSET)
        + f(MsgType.STATS, 7),
        "bad_crc": bytes([CAP_512]) + hello[:-2] + bytes([hello[-2] ^ 1]) + b"\x00",
        "truncated_block": bytes([CAP_512]) + hello[:5] + b"\x00",
        "short_frame": bytes([CAP_512]) + b"\x00\x03\x01\x02\x00",
        "oversize": bytes([CAP_320]) + b"\x00" + b"\xff" + bytes(range(1, 255)) + b"\x01" * 200 + b"\x00",
        "zeros": bytes([CAP_320]) + b"\x00" * 64,
        "garbage": bytes([CAP_512]) + bytes(random.Random(5).randrange(256) for _ in range(700)),
        "run_254": bytes([CAP_6144]) + f(MsgType.PUT_PARAMS, 1, b"\x01" * 250 + b"\x02" * 12),
        "version_2": bytes([CAP_512]) + raw_frame(2, MsgType.HELLO, 1, b""),
        "unknown_type": bytes([CAP_512]) + f(0x42, 1, b"xyz") + f(MsgType.INFER, 2, b"\x00"),
        "reply_echo": bytes([CAP_512]) + f(MsgType.ACK, 1, bytes(16)) + f(MsgType.ERROR, 1, bytes(12)),
        "banner_then_frame": bytes([CAP_512]) + b"[mt_board] boot\r\n" + hello[1:],
        # the 3-slot reservoir: fill, replace, a duplicate, an f32 input and a validation slot (refused),
        # NONE mask, RESET, INFO with the reservoir record; the sparse device has none (UNSUPPORTED)
        "replay": bytes([CAP_512])
        + b"".join(f(MsgType.SAMPLE, i + 1, sample(10 + i).pack(), FLAG_REPLAY) for i in range(6))
        + f(MsgType.SAMPLE, 6, sample(15).pack(), FLAG_REPLAY)
        + f(MsgType.SAMPLE, 7, sample(16, input=Block.f32(np.zeros(X))).pack(), FLAG_REPLAY)
        + f(MsgType.SAMPLE, 7, replace(sample(17), slot=1).pack(), FLAG_REPLAY)
        + f(MsgType.SAMPLE, 7, sample(18, mask=Block.none()).pack(), FLAG_REPLAY | FLAG_TRAIN)
        + f(MsgType.RESET, 8, b"\x00")
        + f(MsgType.SAMPLE, 9, sample(19).pack(), FLAG_REPLAY)
        + hello,
        "replay_to_sparse": bytes([CAP_1024 | SPARSE]) + f(MsgType.SAMPLE, 1, s1, FLAG_REPLAY),
    }
    return c


def main() -> None:
    CORPUS.mkdir(exist_ok=True)
    for name, data in cases().items():
        (CORPUS / f"{name}.bin").write_bytes(data)
    print(f"wrote {len(cases())} files to {CORPUS}")


if __name__ == "__main__":
    main()
