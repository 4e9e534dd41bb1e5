"""Sample encodings of the mcutrain serial protocol v1 (docs/protocol.md): a SAMPLE payload carries
its input, target and mask tensors as blocks of raw bytes (:class:`Block`) plus how the device turns
them into floats (:class:`Enc`). Every integer is little-endian.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from mcutrain.host.framing import OVERHEAD

SAMPLE_HEADER = struct.Struct("<IBxxx")  # sample_id, slot
BLOCK_HEADER = struct.Struct("<BxxxIff")  # enc, count, scale, offset


class Enc(IntEnum):
    NONE = 0
    F32 = 1
    U8 = 2
    I16 = 3
    LABEL = 4
    BITS = 5


_ROLE_ENCODINGS = {
    "input": {Enc.NONE, Enc.F32, Enc.U8, Enc.I16},
    "target": {Enc.NONE, Enc.F32, Enc.U8, Enc.I16, Enc.LABEL},
    "mask": {Enc.NONE, Enc.BITS, Enc.F32, Enc.U8},
}


def _f32(x: float) -> float:
    """``x`` rounded to float32, as it travels (so that a Block survives pack/unpack unchanged)."""
    return float(np.float32(x))


@dataclass(frozen=True)
class Block:
    """One tensor of a sample as it travels: raw bytes plus how the device turns them into floats.

    ``u8``/``i16``: value = float32(raw) * scale + offset in float32 (two roundings, as on the device).
    """

    enc: Enc
    count: int = 0
    data: bytes = b""
    scale: float = 1.0
    offset: float = 0.0

    @staticmethod
    def none() -> Block:
        return Block(Enc.NONE)

    @staticmethod
    def f32(values: Iterable[float] | np.ndarray) -> Block:
        a = np.ascontiguousarray(np.asarray(values, dtype="<f4").ravel())
        return Block(Enc.F32, a.size, a.tobytes())

    @staticmethod
    def u8(values: np.ndarray | Sequence[int], scale: float = 1.0 / 255.0, offset: float = 0.0) -> Block:
        """uint8 values (e.g. an image, C x H x W row-major) with value = raw * scale + offset."""
        a = np.asarray(values)
        if a.size and (a.min() < 0 or a.max() > 255):
            raise ValueError("u8 block: values outside 0..255")
        a = np.ascontiguousarray(a.astype(np.uint8).ravel())
        return Block(Enc.U8, a.size, a.tobytes(), _f32(scale), _f32(offset))

    @staticmethod
    def i16(values: np.ndarray | Sequence[int], scale: float = 1e-3, offset: float = 0.0) -> Block:
        """int16 values (e.g. ToF distances in mm, scale 1e-3 -> metres)."""
        a = np.asarray(values)
        if a.size and (a.min() < -32768 or a.max() > 32767):
            raise ValueError("i16 block: values outside -32768..32767")
        a = np.ascontiguousarray(a.astype("<i2").ravel())
        return Block(Enc.I16, a.size, a.tobytes(), _f32(scale), _f32(offset))

    @staticmethod
    def label(index: int, classes: int) -> Block:
        """A class index, one-hot of length ``classes`` on the device."""
        if not 0 <= index < classes <= 0xFFFF:
            raise ValueError(f"label {index} outside 0..{classes - 1}")
        return Block(Enc.LABEL, classes, struct.pack("<H", index))

    @staticmethod
    def bits(mask: np.ndarray | Sequence[bool]) -> Block:
        """A 0/1 mask as bits, LSB first."""
        a = np.asarray(mask).ravel() != 0
        return Block(Enc.BITS, a.size, np.packbits(a, bitorder="little").tobytes())

    def nbytes(self) -> int:
        return len(self.data)

    def pack(self) -> bytes:
        return BLOCK_HEADER.pack(self.enc, self.count, self.scale, self.offset) + self.data

    def to_floats(self, numel: int | None = None, role: str = "input") -> np.ndarray | None:
        """What the device stores (float32), bit for bit. NONE: None (kept), or all ones for a mask."""
        n = self.count if numel is None else numel
        if self.enc == Enc.NONE:
            return np.ones(n, np.float32) if role == "mask" else None
        if self.enc == Enc.F32:
            return np.frombuffer(self.data, "<f4").astype(np.float32)
        if self.enc == Enc.LABEL:
            out = np.zeros(self.count, np.float32)
            out[struct.unpack("<H", self.data)[0]] = 1.0
            return out
        if self.enc == Enc.BITS:
            return np.unpackbits(np.frombuffer(self.data, np.uint8), bitorder="little")[: self.count].astype(
                np.float32
            )
        raw = np.frombuffer(self.data, np.uint8 if self.enc == Enc.U8 else "<i2")
        if self.enc == Enc.U8 and role == "mask":
            return (raw != 0).astype(np.float32)
        return raw.astype(np.float32) * np.float32(self.scale) + np.float32(self.offset)


def _parse_block(payload: bytes, pos: int, role: str) -> tuple[Block, int]:
    if len(payload) - pos < BLOCK_HEADER.size:
        raise ValueError(f"{role} block header truncated")
    enc_raw, count, scale, offset = BLOCK_HEADER.unpack_from(payload, pos)
    enc = Enc(enc_raw)
    if enc not in _ROLE_ENCODINGS[role]:
        raise ValueError(f"{role} block: encoding {enc.name} not allowed")
    pos += BLOCK_HEADER.size
    size = {Enc.NONE: 0, Enc.F32: 4 * count, Enc.U8: count, Enc.I16: 2 * count, Enc.LABEL: 2}.get(
        enc, (count + 7) // 8
    )
    if len(payload) - pos < size:
        raise ValueError(f"{role} block data truncated")
    return Block(enc, count, payload[pos : pos + size], scale, offset), pos + size


@dataclass(frozen=True)
class Sample:
    """A SAMPLE payload: input, target and mask blocks. ``slot`` 0 is the working sample, k > 0 the
    validation slot k - 1; ``sample_id`` is the host's index of the sample (reported back in ACK/INFO,
    so that a restarted host resumes after the last applied one)."""

    input: Block
    target: Block = field(default_factory=Block.none)
    mask: Block = field(default_factory=Block.none)
    sample_id: int = 0
    slot: int = 0

    def pack(self) -> bytes:
        for role in ("input", "target", "mask"):
            enc = getattr(self, role).enc
            if enc not in _ROLE_ENCODINGS[role]:
                raise ValueError(f"{role} block: encoding {Enc(enc).name} not allowed")
        return (
            SAMPLE_HEADER.pack(self.sample_id & 0xFFFFFFFF, self.slot)
            + self.input.pack()
            + self.target.pack()
            + self.mask.pack()
        )

    @staticmethod
    def unpack(payload: bytes) -> Sample:
        if len(payload) < SAMPLE_HEADER.size:
            raise ValueError("sample header truncated")
        sample_id, slot = SAMPLE_HEADER.unpack_from(payload)
        pos = SAMPLE_HEADER.size
        blocks = []
        for role in ("input", "target", "mask"):
            b, pos = _parse_block(payload, pos, role)
            blocks.append(b)
        if pos != len(payload):
            raise ValueError(f"{len(payload) - pos} bytes after the mask block")
        return Sample(blocks[0], blocks[1], blocks[2], sample_id, slot)

    def data_bytes(self) -> int:
        """Bytes of tensor data (what a sample is worth, without any header)."""
        return self.input.nbytes() + self.target.nbytes() + self.mask.nbytes()


def sample_frame_size(sample: Sample) -> int:
    """Unstuffed frame bytes of a SAMPLE."""
    return OVERHEAD + len(sample.pack())
