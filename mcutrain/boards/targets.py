"""Target boards as data: firmware/boards/<name>/board.toml loaded into frozen dataclasses.

A board package is a folder with ``board.toml`` (this module's input), a linker script and any
board-specific C sources; the start-up code, UART drivers and the common section layout are
shared in ``firmware/boards/common``. See docs/boards.md for the fields and for how to add a board.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from mcutrain.core.resources import resource_dir
from mcutrain.core.units import format_bytes, parse_bytes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

Arch = Literal["arm", "riscv"]
ExitMethod = Literal["semihosting", "sifive-test", "halt"]

_ARCHES = ("arm", "riscv")
_RUNS_ON = ("qemu", "hardware")
_EXIT_METHODS = ("semihosting", "sifive-test", "halt")
_COUNTER_METHODS = ("systick", "minstret")
_BUILDS = ("mcutrain", "gap-sdk")
_LIBCS = ("picolibc",)  # mt_board_common.c uses picolibc's stdio and TLS interfaces


class TargetError(ValueError):
    """A board description is missing, malformed or inconsistent."""


def firmware_dir() -> Path:
    """The firmware sources: ``mcutrain/_firmware`` in a wheel, the repository's ``firmware/`` otherwise."""
    return resource_dir("firmware")


def boards_dir() -> Path:
    return firmware_dir() / "boards"


@dataclass(frozen=True)
class MemoryRegion:
    """One region of the board's memory map, as in the MEMORY block of its linker script."""

    name: str
    origin: int
    length: int
    description: str = ""

    @property
    def end(self) -> int:
        return self.origin + self.length

    def contains(self, address: int) -> bool:
        return self.origin <= address < self.end


@dataclass(frozen=True)
class Uart:
    driver: str  # "cmsdk-apb", "ns16550", "stm32-usart", "nrf-uarte"
    base: int
    baud: int
    clock_hz: int | None  # input clock of the baud generator, where the driver needs it


@dataclass(frozen=True)
class QemuMachine:
    binary: str  # e.g. "qemu-system-arm"
    machine: str  # -M argument
    args: tuple[str, ...]  # extra arguments, e.g. semihosting or "-bios none"


@dataclass(frozen=True)
class Cluster:
    """A PULP cluster that the generated code offloads the training step to (docs/gap9.md)."""

    cores: int  # cores of a team fork
    l1_region: str  # the shared L1 (TCDM) region of the board's memory map
    l1_reserve: int  # bytes of L1 kept for the cluster cores' stacks; the rest is for working tiles
    l2_reserve: int  # bytes of L2 kept for code and the PMSIS runtime on the real chip
    pmsis: str  # "portable" (firmware/pulp/pmsis_portable) or "gap-sdk"


