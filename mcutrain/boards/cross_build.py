"""Cross-compile a firmware image for a Target and measure it.

``build()`` compiles the application sources together with the board package (start-up, UART
driver, common runtime) using the target's flags, links with the board's linker script and
returns the ELF with its flash/RAM use read back from the ELF's section headers. A link that does
not fit raises ``BuildError`` with a message that names the needed and the available bytes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mcutrain.boards.targets import MemoryRegion, Target
from mcutrain.core.units import format_bytes

#: Flags for every firmware build: warnings are errors; no FMA contraction, so float results
#: match the host bit for bit (docs/boards.md); per-function stack usage files (.su).
COMMON_CFLAGS: tuple[str, ...] = (
    "-std=gnu11",
    "-O2",
    "-g",
    "-ffp-contract=off",
    "-ffunction-sections",
    "-fdata-sections",
    "-fstack-usage",
    "-Wall",
    "-Wextra",
    "-Werror",
)

_OVERFLOW_RE = re.compile(r"region [`']([^'`]+)' overflowed by (\d+) bytes")
_SECTION_RE = re.compile(
    r"^\s*\d+\s+(\S+)\s+([0-9a-fA-F]+)\s+([0-9a-fA-F]+)\s+([0-9a-fA-F]+)\s+[0-9a-fA-F]+\s+\S+\s*\n\s*(.*)$",
    re.MULTILINE,
)


class BuildError(RuntimeError):
    """Compilation or link failed; the message says why in the user's terms."""


@dataclass(frozen=True)
class Section:
    name: str
    size: int
    vma: int
    lma: int
    flags: frozenset[str]  # objdump flags: CONTENTS, ALLOC, LOAD, READONLY, CODE, DATA, THREAD_LOCAL, ...

    @property
    def loaded(self) -> bool:
        """Has bytes in the image (text, rodata, the .data load copy)."""
        return "LOAD" in self.flags and "CONTENTS" in self.flags

    @property
    def allocated(self) -> bool:
        return "ALLOC" in self.flags


@dataclass(frozen=True)
class SizeReport:
    """Bytes the firmware takes, from the linked ELF's section headers."""

    flash_bytes: int  # everything stored in the flash region: code, constants, .data's initial values
    ram_bytes: int  # everything in the RAM region: stack + .data + .bss (heap excluded)
    flash_capacity: int
    ram_capacity: int
    text_bytes: int  # code and constants (allocated in flash)
    data_bytes: int  # initialised RAM data (.data, .tdata)
    bss_bytes: int  # zeroed RAM data (.bss, .tbss): the arena lives here
    stack_bytes: int  # reserved stack
    sections: tuple[Section, ...]

    @property
    def flash_free(self) -> int:
        return self.flash_capacity - self.flash_bytes

    @property
    def ram_free(self) -> int:
        return self.ram_capacity - self.ram_bytes

    def summary(self) -> str:
        return (
            f"flash {self.flash_bytes} / {self.flash_capacity} B ({format_bytes(self.flash_capacity)}), "
            f"RAM {self.ram_bytes} / {self.ram_capacity} B = stack {self.stack_bytes} + data "
            f"{self.data_bytes} + bss {self.bss_bytes}"
        )


@dataclass(frozen=True)
class BuildResult:
    elf: Path
    map_file: Path
    size: SizeReport
    memory_usage: str  # the linker's --print-memory-usage table
    stack_usage_files: tuple[Path, ...]  # gcc -fstack-usage output, one .su per object


