"""The plan file: a self-contained, checked record of a plan (``mcutrain plan --out plan.json``).

It holds what the next steps need and nothing they must guess: the format version, the model's source and
the per-sample input shape it was loaded with (so that ``mcutrain emit plan.json`` needs no other
argument), the plan itself (:class:`~mcutrain.train.update_plan.UpdatePlan`) and the memory numbers the
planner computed. Whoever reads a plan file re-derives the memory from the model and refuses, naming both
numbers, when they differ from the file's (:func:`check_memory`): a stale or edited plan cannot emit C
whose arena differs from what was budgeted.

Format ``mcutrain-plan/2``; files of format 1 (no model record, memory optional) are read too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcutrain.train.memory import MemoryReport
from mcutrain.train.update_plan import PlanError, UpdatePlan

FORMAT = "mcutrain-plan/2"
_FORMATS = ("mcutrain-plan/1", FORMAT)
#: The memory numbers a plan file records and a reader checks.
CHECKED = ("peak_ram_bytes", "arena_bytes", "flash_bytes")


@dataclass(frozen=True)
class PlanFile:
    plan: UpdatePlan
    model_source: str | None = None  # a file, package.module:factory or a built-in model name
    input_shape: tuple[int, ...] | None = None  # per sample, as the model was loaded (PyTorch factories)
    ptq: dict[str, Any] | None = None  # a float model quantized for int8 frozen layers: {"calib": path, ...}
    memory: dict[str, Any] = field(default_factory=dict)  # the planner's numbers (CHECKED, categories)
    extra: dict[str, Any] = field(default_factory=dict)  # scores and other notes for people
    path: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model": {
                "source": self.model_source,
                "input_shape": list(self.input_shape) if self.input_shape else None,
                **({"ptq": self.ptq} if self.ptq else {}),
            },
            "plan": self.plan.to_dict(),
            "memory": self.memory,
            **self.extra,
        }


def memory_record(mem: MemoryReport) -> dict[str, Any]:
    """What a plan file records of the memory model's result."""
    return {
        "peak_ram_bytes": mem.peak_ram_bytes,
        "arena_bytes": mem.arena_bytes,
        "arena_lower_bound_bytes": mem.arena_lower_bound,
        "flash_bytes": mem.flash_bytes,
        "static_ram_bytes": mem.static_ram_bytes,
        "categories": dict(mem.categories),
        "layers": [vars(lm) for lm in mem.layers],
    }


def write_plan(
    path: str | Path,
    plan: UpdatePlan,
    mem: MemoryReport,
    model_source: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    extra: dict[str, Any] | None = None,
    ptq: dict[str, Any] | None = None,
) -> PlanFile:
    pf = PlanFile(plan, model_source, input_shape, ptq, memory_record(mem), dict(extra or {}), str(path))
    Path(path).write_text(json.dumps(pf.to_dict(), indent=1) + "\n")
    return pf


def read_plan(path: str | Path) -> PlanFile:
    """The plan file at ``path``; :class:`PlanError` saying what is wrong for anything else."""
    try:
        d = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise PlanError(f"plan file {path} does not exist") from None
    except IsADirectoryError:
        raise PlanError(f"{path} is a folder, not a plan file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PlanError(f"plan file {path} is not valid JSON: {e}") from None
    if not isinstance(d, dict) or d.get("format") not in _FORMATS:
        raise PlanError(
            f"{path} is not an mcutrain plan file (format {FORMAT!r}): write one with `mcutrain plan`"
        )
    try:
        if d["format"] == FORMAT:
            model = d.get("model") or {}
            shape = model.get("input_shape")
            return PlanFile(
                UpdatePlan.from_dict(d["plan"]),
                model.get("source"),
                tuple(int(v) for v in shape) if shape else None,
                model.get("ptq"),
                dict(d.get("memory") or {}),
                {k: v for k, v in d.items() if k not in ("format", "model", "plan", "memory")},
                str(path),
            )
        memory = {k: d[k] for k in CHECKED if k in d}  # format 1: the plan's fields at the top level
        return PlanFile(UpdatePlan.from_dict(d), d.get("model_source"), None, None, memory, {}, str(path))
    except PlanError as e:
        raise PlanError(f"{path}: {e}") from None
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise PlanError(f"{path}: malformed plan file ({type(e).__name__} {e})") from None


def check_memory(pf: PlanFile, mem: MemoryReport) -> None:
    """Raise :class:`PlanError`, naming both numbers, when the memory re-derived from the model differs
    from what the plan file records (another model, another mcutrain, or an edited file)."""
    now = {
        "peak_ram_bytes": mem.peak_ram_bytes,
        "arena_bytes": mem.arena_bytes,
        "flash_bytes": mem.flash_bytes,
    }
    for key in CHECKED:
        if key in pf.memory and int(pf.memory[key]) != now[key]:
            raise PlanError(
                f"{pf.path or 'the plan file'} records {key.replace('_bytes', '').replace('_', ' ')} "
                f"{int(pf.memory[key]):,} B, but the model and plan now need {now[key]:,} B: the plan is "
                "stale or was edited; run `mcutrain plan` again"
            )
