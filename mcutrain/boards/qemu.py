"""Run firmware in QEMU: command line from the Target's data, timeouts, clean shutdown.

QEMU always runs in its own process group and is killed (SIGKILL to the group) on timeout, on any
exception and when the ``QemuProcess`` context ends: an orphaned QEMU busy-polls a host core.

The console UART goes to QEMU's stdout (``serial="stdio"``) or to a TCP server on 127.0.0.1
(``serial=SerialTcp(port)``) that the host link connects to, e.g. with
``serial.serial_for_url(f"socket://127.0.0.1:{port}")``; with ``wait=True`` the guest does not start
before a client has connected, so no byte of its output is lost.

``cwd`` is QEMU's working directory: semihosting file names of the firmware (the link firmware's storage
file, ``emit_firmware(storage="semihost")``) are relative to it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

from mcutrain.boards.targets import Target


class QemuError(RuntimeError):
    """QEMU could not be started, or the firmware failed (timeout, wrong exit status)."""


class FirmwareTimeout(QemuError):
    """The firmware did not finish within the time limit; QEMU was killed."""


@dataclass(frozen=True)
class SerialTcp:
    """Console UART on a TCP server at 127.0.0.1:port (QEMU listens, the host connects)."""

    port: int
    wait: bool = True  # QEMU waits for the client before starting the guest
    # No Nagle on QEMU's side (default): the guest UART sends byte by byte, and Nagle holds each byte after
    # the first until the host's delayed ACK (~40 ms on Linux); 2.8x faster SAMPLE round trips
    # (docs/boards.md, benchmarks/link_throughput.py measures both).
    nodelay: bool = True

    def qemu_arg(self) -> str:
        arg = f"tcp:127.0.0.1:{self.port},server=on,wait={'on' if self.wait else 'off'}"
        return arg + (",nodelay=on" if self.nodelay else "")

    @property
    def url(self) -> str:
        """pyserial URL of the link: ``serial.serial_for_url(url)``."""
        return f"socket://127.0.0.1:{self.port}"


Serial = Literal["stdio"] | SerialTcp


@dataclass(frozen=True)
class RunResult:
    exit_code: int | None  # QEMU's exit status: the firmware's exit code; None when killed
    stdout: str  # UART output with serial="stdio" (and Arm semihosting console output)
    stderr: str  # QEMU diagnostics
    wall_s: float
    timed_out: bool
    timeout_s: float | None = None

    @property
    def message(self) -> str:
        """One line saying how the run ended."""
        if self.timed_out:
            return f"firmware did not finish within {self.timeout_s:g} s: killed"
        return f"firmware exited with status {self.exit_code} after {self.wall_s:.2f} s"

    def check(self, expected_exit: int = 0) -> RunResult:
        """Returns self when the firmware exited with ``expected_exit``; raises QemuError otherwise."""
        if self.timed_out:
            raise FirmwareTimeout(f"{self.message}\n{_tail(self.stdout, self.stderr)}")
        if self.exit_code != expected_exit:
            raise QemuError(f"{self.message}, expected {expected_exit}\n{_tail(self.stdout, self.stderr)}")
        return self


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def qemu_command(
    target: Target, elf: str | os.PathLike[str], icount: bool = True, serial: Serial = "stdio"
) -> list[str]:
    """The QEMU command line that runs ``elf`` on ``target``.

    With ``icount`` (``-icount shift=0``) every instruction takes 1 ns of virtual time, so the
    board's counters give exact, repeatable instruction counts (docs/boards.md).
    """
    if target.qemu is None:
        raise QemuError(f"target {target.name} runs on hardware only: no QEMU machine in its board.toml")
    serial_arg = "stdio" if serial == "stdio" else serial.qemu_arg()
    cmd = [
        target.qemu.binary,
        "-M",
        target.qemu.machine,
        "-nographic",
        "-monitor",
        "none",
        *target.qemu.args,
        "-serial",
        serial_arg,
        "-kernel",
        str(elf),
    ]
    if icount:
        cmd += ["-icount", "shift=0"]
    return cmd


def _die_with_parent() -> None:
    """In the child before exec: on Linux, QEMU gets SIGKILL when the process that started it dies.

    QEMU runs in its own session (so that kill() reaches its whole group), which also shields it from
    a terminal's Ctrl-C; without this, a host killed by SIGTERM or SIGKILL would leave a guest spinning
    on its serial port forever. Elsewhere this does nothing, and kill()/__exit__ remain the way out.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class QemuProcess:
    """A running QEMU; use as a context manager so that it is always killed.

    >>> with QemuProcess(target, elf, serial=SerialTcp(free_tcp_port())) as q:  # doctest: +SKIP
    ...     link = serial.serial_for_url(q.serial.url)
    ...     ...
    ...     result = q.wait(timeout_s=30)
    """

    def __init__(
        self,
        target: Target,
        elf: str | os.PathLike[str],
        icount: bool = True,
        serial: Serial = "stdio",
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        self.cmd = qemu_command(target, Path(elf).resolve(), icount=icount, serial=serial)
        if shutil.which(self.cmd[0]) is None:
            raise QemuError(f"{self.cmd[0]} not found: install QEMU for {target.name} (scripts/setup.sh)")
        if not Path(elf).is_file():
            raise QemuError(f"no firmware image at {elf}")
        if cwd is not None and not Path(cwd).is_dir():
            raise QemuError(f"QEMU's working directory {cwd} does not exist: create it first")
        self.serial = serial
        # Files, not pipes: a guest that prints a lot must never block on a full pipe.
        # Closed by wait() or __exit__, not by a with-block: they outlive this constructor.
        self._out: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self._err: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self._start = time.monotonic()
        self.proc = subprocess.Popen(
            self.cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            start_new_session=True,
            cwd=cwd,
            preexec_fn=_die_with_parent,
        )

    def __enter__(self) -> QemuProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()
        self._out.close()
        self._err.close()

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL to QEMU's process group, then reap it. Safe to call more than once."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                os.killpg(self.proc.pid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
            self.proc.kill()

    def wait(self, timeout_s: float) -> RunResult:
        """Waits for the firmware to exit; on timeout kills QEMU and returns ``timed_out=True``."""
        timed_out = False
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            self.kill()
        wall = time.monotonic() - self._start
        stdout, stderr = self._read(self._out), self._read(self._err)
        return RunResult(
            exit_code=None if timed_out else self.proc.returncode,
            stdout=stdout,
            stderr=stderr,
            wall_s=wall,
            timed_out=timed_out,
            timeout_s=timeout_s,
        )

    @staticmethod
    def _read(f: IO[bytes]) -> str:
        if f.closed:
            return ""
        f.seek(0)
        text = f.read().decode("utf-8", errors="replace")
        f.close()
        return text.replace("\r\n", "\n")


def run_qemu(
    target: Target,
    elf: str | os.PathLike[str],
    timeout_s: float = 30.0,
    icount: bool = True,
    serial: Serial = "stdio",
    cwd: str | os.PathLike[str] | None = None,
) -> RunResult:
    """Runs ``elf`` on ``target`` until it exits or ``timeout_s`` passes (then QEMU is killed and the
    result has ``timed_out=True``; ``result.check()`` turns that into a ``FirmwareTimeout``).

    With a TCP serial and ``wait=True`` nobody connects here, so the guest never starts: use
    ``QemuProcess`` and connect before waiting.
    """
    with QemuProcess(target, elf, icount=icount, serial=serial, cwd=cwd) as q:
        return q.wait(timeout_s)


def _tail(stdout: str, stderr: str, lines: int = 20) -> str:
    out = "\n".join(stdout.splitlines()[-lines:])
    err = "\n".join(stderr.splitlines()[-lines:])
    return f"--- stdout (tail) ---\n{out}\n--- stderr (tail) ---\n{err}"