def build(
    target: Target,
    sources: Sequence[str | os.PathLike[str]],
    include_dirs: Iterable[str | os.PathLike[str]] = (),
    out_dir: str | os.PathLike[str] = "build",
    extra_cflags: Sequence[str] = (),
    defines: Mapping[str, str | int] | None = None,
    name: str = "app",
    jobs: int = 2,
) -> BuildResult:
    """Compile ``sources`` plus the board package of ``target`` and link ``<out_dir>/<name>.elf``.

    ``defines`` become ``-DKEY=VALUE`` for the application and board sources alike. Raises
    ``BuildError`` on a compile error, a missing toolchain, or an image that does not fit.
    """
    if target.build_system != "mcutrain":
        raise BuildError(
            f"{target.name} is built with its vendor's tools ({target.build_system}), not by mcutrain: see "
            "docs/gap9.md"
        )
    gcc = target.tool("gcc")
    if shutil.which(gcc) is None:
        raise BuildError(f"{gcc} not found: install the cross toolchain for {target.name} (scripts/setup.sh)")
    out = Path(out_dir).resolve()
    obj_dir = out / "obj"
    obj_dir.mkdir(parents=True, exist_ok=True)

    all_defines = {**target.c_defines(), **{k: str(v) for k, v in (defines or {}).items()}}
    cflags = [
        *target.cflags,
        *target.specs,
        *COMMON_CFLAGS,
        *(f"-D{k}={v}" for k, v in all_defines.items()),
        *(f"-I{Path(d).resolve()}" for d in (*target.include_dirs, *include_dirs)),
        *extra_cflags,
    ]
    units = [Path(s).resolve() for s in (*target.sources, *sources)]
    objects = _object_names(units, obj_dir)

    def compile_one(src_obj: tuple[Path, Path]) -> None:
        src, obj = src_obj
        _run([gcc, *cflags, "-c", str(src), "-o", str(obj)], f"compiling {src.name} for {target.name}")

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(compile_one, zip(units, objects, strict=True)))

    elf = out / f"{name}.elf"
    map_file = out / f"{name}.map"
    ldflags = [
        *target.cflags,
        *target.specs,
        "-nostartfiles",
        f"-T{target.linker_script}",
        *(f"-L{p}" for p in target.linker_search),
        f"-Wl,--defsym=__stack_size={target.stack_bytes}",
        "-Wl,--gc-sections",
        "-Wl,--print-memory-usage",
        f"-Wl,-Map={map_file}",
    ]
    proc = subprocess.run(
        [gcc, *ldflags, *map(str, objects), "-lm", "-o", str(elf)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise BuildError(_explain_link_error(target, proc.stdout + proc.stderr))
    return BuildResult(
        elf=elf,
        map_file=map_file,
        size=size_report(target, elf),
        memory_usage=proc.stdout.strip(),
        stack_usage_files=tuple(o.with_suffix(".su") for o in objects if o.with_suffix(".su").exists()),
    )


def size_report(target: Target, elf: str | os.PathLike[str]) -> SizeReport:
    """Flash and RAM use of a linked ELF, attributed to the target's regions by address."""
    proc = subprocess.run([target.tool("objdump"), "-h", str(elf)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{target.tool('objdump')} -h {elf} failed:\n{proc.stderr}")
    sections = tuple(
        Section(
            m[1], int(m[2], 16), int(m[3], 16), int(m[4], 16), frozenset(f.strip() for f in m[5].split(","))
        )
        for m in _SECTION_RE.finditer(proc.stdout)
    )
    flash, ram = target.flash, target.ram

    def in_ram(s: Section) -> bool:
        # .tbss is laid out over .tbss_space, which holds its bytes: count those once.
        return s.allocated and ram.contains(s.vma) and not ("THREAD_LOCAL" in s.flags and not s.loaded)

    flash_bytes = sum(s.size for s in sections if s.loaded and flash.contains(s.lma))
    ram_secs = [s for s in sections if in_ram(s)]
    stack = sum(s.size for s in ram_secs if s.name == ".stack")
    data = sum(s.size for s in ram_secs if s.loaded)
    return SizeReport(
        flash_bytes=flash_bytes,
        ram_bytes=sum(s.size for s in ram_secs),
        flash_capacity=flash.length,
        ram_capacity=ram.length,
        text_bytes=sum(s.size for s in sections if s.allocated and flash.contains(s.vma)),
        data_bytes=data,
        bss_bytes=sum(s.size for s in ram_secs) - data - stack,
        stack_bytes=stack,
        sections=sections,
    )


def _object_names(units: Sequence[Path], obj_dir: Path) -> list[Path]:
    """One object per source; sources that share a file name get distinct objects."""
    seen: dict[str, int] = {}
    objects = []
    for src in units:
        n = seen.get(src.stem, 0)
        seen[src.stem] = n + 1
        objects.append(obj_dir / (f"{src.stem}.o" if n == 0 else f"{src.stem}_{n}.o"))
    return objects


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{what} failed:\n$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")


def _role(target: Target, region: MemoryRegion) -> str:
    if region.name == target.ram_region:
        return "RAM"
    if region.name == target.flash_region:
        return "flash"
    return "memory"


def _explain_link_error(target: Target, log: str) -> str:
    """Turns ld's "region `X' overflowed by N bytes" into needed vs available bytes."""
    lines = []
    for region_name, over in dict(_OVERFLOW_RE.findall(log)).items():
        try:
            region = target.region(region_name)
        except KeyError:
            continue
        need = region.length + int(over)
        role = _role(target, region)
        extra = (
            f"; RAM holds the {target.stack_bytes}-byte stack plus .data and .bss, so the application "
            f"may use at most {target.ram_budget_bytes} bytes of .data + .bss"
            if role == "RAM"
            else ""
        )
        lines.append(
            f"firmware does not fit {target.name}: it needs {need} bytes of {role} but region "
            f"{region.name} has {region.length} bytes ({format_bytes(region.length)}), "
            f"{over} bytes too many{extra}"
        )
    if lines:
        return "\n".join(lines) + f"\n--- linker output ---\n{log.strip()}"
    return f"linking for {target.name} failed:\n{log.strip()}"
