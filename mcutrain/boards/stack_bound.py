"""Worst-case stack depth of a linked firmware, from GCC's call graphs.

Our C is compiled with ``-fcallgraph-info=su``: one ``.ci`` file per object, holding every function's
frame size (the ``-fstack-usage`` number) and its calls. Library functions (picolibc's libm and string
functions, libgcc) come without one; their frames and calls are read from the ELF's disassembly: the sum
of every ``push``/``vpush``/``sub sp`` in the function (an upper bound: shrink-wrapped prologues may sit
on different paths) and every direct ``bl``/tail-call branch. The depth of a root is the deepest path over
that graph. An indirect call, recursion or a dynamically sized frame makes the result a lower bound
(``complete`` is False), e.g. picolibc's ``printf`` calls its output function through a pointer.

:func:`stack_bound` adds what runs above and beside the training step: the start-up code and ``main``, the
link service of a serial-link firmware, and one interrupt (its hardware frame and the deepest handler).
"""

from __future__ import annotations

import functools
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mcutrain.boards.targets import Target

_NODE_RE = re.compile(r'^node: \{ title: "([^"]+)" label: "([^"]*)"', re.MULTILINE)
_EDGE_RE = re.compile(r'^edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"', re.MULTILINE)
_FRAME_RE = re.compile(r"\\n(\d+) bytes \(([a-z,]+)\)")
_FUNC_RE = re.compile(r"^[0-9a-f]+ <([^>]+)>:$")
_INSN_RE = re.compile(r"^\s*[0-9a-f]+:\s+(\S+)\s*(.*)$")
_TARGET_RE = re.compile(r"^[0-9a-f]+ <([^>+]+)>")
_REGLIST_RE = re.compile(r"\{([^}]*)\}")
_IMM_RE = re.compile(r"#(\d+)")
INDIRECT = "__indirect_call"


@dataclass
class _Func:
    frame: int = 0
    calls: set[str] = field(default_factory=set)
    exact: bool = True  # False: dynamic frame, or derived from an unknown construct


@dataclass(frozen=True)
class StackEstimate:
    root: str
    bytes: int
    path: tuple[tuple[str, int], ...]  # (function, its frame) from the root down the deepest path
    complete: bool  # False: an indirect call, recursion or an unknown function lies below the root
    unknown: tuple[str, ...] = ()  # what made it incomplete

    def describe(self) -> str:
        chain = " > ".join(f"{f.rsplit(':', 1)[-1]} {n}" for f, n in self.path)
        bound = "" if self.complete else f" (at least: {', '.join(self.unknown[:4])})"
        return f"{self.bytes} B{bound}: {chain}"


def _regs(text: str) -> int:
    m = _REGLIST_RE.search(text)
    if not m:
        return 0
    n = 0
    for part in m[1].split(","):
        part = part.strip()
        if "-" in part:
            a, b = (int(re.sub(r"\D", "", x)) for x in part.split("-"))
            n += b - a + 1
        elif part:
            n += 1
    return n