@dataclass(frozen=True)
class Target:
    """A board: compiler flags, memory map, C runtime, counters, console and (maybe) an emulator."""

    name: str
    description: str
    arch: Arch
    cpu: str
    cpu_hz: int
    runs_on: Literal["qemu", "hardware"]
    toolchain_prefix: str
    cflags: tuple[str, ...]
    libc: str
    specs: tuple[str, ...]
    board_dir: Path
    sources: tuple[Path, ...]
    include_dirs: tuple[Path, ...]
    linker_script: Path
    linker_search: tuple[Path, ...]
    regions: tuple[MemoryRegion, ...]
    flash_region: str
    ram_region: str
    stack_bytes: int
    counter: str  # "systick" or "minstret"
    uart: Uart
    exit_method: ExitMethod
    qemu: QemuMachine | None
    build_system: str = "mcutrain"  # "mcutrain" (crossbuild) or "gap-sdk" (the vendor's Makefiles)
    cluster: Cluster | None = None

    # ---- memory ----
    def region(self, name: str) -> MemoryRegion:
        for r in self.regions:
            if r.name == name:
                return r
        raise KeyError(f"target {self.name} has no memory region {name!r}")

    @property
    def flash(self) -> MemoryRegion:
        """The region that holds code, constants and the .data load image."""
        return self.region(self.flash_region)

    @property
    def ram(self) -> MemoryRegion:
        """The region that holds the stack, .data, .bss (the arena) and the heap."""
        return self.region(self.ram_region)

    @property
    def ram_budget_bytes(self) -> int:
        """RAM left for the application's static data (.data + .bss): the RAM region minus the stack.

        The board's own runtime (UART, counters, picolibc) takes a few hundred bytes of that;
        the linker's numbers (crossbuild.SizeReport) are the final word.
        """
        return self.ram.length - self.stack_bytes

    # ---- tools ----
    def tool(self, name: str) -> str:
        """Cross tool name, e.g. ``tool("gcc")`` -> ``"arm-none-eabi-gcc"``."""
        return f"{self.toolchain_prefix}{name}"

    @property
    def runs_in_qemu(self) -> bool:
        return self.qemu is not None

    # ---- counters ----
    @property
    def instret_resolution(self) -> int:
        """Granularity of ``mt_board_instret()`` in instructions under ``qemu -icount shift=0``."""
        if self.counter == "minstret":
            return 1
        return -(-1_000_000_000 // self.cpu_hz)  # one SysTick period in ns = instructions

    def c_defines(self) -> dict[str, str]:
        """The -D defines that parameterise the common board C code (see mt_board_port.h)."""
        defines = {
            "MT_BOARD_NAME": f'"{self.name}"',
            "MT_BOARD_CPU_HZ": f"{self.cpu_hz}u",
            "MT_BOARD_UART_BASE": f"0x{self.uart.base:08X}u",
            "MT_BOARD_UART_BAUD": f"{self.uart.baud}u",
            "MT_BOARD_EXIT_SEMIHOSTING": "1" if self.exit_method == "semihosting" else "0",
            "MT_BOARD_QEMU": "1" if self.runs_in_qemu else "0",
        }
        if self.uart.clock_hz is not None:
            defines["MT_BOARD_UART_CLOCK_HZ"] = f"{self.uart.clock_hz}u"
        return defines

    def summary(self) -> str:
        """A few human-readable lines."""
        lines = [
            f"{self.name}: {self.description}",
            f"  cpu {self.cpu} at {self.cpu_hz / 1e6:g} MHz, flags {' '.join(self.cflags)}",
            f"  flash {self.flash.name} {format_bytes(self.flash.length)} at 0x{self.flash.origin:08x}, "
            f"RAM {self.ram.name} {format_bytes(self.ram.length)} at 0x{self.ram.origin:08x}, "
            f"stack {format_bytes(self.stack_bytes)}, budget {format_bytes(self.ram_budget_bytes)}",
            f"  runs on {'QEMU -M ' + self.qemu.machine if self.qemu else 'hardware only'}",
        ]
        return "\n".join(lines)


def list_targets() -> list[str]:
    """Names of the boards in firmware/boards (folders with a board.toml), sorted."""
    return sorted(p.parent.name for p in boards_dir().glob("*/board.toml"))


@cache
def load_target(name: str) -> Target:
    """The board ``name`` from ``firmware/boards/<name>/board.toml``."""
    path = boards_dir() / name / "board.toml"
    if not path.is_file():
        known = ", ".join(list_targets()) or "none"
        raise TargetError(f"unknown target {name!r}: no {path}. Known targets: {known}")
    with path.open("rb") as f:
        data = tomllib.load(f)
    try:
        return _parse(data, path)
    except KeyError as e:
        raise TargetError(f"{path}: missing field {e.args[0]!r}") from None


def _size(value: int | str, path: Path, allow_zero: bool = False) -> int:
    try:
        return parse_bytes(value, allow_zero)
    except ValueError as e:
        raise TargetError(f"{path}: {e}") from None


def _get(table: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    value = table[key]
    if not isinstance(value, kind):
        raise TargetError(f"{path}: field {key!r} should be a {kind.__name__}, got {value!r}")
    return value


def _choice(value: str, allowed: tuple[str, ...], what: str, path: Path) -> str:
    if value not in allowed:
        raise TargetError(f"{path}: {what} {value!r} is not one of {', '.join(allowed)}")
    return value


def _parse(data: dict[str, Any], path: Path) -> Target:
    board_dir = path.parent
    name = _get(data, "name", str, path)
    if name != board_dir.name:
        raise TargetError(f"{path}: name {name!r} differs from its folder {board_dir.name!r}")
    tc, fw, mem, uart, ex = (data[k] for k in ("toolchain", "firmware", "memory", "uart", "exit"))

    def files(key: str) -> tuple[Path, ...]:
        out = tuple((board_dir / p).resolve() for p in fw.get(key, []))
        for p in out:
            if not p.exists():
                raise TargetError(f"{path}: [firmware] {key} names {p}, which does not exist")
        return out

    regions = tuple(
        MemoryRegion(
            name=r["name"],
            origin=int(r["origin"]),
            length=_size(r["length"], path),
            description=r.get("description", ""),
        )
        for r in mem["regions"]
    )
    names = [r.name for r in regions]
    for role in ("flash", "ram"):
        if mem[role] not in names:
            raise TargetError(f"{path}: [memory] {role} = {mem[role]!r} is not one of the regions {names}")
    qemu = None
    if "qemu" in data:
        q = data["qemu"]
        qemu = QemuMachine(binary=q["binary"], machine=q["machine"], args=tuple(q.get("args", [])))
    runs_on = _choice(data["runs_on"], _RUNS_ON, "runs_on", path)
    if (runs_on == "qemu") != (qemu is not None):
        raise TargetError(f"{path}: runs_on = {runs_on!r} needs a [qemu] table exactly when it is 'qemu'")
    linker_script = (board_dir / fw["linker_script"]).resolve()
    if not linker_script.is_file():
        raise TargetError(f"{path}: linker script {linker_script} does not exist")
    return Target(
        name=name,
        description=data.get("description", ""),
        arch=_choice(data["arch"], _ARCHES, "arch", path),  # type: ignore[arg-type]
        cpu=_get(data, "cpu", str, path),
        cpu_hz=_get(data, "cpu_hz", int, path),
        runs_on=runs_on,  # type: ignore[arg-type]
        toolchain_prefix=tc["prefix"],
        cflags=tuple(tc["cflags"]),
        libc=_choice(tc["libc"], _LIBCS, "libc", path),
        specs=tuple(tc.get("specs", [])),
        board_dir=board_dir,
        sources=files("sources"),
        include_dirs=files("include_dirs"),
        linker_script=linker_script,
        linker_search=files("linker_search"),
        regions=regions,
        flash_region=mem["flash"],
        ram_region=mem["ram"],
        stack_bytes=_size(mem["stack"], path),
        counter=_choice(data["counter"]["method"], _COUNTER_METHODS, "counter method", path),
        uart=Uart(
            driver=uart["driver"],
            base=int(uart["base"]),
            baud=int(uart.get("baud", 115200)),
            clock_hz=uart.get("clock_hz"),
        ),
        exit_method=_choice(ex["method"], _EXIT_METHODS, "exit method", path),  # type: ignore[arg-type]
        qemu=qemu,
        build_system=_choice(data.get("build", "mcutrain"), _BUILDS, "build", path),
        cluster=_cluster(data["cluster"], regions, path) if "cluster" in data else None,
    )


def _cluster(c: dict[str, Any], regions: tuple[MemoryRegion, ...], path: Path) -> Cluster:
    names = [r.name for r in regions]
    if c["l1"] not in names:
        raise TargetError(f"{path}: [cluster] l1 = {c['l1']!r} is not one of the regions {names}")
    return Cluster(
        cores=int(c["cores"]),
        l1_region=c["l1"],
        l1_reserve=_size(c.get("l1_reserve", 0), path, allow_zero=True),
        l2_reserve=_size(c.get("l2_reserve", 0), path, allow_zero=True),
        pmsis=_choice(c.get("pmsis", "portable"), ("portable", "gap-sdk"), "[cluster] pmsis", path),
    )
