"""TensorBoard event files, written and read without TensorFlow (the format is in docs/monitor.md).

An event file is a sequence of TFRecords, each one serialized ``Event`` protocol buffer::

    u64 length (LE) | u32 masked CRC-32C of the 8 length bytes | data | u32 masked CRC-32C of data

with ``masked(c) = ((c >> 15) | (c << 17)) + 0xA282EAD8`` (mod 2**32). The first event carries only
``file_version = "brain.Event:2"``; each scalar is an event with ``wall_time``, ``step`` and a
``Summary`` holding one ``Value`` (``tag``, ``simple_value``). Only the fields used here are encoded.

>>> with EventWriter("logs") as w:  # doctest: +SKIP
...     w.scalar("train/loss", 0.25, step=1)
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

FILE_VERSION = "brain.Event:2"


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, reflected, init and xorout 0xFFFFFFFF): ``crc32c(b"123456789") == 0xE3069283``."""
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    """The CRC that TFRecord stores: CRC-32C rotated right by 15 bits plus a constant."""
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(data: bytes) -> bytes:
    """One TFRecord around ``data``."""
    n = struct.pack("<Q", len(data))
    return n + struct.pack("<I", masked_crc(n)) + data + struct.pack("<I", masked_crc(data))


# ---- protocol buffer wire format (the subset an Event needs) -------------------------------------


def _varint(v: int) -> bytes:
    v &= (1 << 64) - 1  # negative int64 as two's complement, like protobuf
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field_no: int, wire_type: int) -> bytes:
    return _varint(field_no << 3 | wire_type)


def _bytes_field(field_no: int, data: bytes) -> bytes:
    return _key(field_no, 2) + _varint(len(data)) + data


def scalar_event(tag: str, value: float, step: int, wall_time: float) -> bytes:
    """``Event{wall_time=1, step=2, summary=5 {value=1 {tag=1, simple_value=2}}}`` serialized."""
    val = _bytes_field(1, tag.encode()) + _key(2, 5) + struct.pack("<f", value)
    summary = _bytes_field(1, val)
    return _key(1, 1) + struct.pack("<d", wall_time) + _key(2, 0) + _varint(step) + _bytes_field(5, summary)


def version_event(wall_time: float) -> bytes:
    """The first event of every file: ``Event{wall_time=1, file_version=3}``."""
    return _key(1, 1) + struct.pack("<d", wall_time) + _bytes_field(3, FILE_VERSION.encode())


class EventWriter:
    """Appends scalars to ``log_dir/events.out.tfevents.<time>.<host>`` (a new file per writer), flushed
    after every ``flush_every`` records so that a killed process loses at most those."""

    def __init__(self, log_dir: str | Path, flush_every: int = 1) -> None:
        self.dir = Path(log_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        self.path = self.dir / f"events.out.tfevents.{int(now)}.{socket.gethostname()}.{os.getpid()}"
        self._f: BinaryIO = self.path.open("wb")
        self._flush_every = max(1, flush_every)
        self._pending = 0
        self._f.write(record(version_event(now)))
        self._f.flush()

    def scalar(self, tag: str, value: float, step: int, wall_time: float | None = None) -> None:
        t = time.time() if wall_time is None else wall_time
        self._f.write(record(scalar_event(tag, float(value), int(step), t)))
        self._pending += 1
        if self._pending >= self._flush_every:
            self.flush()

    def flush(self) -> None:
        self._f.flush()
        self._pending = 0

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# ---- reading back --------------------------------------------------------------------------------


@dataclass
class Event:
    wall_time: float = 0.0
    step: int = 0
    file_version: str = ""
    scalars: dict[str, float] = field(default_factory=dict)


def _read_varint(b: bytes, pos: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        if pos >= len(b):
            raise ValueError("truncated varint")
        c = b[pos]
        pos += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, pos


def _fields(b: bytes) -> Iterator[tuple[int, int, int | float | bytes]]:
    """(field number, wire type, value) of a serialized message; fixed64 as double, fixed32 as float."""
    pos = 0
    while pos < len(b):
        key, pos = _read_varint(b, pos)
        no, wt = key >> 3, key & 7
        value: int | float | bytes
        if wt == 0:
            value, pos = _read_varint(b, pos)
        elif wt == 1:
            (value,), pos = struct.unpack_from("<d", b, pos), pos + 8
        elif wt == 5:
            (value,), pos = struct.unpack_from("<f", b, pos), pos + 4
        elif wt == 2:
            n, pos = _read_varint(b, pos)
            value, pos = b[pos : pos + n], pos + n
        else:
            raise ValueError(f"unsupported protobuf wire type {wt} (field {no})")
        if pos > len(b):
            raise ValueError("truncated protobuf field")
        yield no, wt, value


def parse_event(data: bytes) -> Event:
    ev = Event()
    for no, _, v in _fields(data):
        if no == 1:
            ev.wall_time = float(v)  # type: ignore[arg-type]
        elif no == 2:
            step = int(v)  # type: ignore[arg-type]
            ev.step = step - (1 << 64) if step >= 1 << 63 else step
        elif no == 3:
            ev.file_version = bytes(v).decode()  # type: ignore[arg-type]
        elif no == 5:
            for vno, _, val in _fields(bytes(v)):  # type: ignore[arg-type]
                if vno != 1:
                    continue
                tag, simple = "", float("nan")
                for fno, _, fv in _fields(bytes(val)):  # type: ignore[arg-type]
                    if fno == 1:
                        tag = bytes(fv).decode()  # type: ignore[arg-type]
                    elif fno == 2:
                        simple = float(fv)  # type: ignore[arg-type]
                ev.scalars[tag] = simple
    return ev


def read_records(path: str | Path) -> Iterator[bytes]:
    """The data of each TFRecord of a file; a CRC mismatch or a cut record raises ValueError."""
    with Path(path).open("rb") as f:
        k = 0
        while head := f.read(12):
            if len(head) < 12:
                raise ValueError(f"{path}: record {k} cut short in its header")
            n, crc_n = struct.unpack("<QI", head)
            if masked_crc(head[:8]) != crc_n:
                raise ValueError(f"{path}: record {k}: length CRC mismatch")
            data = f.read(n)
            tail = f.read(4)
            if len(data) < n or len(tail) < 4:
                raise ValueError(f"{path}: record {k} cut short")
            if masked_crc(data) != struct.unpack("<I", tail)[0]:
                raise ValueError(f"{path}: record {k}: data CRC mismatch")
            yield data
            k += 1


def read_events(path: str | Path) -> list[Event]:
    """Every event of an event file, decoded."""
    return [parse_event(d) for d in read_records(path)]


def read_scalars(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` of an event file, in file order."""
    out: dict[str, list[tuple[int, float]]] = {}
    for ev in read_events(path):
        for tag, v in ev.scalars.items():
            out.setdefault(tag, []).append((ev.step, v))
    return out