def _disassembly(objdump: str, elf: Path) -> dict[str, _Func]:
    """Frames and direct calls of every function in the ELF (Arm Thumb and RISC-V)."""
    text = subprocess.run(
        [objdump, "-d", "--no-show-raw-insn", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    funcs: dict[str, _Func] = {}
    cur: _Func | None = None
    name = ""
    for line in text.splitlines():
        m = _FUNC_RE.match(line)
        if m:
            name = m[1]
            cur = funcs.setdefault(name, _Func())
            continue
        m = _INSN_RE.match(line)
        if cur is None or m is None:
            continue
        op, args = m[1].split(".")[0], m[2]
        if op in ("push", "vpush"):
            width = 8 if "{d" in args.replace(" ", "") else 4
            cur.frame += width * _regs(args)
        elif op == "stmdb" and args.startswith("sp!"):
            cur.frame += 4 * _regs(args)
        elif op in ("sub", "subw") and re.match(r"sp,\s*(sp,\s*)?#", args):
            imm = _IMM_RE.search(args)
            cur.frame += int(imm[1]) if imm else 0
        elif op == "addi" and re.match(r"sp,\s*sp,\s*-\d+", args):  # RISC-V
            cur.frame += int(args.rsplit("-", 1)[1])
        elif op in ("bl", "blx", "b", "jal", "j", "call", "tail"):
            t = _TARGET_RE.search(args.split(",")[-1].strip())
            if t and t[1] != name:
                if op in ("bl", "jal", "call", "tail") or "+0x" not in args:
                    cur.calls.add(t[1])
            elif op in ("blx",) and not t:
                cur.calls.add(INDIRECT)
        elif op in ("jalr",) and "ra" in args.split(",")[0]:
            cur.calls.add(INDIRECT)
    return funcs


def _callgraph(ci_files: Iterable[Path]) -> dict[str, _Func]:
    funcs: dict[str, _Func] = {}
    for ci in ci_files:
        text = ci.read_text()
        for title, label in _NODE_RE.findall(text):
            m = _FRAME_RE.search(label)
            if m:  # a definition (declarations have no frame)
                f = funcs.setdefault(title, _Func())
                f.frame = max(f.frame, int(m[1]))
                f.exact = f.exact and m[2] == "static"
        for src, dst in _EDGE_RE.findall(text):
            funcs.setdefault(src, _Func()).calls.add("memset" if dst == "__builtin_memset" else dst)
    return funcs


def stack_estimates(
    roots: Iterable[str], ci_files: Iterable[Path], elf: str | Path, objdump: str
) -> dict[str, StackEstimate]:
    """The deepest stack path below each root function (whose own frame is included)."""
    own = _callgraph(ci_files)
    lib = _disassembly(objdump, Path(elf))

    def info(fn: str) -> _Func | None:
        return own.get(fn) or lib.get(fn)

    visiting: set[str] = set()

    @functools.cache
    def deepest(fn: str) -> tuple[int, tuple[tuple[str, int], ...], frozenset[str]]:
        f = info(fn)
        if fn == INDIRECT:
            return 0, (), frozenset({"indirect call"})
        if f is None:  # a call the compiler expanded inline (builtins) or dropped: not in the image
            return 0, (), frozenset()
        if fn in visiting:
            return 0, (), frozenset({f"recursion at {fn}"})
        visiting.add(fn)
        best: tuple[int, tuple[tuple[str, int], ...]] = (0, ())
        unknown: set[str] = set() if f.exact else {f"dynamic frame in {fn}"}
        for callee in sorted(f.calls):
            depth, path, unk = deepest(callee)
            unknown |= unk
            if depth > best[0]:
                best = (depth, path)
        visiting.discard(fn)
        return f.frame + best[0], ((fn, f.frame), *best[1]), frozenset(unknown)

    out = {}
    for root in roots:
        if info(root) is None:
            continue
        depth, path, unk = deepest(root)
        out[root] = StackEstimate(root, depth, path, not unk, tuple(sorted(unk)))
    return out


@dataclass(frozen=True)
class StackBound:
    """Static stack need of the firmware while it trains (an upper bound, from :func:`stack_estimates`)."""

    step: StackEstimate  # mt_train_step and everything below it
    above: int  # frames of the start-up code and main() above mt_train_step
    interrupt: int  # one exception entry (hardware frame, FP context) plus the deepest handler
    whole: StackEstimate  # the whole program from start-up (printf calls through a pointer: a lower bound)

    @property
    def training(self) -> int:
        return self.above + self.step.bytes + self.interrupt


#: Cortex-M exception entry: 8 words, or 26 with the lazily stacked FP context (hard-float builds).
EXC_FRAME_BYTES = {True: 104, False: 32}
INTERRUPT_HANDLERS = ("mt_systick_handler",)


def stack_bound(est: dict[str, StackEstimate], t: Target, link: bool = False) -> StackBound:
    frame = lambda f: est[f].path[0][1] if f in est else 0  # noqa: E731
    handler = max((est[h].bytes for h in INTERRUPT_HANDLERS if h in est), default=0)
    fp = "-mfloat-abi=hard" in t.cflags
    # RISC-V boards poll their UART and take no interrupts; a trap is fatal and reports on a fresh stack
    exc = EXC_FRAME_BYTES[fp] + handler if t.arch == "arm" else 0
    # the link firmware trains from a callback: main > mt_link_service (its deepest path) > the callback
    above = frame("mt_board_c_start") + frame("main")
    if link:
        above += est["mt_link_service"].bytes + frame("mt_fw_link_train")
    return StackBound(
        est["mt_train_step"],
        above,
        exc,
        est["mt_board_c_start"],
    )
