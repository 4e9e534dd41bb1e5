"""The typed records of kernel calls: an argument as data (a buffer, a parameter table, an int, a float)
with its C text, a call of one kernel of the op table, and the calls of one step.

:mod:`mcutrain.emit.calls` builds them from the training graph; the PULP lowering
(:mod:`mcutrain.emit.pulp`) and the firmware builder read them; the templates render :attr:`KernelCall.text`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mcutrain.core.kernels import Kernel
from mcutrain.emit.c_text import c_float
from mcutrain.train.derive import Step
from mcutrain.train.update_plan import PlanError


@dataclass(frozen=True)
class Arg:
    """One argument: its C text, and what it is: a ``value`` (ints, floats), a ``buffer`` of the training
    graph, or NULL."""

    text: str
    value: int | float | None = None
    buffer: str | None = None

    @property
    def null(self) -> bool:
        return self.text == "0" and self.value is None

    @staticmethod
    def int_(v: int) -> Arg:
        return Arg(str(int(v)), int(v))

    @staticmethod
    def float_(v: float) -> Arg:
        return Arg(c_float(v), float(v))


NULL = Arg("0")


@dataclass(frozen=True)
class KernelCall:
    kernel: Kernel
    args: tuple[Arg, ...]
    result: str = ""  # the C lvalue that receives the return value (the loss)

    def __post_init__(self) -> None:
        if len(self.args) != len(self.kernel.params):
            raise AssertionError(
                f"{self.kernel.name}: {len(self.args)} arguments for {len(self.kernel.params)}"
            )

    def arg(self, name: str) -> Arg:
        return self.args[self.kernel.index(name)]

    @property
    def text(self) -> str:
        call = f"{self.kernel.name}({', '.join(a.text for a in self.args)});"
        return f"{self.result} = {call}" if self.result else call


@dataclass(frozen=True)
class StepCalls:
    """The kernel calls of one step of the training (or inference) graph."""

    index: int
    step: Step
    comment: str
    prof: str  # the MT_PROFILE id: <op kind>_<pass>
    calls: tuple[KernelCall, ...]
    note: str = ""  # a C comment instead of calls (a concat whose inputs are all in place)

    @property
    def lines(self) -> list[str]:
        return [c.text for c in self.calls] or [self.note]


def bind(kern: Kernel, values: dict[str, Arg], result: str = "") -> KernelCall:
    missing = [p.name for p in kern.params if p.name not in values]
    if missing:
        raise PlanError(f"no value for parameter(s) {', '.join(missing)} of {kern.name}")
    return KernelCall(kern, tuple(values[p.name] for p in kern.params), result)


def scratch_kernels(calls: list[StepCalls]) -> list[KernelCall]:
    """The calls that take a scratch pointer (their scratch-size queries go into the generated C)."""
    return [c for sc in calls for c in sc.calls if any(p.name == "scratch" for p in c.kernel.params)]


def with_kernel(call: KernelCall, kern: Kernel, *extra: Arg) -> KernelCall:
    """The same call of another kernel with the same leading parameters (a cluster version)."""
    return replace(call, kernel=kern, args=(*call.args, *extra))
