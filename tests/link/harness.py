"""Host builds of firmware/link for the tests: a ctypes shim, the fake device, the fuzzer, and a
fault-injecting TCP proxy between the host Link and a device.

The fake device (``fake_device.c``) runs ``mt_link_service`` over stdin/stdout with the toy model of
``toy_app.c``; it is built with ASan/UBSan, so every exchange test is also a sanitizer test.
"""

from __future__ import annotations

import contextlib
import ctypes as C
import os
import random
import select
import shutil
import socket
import struct
import subprocess
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcutrain.emit.c_text import C_WARNINGS
from mcutrain.host.framing import Frame, FrameDecoder, FrameError
from mcutrain.host.sample_encoding import Block, Sample

REPO = Path(__file__).resolve().parents[2]
LINK_SRC = REPO / "firmware" / "link"
HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
LINK_SOURCES = sorted(LINK_SRC.glob("*.c"))

WARN_FLAGS = [*C_WARNINGS, "-Wconversion"]
SANITIZE = [
    "-O1",
    "-g",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
]
#: Environment of sanitized programs: no leak checker (it needs ptrace), stop on the first report.
SAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=86",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=87",
}


def compile_c(out: Path, sources: list[Path], *, shared: bool = False, sanitize: bool = False) -> Path:
    """gcc with the firmware's warning flags (plus -Wconversion) on firmware/link and tests/link."""
    out.parent.mkdir(parents=True, exist_ok=True)
    flags = ["-fPIC", "-shared", "-O2"] if shared else (SANITIZE if sanitize else ["-O2"])
    cmd = ["gcc", *WARN_FLAGS, *flags, f"-I{LINK_SRC}", f"-I{HERE}", *map(str, sources), "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"build failed:\n{' '.join(cmd)}\n{res.stderr}")
    return out


def build_shim(out_dir: Path) -> Shim:
    return Shim(compile_c(out_dir / "libmt_link_shim.so", [*LINK_SOURCES, HERE / "shim.c"], shared=True))


def build_fake_device(out_dir: Path) -> Path:
    return compile_c(
        out_dir / "fake_device", [*LINK_SOURCES, HERE / "toy_app.c", HERE / "fake_device.c"], sanitize=True
    )


def build_fuzzer(out_dir: Path) -> Path:
    srcs = [*LINK_SOURCES, HERE / "toy_app.c", HERE / "fuzz_common.c", HERE / "fuzz_parser.c"]
    return compile_c(out_dir / "fuzz_parser", srcs, sanitize=True)


def sanitizer_env() -> dict[str, str]:
    return {**os.environ, **SAN_ENV}


# ------------------------------------------------------------------------------------------------
# ctypes shim
# ------------------------------------------------------------------------------------------------

u8p = C.POINTER(C.c_uint8)
fp = C.POINTER(C.c_float)


@dataclass(frozen=True)
class Event:
    """What the C receiver returned for one delimiter: a frame, or a negative error code."""

    code: int
    frame: Frame | None = None


class Shim:
    def __init__(self, path: Path) -> None:
        lib = C.CDLL(str(path))
        lib.shim_encode.restype = C.c_size_t
        lib.shim_encode.argtypes = [C.c_uint8, C.c_uint8, C.c_uint32, C.c_char_p, C.c_size_t, u8p, C.c_size_t]
        lib.shim_parse.restype = C.c_long
        lib.shim_parse.argtypes = [C.c_char_p, C.c_size_t, C.c_size_t, u8p, C.c_size_t]
        lib.shim_decode_sample.restype = C.c_int
        lib.shim_decode_sample.argtypes = [
            C.c_char_p,
            C.c_size_t,
            C.c_uint32,
            C.c_uint32,
            fp,
            fp,
            fp,
            C.POINTER(C.c_uint32),
            C.POINTER(C.c_uint32),
        ]
        lib.shim_crc32.restype = C.c_uint32
        lib.shim_crc32.argtypes = [C.c_char_p, C.c_size_t]
        self.lib = lib

    def encode(self, f: Frame) -> bytes:
        cap = len(f.payload) * 2 + 64
        out = (C.c_uint8 * cap)()
        n = self.lib.shim_encode(f.type, f.flags, f.seq, f.payload, len(f.payload), out, cap)
        return bytes(out[:n])

    def parse(self, wire: bytes, cap: int = 6144) -> list[Event]:
        out_cap = 4 * len(wire) + 1024
        out = (C.c_uint8 * out_cap)()
        n = self.lib.shim_parse(wire, len(wire), cap, out, out_cap)
        if n < 0:
            raise RuntimeError(f"shim_parse failed: {n}")
        raw = bytes(out[:n])
        events, pos = [], 0
        while pos < n:
            (code,) = struct.unpack_from("<i", raw, pos)
            pos += 4
            if code == 1:
                version, type_, flags, _, seq, length = struct.unpack_from("<BBBBII", raw, pos)
                pos += 12
                events.append(Event(1, Frame(type_, flags, seq, raw[pos : pos + length], version)))
                pos += length
            else:
                events.append(Event(code))
        return events

    def decode_sample(
        self, payload: bytes, x_numel: int, t_numel: int
    ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, int, int]:
        """(code, x, target, mask, detail, sample_id); x/target start as NaN (NONE keeps them)."""
        x = np.full(x_numel, np.nan, np.float32)
        t = np.full(t_numel, np.nan, np.float32)
        m = np.full(t_numel, np.nan, np.float32)
        detail, sid = C.c_uint32(0), C.c_uint32(0)
        r = self.lib.shim_decode_sample(
            payload,
            len(payload),
            x_numel,
            t_numel,
            x.ctypes.data_as(fp),
            t.ctypes.data_as(fp),
            m.ctypes.data_as(fp),
            C.byref(detail),
            C.byref(sid),
        )
        return r, x, t, m, detail.value, sid.value

    def crc32(self, data: bytes) -> int:
        return int(self.lib.shim_crc32(data, len(data)))


# ------------------------------------------------------------------------------------------------
# The fake device as a process
# ------------------------------------------------------------------------------------------------


class DeviceProcess:
    """``fake_device`` with pipes; ``exchange`` writes raw bytes and collects reply frames."""

    def __init__(self, exe: Path, *args: str, log: Path | None = None) -> None:
        cmd = [str(exe), *args] + (["--log", str(log)] if log else [])
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=sanitizer_env()
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin = self.proc.stdin
        self.stdout_fd = self.proc.stdout.fileno()
        self._decoder = FrameDecoder()

    def write(self, data: bytes) -> None:
        self.stdin.write(data)
        self.stdin.flush()

    def read(self, wait: float) -> bytes:
        r, _, _ = select.select([self.stdout_fd], [], [], wait)
        if not r:
            return b""
        data = os.read(self.stdout_fd, 65536)
        if not data:
            raise EOFError("the device closed its output")
        return data

    def exchange(self, wire: bytes, expect: int = 1, timeout: float = 5.0) -> list[Frame | FrameError]:
        self.write(wire)
        out: list[Frame | FrameError] = []
        end = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < end:
            out += self._decoder.feed(self.read(end - time.monotonic()))
        return out

    def close(self, timeout: float = 10.0) -> tuple[int, str]:
        """Closes stdin (the device ends at EOF); returns (exit status, stderr)."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.stdin.close()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
        return self.proc.returncode, err


# ------------------------------------------------------------------------------------------------
# Fault-injecting proxy
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Faults:
    """Per-frame probabilities, applied independently in each direction."""

    drop: float = 0.0
    corrupt: float = 0.0  # flip 1-3 bits
    duplicate: float = 0.0
    reorder: float = 0.0  # hold a frame back until the next one has passed
    truncate: float = 0.0  # cut a frame short (its delimiter too)
    garbage: float = 0.0  # random bytes before the frame

    @property
    def any(self) -> bool:
        return any((self.drop, self.corrupt, self.duplicate, self.reorder, self.truncate, self.garbage))


class _Mangler:
    """Splits a byte stream at the 0x00 delimiters and applies Faults to each non-empty frame."""

    def __init__(self, faults: Faults, seed: int) -> None:
        self.f = faults
        self.rng = random.Random(seed)
        self.partial = bytearray()
        self.held: bytes | None = None
        self.counts: dict[str, int] = {}

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        parts = data.split(b"\x00")
        for k, part in enumerate(parts):
            self.partial += part
            if k == len(parts) - 1:
                break
            chunk = bytes(self.partial) + b"\x00"
            self.partial.clear()
            out += self._frame(chunk) if len(chunk) > 1 else chunk
        return bytes(out)

    def flush_partial(self) -> bytes:
        """What is left of an unfinished frame (when its sender goes away mid-frame)."""
        data = bytes(self.partial)
        self.partial.clear()
        return data

    def _frame(self, chunk: bytes) -> bytes:
        f, rng = self.f, self.rng
        out = bytearray()
        if rng.random() < f.garbage:
            self._count("garbage")
            out += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12)))
        if rng.random() < f.drop:
            self._count("drop")
            return bytes(out)
        if rng.random() < f.corrupt:
            self._count("corrupt")
            b = bytearray(chunk)
            for _ in range(rng.randrange(1, 4)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            chunk = bytes(b)
        if rng.random() < f.truncate:
            self._count("truncate")
            chunk = chunk[: rng.randrange(1, len(chunk))]
        if rng.random() < f.reorder and self.held is None:
            self._count("reorder")
            self.held = chunk
            return bytes(out)
        out += chunk
        if rng.random() < f.duplicate:
            self._count("duplicate")
            out += b"\x00" + chunk
        if self.held is not None:
            out += b"\x00" + self.held
            self.held = None
        return bytes(out)


class FaultProxy:
    """TCP server on 127.0.0.1 in front of a DeviceProcess; ``url`` is for ``Link``.

    One client at a time: a new connection replaces the old one (a restarted host). Bytes from the
    host and from the device are split into frames at the delimiters and mangled per ``faults``;
    when a host disconnects mid-frame, the half frame it sent still reaches the device. The
    proxy's own threads stop on ``close()``.
    """

    def __init__(self, device: DeviceProcess, faults: Faults = Faults(), seed: int = 0) -> None:
        self.device = device
        self.to_device = _Mangler(faults, seed * 2 + 1)
        self.to_host = _Mangler(faults, seed * 2 + 2)
        self._srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(4)
        self._srv.settimeout(0.1)
        self.port = self._srv.getsockname()[1]
        self._client: socket.socket | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._accept_loop, daemon=True),
            threading.Thread(target=self._device_loop, daemon=True),
        ]
        for t in self._threads:
            t.start()

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    @property
    def injected(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in (self.to_device, self.to_host):
            for k, v in m.counts.items():
                out[k] = out.get(k, 0) + v
        return out

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._srv.accept()
            except (TimeoutError, OSError):
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                old, self._client = self._client, conn
            if old is not None:
                old.close()
            threading.Thread(target=self._host_loop, args=(conn,), daemon=True).start()

    def _host_loop(self, conn: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([conn], [], [], 0.1)
                if not r:
                    continue
                data = conn.recv(65536)
            except (OSError, ValueError):
                data = b""
            with self._lock:
                try:
                    if data:
                        self.device.write(self.to_device.feed(data))
                    else:  # the host went away: its half frame still reached the device
                        self.device.write(self.to_device.flush_partial())
                except (BrokenPipeError, ValueError):
                    return
                if not data:
                    if self._client is conn:
                        self._client = None
                    conn.close()
                    return

    def _device_loop(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.device.read(0.1)
            except (EOFError, OSError, ValueError):
                break
            if not data:
                continue
            out = self.to_host.feed(data)
            with self._lock:
                if self._client is not None and out:
                    with contextlib.suppress(OSError):
                        self._client.sendall(out)
        with self._lock:  # the device ended: hang up on the host
            if self._client is not None:
                self._client.close()
                self._client = None

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
        self._srv.close()


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


# ------------------------------------------------------------------------------------------------
# Streams of samples
# ------------------------------------------------------------------------------------------------

IMAGE_SHAPE = (1, 64, 80)
ZONES = 64


def make_sample(i: int, seed: int = 0) -> Sample:
    """Sample ``i`` of a deterministic stream: a 64x80 uint8 image, 64 int16 distances (mm) and a
    validity mask; every 17th has a NaN target (the device's guard skips it)."""
    rng = np.random.default_rng([seed, i])
    image = Block.u8(rng.integers(0, 256, IMAGE_SHAPE), scale=1 / 255.0, offset=-0.5)
    if i % 17 == 16:
        target = Block.f32(np.full(ZONES, np.nan, np.float32))
    else:
        target = Block.i16(rng.integers(200, 4000, ZONES), scale=1e-3)
    mask = Block.bits(rng.random(ZONES) < 0.9)
    return Sample(image, target, mask, sample_id=i)


def applied_crc(s: Sample) -> str | None:
    """What the toy device logs for a trained sample (the CRC of the floats it decoded), computed
    from the Python reference decoding; None for a sample the NaN guard skips."""
    x = s.input.to_floats(role="input")
    t = s.target.to_floats(role="target")
    m = s.mask.to_floats(s.target.count, role="mask")
    assert x is not None and t is not None and m is not None
    if not np.isfinite(t[0]):
        return None
    return f"{zlib.crc32(x.tobytes() + t.tobytes() + m.tobytes()) & 0xFFFFFFFF:08x}"
