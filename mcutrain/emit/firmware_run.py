"""Firmware runs in QEMU and the numbers of their UART report: pass/fail, instructions per step, errors
against the simulator, stack, and the per-kernel profile (instructions per MAC or element).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mcutrain.boards.qemu import RunResult, run_qemu
from mcutrain.emit.firmware_build import FirmwareBuild
from mcutrain.emit.firmware_project import FirmwareError, is_mac_id
from mcutrain.emit.selftest import EXIT_CODES

# ---- run -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FirmwareRun:
    run: RunResult
    report: dict[str, Any]  # parsed from the UART output (see parse_report)

    @property
    def exit_code(self) -> int | None:
        return self.run.exit_code

    @property
    def outcome(self) -> str:
        if self.run.timed_out:
            return self.run.message
        names = {v: k for k, v in EXIT_CODES.items()}
        return names.get(self.run.exit_code or 0, f"exit status {self.run.exit_code}")


def run_firmware(fb: FirmwareBuild, timeout_s: float = 60.0) -> FirmwareRun:
    """Run a build in QEMU under ``timeout_s`` (QEMU is killed at the limit: ``run.timed_out``)."""
    if not fb.target.runs_in_qemu:
        raise FirmwareError(f"{fb.target.name} runs on hardware only: flash {fb.elf} to the board")
    r = run_qemu(fb.target, fb.elf, timeout_s=timeout_s)
    return FirmwareRun(r, parse_report(r.stdout))


_REPORT_RES = {
    "instret_mean": re.compile(r"instret per step: mean (\d+) min (\d+) max (\d+) \(resolution (\d+)\)"),
    "errors": re.compile(r"max error: loss (\S+) \(tolerance (\S+)\), parameters (\S+) \(tolerance (\S+)\)"),
    "stack_step": re.compile(r"stack used: (\d+) B by the training steps of (\d+) B"),
    "stack_all": re.compile(r"stack used: (\d+) B in all"),
}


def parse_report(stdout: str) -> dict[str, Any]:
    """The numbers of the firmware's UART report."""
    out: dict[str, Any] = {"passed": "\nPASS\n" in "\n" + stdout}
    if m := _REPORT_RES["instret_mean"].search(stdout):
        out.update(
            instret_mean=int(m[1]), instret_min=int(m[2]), instret_max=int(m[3]), instret_resolution=int(m[4])
        )
    if m := _REPORT_RES["errors"].search(stdout):
        out.update(loss_err=float(m[1]), tol_loss=float(m[2]), param_err=float(m[3]), tol_param=float(m[4]))
    if m := _REPORT_RES["stack_step"].search(stdout):
        out.update(stack_step=int(m[1]), stack_size=int(m[2]))
    if m := _REPORT_RES["stack_all"].search(stdout):
        out["stack_all"] = int(m[1])
    prof = {
        name: (int(calls), int(n))
        for name, calls, n in re.findall(r"^profile (\w+) calls=(\d+) instret=(\d+)$", stdout, re.MULTILINE)
    }
    if prof:
        out["profile"] = prof
    if m := re.search(r"^FAIL: (.*)$", stdout, re.MULTILINE):
        out["failure"] = m[1]
    return out


def profile_table(manifest: dict[str, Any], report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per profile id: calls and instructions per training step (the hook's own cost subtracted), the
    step's MACs (or elements) and instructions per MAC (or element)."""
    prof = report.get("profile", {})
    steps = int(manifest["steps"])
    pairs, cal = prof.get("calibration", (0, 0))
    per_pair = cal / pairs if pairs else 0.0
    rows = []
    for pid in manifest["profile_ids"]:
        calls, n = prof.get(pid, (0, 0))
        instr = max(0.0, (n - calls * per_pair) / steps)
        work = manifest["macs"].get(pid, 0)
        rows.append(
            {
                "id": pid,
                "calls": calls // steps,
                "instret": instr,
                "work": work,
                "mac": is_mac_id(pid),
                "per_work": instr / work if work else float("nan"),
            }
        )
    return rows


def format_measurements(manifest: dict[str, Any], report: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The run's numbers and the per-kernel table (benchmarks/firmware_instructions.py prints it too)."""
    macs = sum(n for pid, n in manifest["macs"].items() if is_mac_id(pid))
    fw = sum(n for pid, n in manifest["macs"].items() if is_mac_id(pid) and pid.endswith("_fw"))
    step = report["instret_mean"]
    lines = [
        f"  stack  measured (painted) {report['stack_step']:,} B by the training steps, "
        f"{report['stack_all']:,} B with printf, of {report['stack_size']:,} B",
        f"  instructions per training step {step:,} (min {report['instret_min']:,}, max "
        f"{report['instret_max']:,}, resolution {report['instret_resolution']})",
        f"  MACs per step {macs:,} (forward {fw:,}, backward {macs - fw:,}): {step / macs:.2f} instructions "
        f"per MAC",
        "",
        f"  {'kernel':<26} {'calls':>5} {'instructions':>13} {'share':>6} {'MACs/elems':>11} "
        f"{'per MAC/elem':>13}",
    ]
    for r in sorted(rows, key=lambda r: -r["instret"]):
        unit = "MAC" if r["mac"] else "elem"
        per = f"{r['per_work']:.2f}/{unit}" if r["work"] else "-"
        lines.append(
            f"  {r['id']:<26} {r['calls']:>5} {r['instret']:>13,.0f} {r['instret'] / step:>6.1%} "
            f"{r['work']:>11,} {per:>13}"
        )
    return "\n".join(lines)
