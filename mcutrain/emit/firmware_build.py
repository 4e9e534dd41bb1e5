"""Cross builds of firmware projects and their memory checks: the plan must fit the board, the static stack
bound the linked stack region, and the linked RAM the plan's peak (plus the link firmware's buffers when
the plan does not count them); each failure names both numbers.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcutrain.boards.cross_build import BuildResult, SizeReport, build
from mcutrain.boards.stack_bound import INTERRUPT_HANDLERS, StackBound, stack_bound, stack_estimates
from mcutrain.boards.targets import Target, load_target
from mcutrain.core.units import format_bytes
from mcutrain.emit import pulp
from mcutrain.emit.firmware_project import EXTRA_CFLAGS, MANIFEST, FirmwareError, relocate_target
from mcutrain.train.update_plan import PlanError

# ---- build ---------------------------------------------------------------------------------------


def load_manifest(project: str | Path) -> dict[str, Any]:
    path = Path(project) / MANIFEST
    if not path.is_file():
        raise FirmwareError(
            f"{project} is not a firmware project (no {MANIFEST}): run `mcutrain emit PLAN --target BOARD`"
        )
    m = json.loads(path.read_text())
    if m.get("format") != "mcutrain-firmware/1":
        raise FirmwareError(f"{path}: not an mcutrain firmware manifest")
    return m


@dataclass(frozen=True)
class FirmwareBuild:
    project: Path
    target: Target  # relocated to the project's bsp/, with the linked stack size
    result: BuildResult
    manifest: dict[str, Any]
    stack: StackBound
    profile: bool

    @property
    def elf(self) -> Path:
        return self.result.elf

    @property
    def size(self) -> SizeReport:
        return self.result.size

    @property
    def plan_peak_ram(self) -> int:
        return int(self.manifest["plan_peak_ram_bytes"])

    def summary(self) -> str:
        s, m, t, k = self.size, self.manifest, self.target, self.stack
        link_ram = int(m.get("link_ram_bytes", 0))
        peak = self.plan_peak_ram
        diff = peak + link_ram - s.ram_bytes
        link = f" + serial link {link_ram:,} B" if link_ram else ""
        safety = [
            f"{k} {v:,} B"
            for k, v in m.get("link_memory", {}).items()
            if k in ("validation", "snapshot") and v
        ]
        link += f" (of it {', '.join(safety)})" if safety else ""
        return "\n".join(
            [
                f"built {self.elf} for {t.name} ({m['kind']}, model {m['model']}, "
                f"plan {m['plan']['strategy']}{', MT_PROFILE' if self.profile else ''})",
                f"  flash  {s.flash_bytes:>9,} B of {format_bytes(t.flash.length)} ({t.flash.name})",
                f"  RAM    {s.ram_bytes:>9,} B of {format_bytes(t.ram.length)} ({t.ram.name}) = stack "
                f"{s.stack_bytes:,} + .data {s.data_bytes:,} + .bss {s.bss_bytes:,}",
                f"         plan peak RAM {peak:,} B{link}: linked RAM is "
                + (f"{diff:,} B under it" if diff >= 0 else f"{-diff:,} B OVER it"),
                f"  arena  {m['arena_bytes']:>9,} B; trainable parameters {m['trainable_numel']:,} floats",
                f"  stack  {k.training:>9,} B at most while training (static: start-up and main {k.above} "
                f"+ mt_train_step {k.step.bytes} + an interrupt {k.interrupt}) of the {s.stack_bytes:,} B "
                "region",
                f"         deepest step path: {' > '.join(f.rsplit(':', 1)[-1] for f, _ in k.step.path)}",
                f"         whole program {'' if k.whole.complete else '>= '}"
                f"{k.whole.bytes + k.interrupt:,} B with printf",
            ]
        )


def build_firmware(
    project: str | Path, target: str | None = None, profile: bool = False, out_dir: str | Path | None = None
) -> FirmwareBuild:
    """Cross-build the firmware project with the target's flags and check its memory.

    Raises :class:`FirmwareError` when the plan cannot fit the board (naming both numbers), when the
    stack need exceeds the stack region, or when the linked RAM exceeds the plan's peak RAM (not for
    ``profile`` builds, whose counters add a few hundred bytes); ``crossbuild.BuildError`` on a compile
    error or a link overflow.
    """
    proj = Path(project).resolve()
    m = load_manifest(proj)
    if target is not None and target != m["target"]:
        raise FirmwareError(
            f"{project} was emitted for {m['target']}, not {target}: re-run `mcutrain emit --target {target}`"
        )
    base = load_target(m["target"])
    peak = int(m["plan_peak_ram_bytes"])
    if m.get("cluster"):  # L2 and L1 of a PULP target, both numbers each (docs/gap9.md)
        try:
            pulp.check_manifest(m, base)
        except PlanError as e:
            raise FirmwareError(str(e)) from None
    if peak > base.ram.length:
        raise FirmwareError(
            f"the plan does not fit {base.name}: it needs {peak:,} B of RAM at its peak, the board has "
            f"{base.ram.length:,} B ({format_bytes(base.ram.length)}, region {base.ram.name}); plan again "
            f"with --budget {base.ram.length // 1024}KB or less"
        )
    t = relocate_target(base, proj, int(m["stack_region_bytes"]))
    out = Path(out_dir) if out_dir else proj / "build" / (t.name + ("-profile" if profile else ""))
    res = build(
        t,
        [proj / s for s in m["sources"]],
        include_dirs=[proj / d for d in m["include_dirs"]],
        out_dir=out,
        extra_cflags=EXTRA_CFLAGS,
        defines={"MT_PROFILE": 1} if profile else None,
        name="firmware",
    )
    cis = sorted((out / "obj").glob("*.ci"))
    link = m["kind"] == "link"
    roots = ["mt_train_step", "main", "mt_board_c_start", *INTERRUPT_HANDLERS]
    if link:
        roots += ["mt_link_service", "mt_fw_link_train"]
    bound = stack_bound(stack_estimates(roots, cis, res.elf, t.tool("objdump")), t, link)
    fb = FirmwareBuild(proj, t, res, m, bound, profile)
    if bound.training > t.stack_bytes:
        raise FirmwareError(
            f"training needs up to {bound.training} B of stack (mt_train_step {bound.step.describe()}), the "
            f"firmware's stack region has {t.stack_bytes} B (the plan's {m['plan']['stack_reserve_bytes']} B "
            f"reserve minus {m['runtime_reserve_bytes']} B of runtime data): plan with a larger stack reserve"
        )
    link_ram = int(m.get("link_ram_bytes", 0))
    if not profile and res.size.ram_bytes > peak + link_ram:
        s = res.size
        extra = f" plus {link_ram:,} B of serial link" if link_ram else ""
        raise FirmwareError(
            f"the linked firmware takes {s.ram_bytes:,} B of RAM (stack {s.stack_bytes:,} + .data "
            f"{s.data_bytes:,} + .bss {s.bss_bytes:,}), more than the plan's peak of {peak:,} B{extra}: the "
            f"runtime's static data exceeds the {m['runtime_reserve_bytes']} B the firmware keeps for it"
        )
    return fb


def make_standalone(project: str | Path, target: str, timeout_s: float = 300) -> Path:
    """``make -f Makefile.<target>`` in the project (the user's build without Python); returns the ELF."""
    proj = Path(project).resolve()
    r = subprocess.run(
        ["make", "-s", "-j2", "-f", f"Makefile.{target}"],
        cwd=proj,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if r.returncode != 0:
        raise FirmwareError(f"make -f Makefile.{target} failed in {proj}:\n{r.stdout}{r.stderr}")
    return proj / "build" / target / "firmware.elf"
