"""The static stack bound of a firmware while it trains."""

from __future__ import annotations

from dataclasses import dataclass

from mcutrain.boards.stack_usage import StackEstimate
from mcutrain.boards.targets import Target


@dataclass(frozen=True)
class StackBound:
    """Static stack need of the firmware while it trains (an upper bound, from ``stackusage``)."""

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
