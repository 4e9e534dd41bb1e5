"""Adapting a classifier to its new data: one runner for the simulator and the device.

:func:`run_adaptation` takes a graph, a plan (an :func:`mcutrain.api.plan` result, whose ``UpdatePlan``
carries the optimizer, the learning-rate schedule, the loss and the batch), a labelled stream already in
the order it is sent (epochs and shuffling are the caller's: repeat or permute the arrays) and a test set.
It

1. encodes every stream and test input as it travels on the serial link (:class:`InputEncoding`: float32,
   or uint8 / int16 with one scale and offset) and decodes it exactly as the device does, so that the
   simulator, the device and the accuracy measurements all see the same floats;
2. trains the simulator on the decoded stream, one ``train_step`` per ``plan.batch`` samples;
3. with ``device=True``: emits and cross-builds the serial-link firmware of the plan for ``board``
   (default mps2-an386, a Cortex-M4F), runs it in QEMU, streams every sample as SAMPLE+TRAIN with its
   class index (one-hot on the device), pulls the trained parameters back and compares them with the
   simulator's;
4. measures top-1 accuracy on the test set before, after the simulator's training and after the
   device's (the device's pulled parameters evaluated by the host's float32 forward pass).

The result (:class:`AdaptResult`) holds the accuracies, the plan's peak RAM and budget, the largest
parameter difference between device and simulator and, with ``yardstick=True``, the same training in
float64 (how far float32 round-off alone drifts over a long stream). :func:`train_on_device`,
:func:`device_link` and :func:`stream_samples` are the pieces demos use to talk to a firmware in QEMU.

    >>> res = api.plan(g, 8 * 1024, "auto", calib=calib, optimizer=OptimizerConfig(lr=1e-3))  # doctest: +SKIP
    >>> r = run_adaptation(g, res, xs, ys, x_test, y_test, InputEncoding.i16(1 / 256), device=True)
    >>> r.accuracy_before, r.accuracy_after, r.device_vs_simulator_max_abs
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from mcutrain.boards.qemu import QemuProcess, SerialTcp, free_tcp_port
from mcutrain.core import ir, semantics
from mcutrain.emit.firmware_build import FirmwareBuild, build_firmware
from mcutrain.emit.firmware_project import emit_firmware
from mcutrain.emit.selftest import rel_diff
from mcutrain.host import Block, Link, Sample
from mcutrain.train.planner import PlanResult
from mcutrain.train.simulator import Simulator
from mcutrain.train.trainable import trainable_vectors, unflatten_params
from mcutrain.train.update_plan import LossKind, PlanError, UpdatePlan

BOARD = "mps2-an386"

_RANGES = {"u8": (0, 255), "i16": (-32768, 32767)}


# ---------------------------------------------------------------------------------------------------
# Inputs on the link
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputEncoding:
    """How an input tensor travels: ``f32`` as is, or ``u8`` / ``i16`` integers ``raw`` with
    ``value = float32(raw) * scale + offset`` on the device (one scale and offset per sample)."""

    kind: str = "f32"
    scale: float = 1.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("f32", "u8", "i16"):
            raise PlanError(f"unknown input encoding {self.kind!r}: use f32, u8 or i16")
        if self.kind != "f32" and not (np.isfinite(self.scale) and self.scale != 0):
            raise PlanError(f"input encoding {self.kind}: scale must be a finite non-zero number")

    @staticmethod
    def u8(scale: float = 1.0, offset: float = 0.0) -> InputEncoding:
        return InputEncoding("u8", float(np.float32(scale)), float(np.float32(offset)))

    @staticmethod
    def i16(scale: float, offset: float = 0.0) -> InputEncoding:
        return InputEncoding("i16", float(np.float32(scale)), float(np.float32(offset)))

    def raw(self, x: np.ndarray) -> np.ndarray:
        """The integers sent for float inputs ``x`` (rounded to nearest, clipped to the type's range);
        ``x`` itself for ``f32``."""
        if self.kind == "f32":
            return np.asarray(x, dtype=np.float32)
        lo, hi = _RANGES[self.kind]
        q = np.rint((np.asarray(x, dtype=np.float64) - self.offset) / self.scale)
        return np.clip(q, lo, hi).astype(np.int32)

    def decode(self, x: np.ndarray) -> np.ndarray:
        """The float32 inputs the device computes from ``x`` (``x`` quantized, then scaled back)."""
        if self.kind == "f32":
            return np.asarray(x, dtype=np.float32)
        return self.raw(x).astype(np.float32) * np.float32(self.scale) + np.float32(self.offset)

    def block(self, x: np.ndarray) -> Block:
        """One sample's input block."""
        if self.kind == "f32":
            return Block.f32(np.asarray(x, dtype=np.float32))
        make = Block.u8 if self.kind == "u8" else Block.i16
        return make(self.raw(x).ravel(), scale=self.scale, offset=self.offset)

    def clipped(self, x: np.ndarray) -> float:
        """Fraction of values of ``x`` outside the encoding's range (clipped when sent)."""
        if self.kind == "f32":
            return 0.0
        lo, hi = _RANGES[self.kind]
        q = (np.asarray(x, dtype=np.float64) - self.offset) / self.scale
        return float(np.mean((q < lo - 0.5) | (q > hi + 0.5)))


def label_samples(x: np.ndarray, y: np.ndarray, classes: int, enc: InputEncoding) -> list[Sample]:
    """SAMPLE payloads: the encoded input and the class index (one-hot of ``classes`` on the device)."""
    return [
        Sample(enc.block(x[i]), Block.label(int(y[i]), classes), Block.none(), sample_id=i)
        for i in range(len(y))
    ]


# ---------------------------------------------------------------------------------------------------
# Talking to a firmware in QEMU
# ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def device_link(fb: FirmwareBuild, graph: ir.Graph, timeout: float = 30.0) -> Iterator[Link]:
    """Start the link firmware ``fb`` in QEMU (``-icount``: exact instruction counts), connect, check that
    it runs ``graph`` and yield the :class:`Link`. On leaving, the firmware is asked to exit and QEMU is
    killed whatever happened."""
    port = free_tcp_port()
    with QemuProcess(fb.target, fb.elf, icount=True, serial=SerialTcp(port)):
        link = Link(  # waits for QEMU's port, says HELLO, checks the model
            f"socket://127.0.0.1:{port}",
            timeout=timeout,
            connect_timeout=20.0,
            expect_model_hash=graph.fingerprint(),
        )
        try:
            yield link
            with contextlib.suppress(Exception):
                link.exit_firmware()
        finally:
            link.close()


def stream_samples(
    link: Link, samples: Sequence[Sample], desc: str = "training", progress: bool = True, replay: bool = False
) -> list[float]:
    """Send every sample as SAMPLE+TRAIN in order (``replay``: SAMPLE+REPLAY, the firmware's reservoir
    steps); returns the device's loss of each sample's first step. ``progress`` shows a bar with the
    running loss when stderr is a terminal."""
    losses: list[float] = []
    bar = tqdm(samples, desc=desc, unit="sample", disable=None if progress else True, leave=False)
    avg = None
    for s in bar:
        ack = link.sample(s, replay=replay)
        losses.append(float(ack.loss))
        avg = ack.loss if avg is None else 0.9 * avg + 0.1 * ack.loss
        bar.set_postfix(step=ack.step, loss=f"{ack.loss:.4f}", avg=f"{avg:.4f}")
    return losses


# ---------------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------------


def accuracy(
    graph: ir.Graph, x: np.ndarray, y: np.ndarray, plan: UpdatePlan | None = None, batch: int = 1024
) -> float:
    """Top-1 accuracy of ``graph`` on inputs ``x`` with class indices ``y``: its float32 forward pass, or
    with ``plan`` the forward the device runs (int8 frozen layers of a quantized graph, train.mixed)."""
    if len(y) == 0:
        raise PlanError("accuracy of an empty test set: give at least one test sample")
    if plan is not None and graph.quantized and plan.frozen_precision == "int8":
        forward = Simulator(graph, plan, check_plan=False).predict
    else:
        forward = lambda xb: semantics.forward(graph, xb)  # noqa: E731
    right = 0
    for i in range(0, len(y), batch):
        out = forward(torch.from_numpy(np.ascontiguousarray(x[i : i + batch], np.float32)))
        right += int((out.argmax(dim=1).numpy() == y[i : i + batch]).sum())
    return right / len(y)


@dataclass(frozen=True)
class AdaptResult:
    strategy: str
    samples: int  # samples streamed (updates = samples // batch)
    test_samples: int
    accuracy_before: float
    accuracy_after: float  # the device's when it ran, else the simulator's
    simulator_accuracy: float
    device_accuracy: float | None  # None: simulator only
    budget_bytes: int | None
    peak_ram_bytes: int  # the plan's arena + trainable parameters + optimizer state (memory model)
    trainable_params: int
    device_vs_simulator_max_abs: float | None  # largest |device - simulator| over the trainable params
    device_vs_simulator_rel: float | None  # the same, relative to the largest |simulator| parameter
    instructions_per_sample: int | None  # one training step on the device (QEMU -icount)
    # yardstick: the same training in float64, to tell float32 round-off from a real difference
    float64_accuracy: float | None
    float32_vs_float64_max_abs: float | None  # simulator float32 vs float64 parameters
    device_vs_float64_max_abs: float | None
    simulator_losses: list[float]
    device_losses: list[float] | None
    seconds: float
    simulator_params: np.ndarray  # the simulator's trained parameters, mt_export_params order

    def to_dict(self, losses: bool = False) -> dict[str, Any]:
        """Plain JSON-able values (without the parameters; the losses with ``losses``)."""
        d = {k: v for k, v in asdict(self).items() if k != "simulator_params"}
        if not losses:
            d.pop("simulator_losses")
            d.pop("device_losses")
        return d


def _check_inputs(graph: ir.Graph, res: PlanResult, x: np.ndarray, y: np.ndarray, what: str) -> int:
    if res.plan.loss.kind is not LossKind.XENT:
        raise PlanError(
            f"run_adaptation trains classifiers: plan with loss xent, not {res.plan.loss.kind.value}"
        )
    shape = graph.inputs[0][1]
    if tuple(x.shape[1:]) != tuple(shape) or len(x) != len(y):
        raise PlanError(
            f"{what}: {len(x)} inputs of shape {tuple(x.shape[1:])} and {len(y)} labels; the model wants "
            f"one label per input of shape {tuple(shape)}"
        )
    classes = int(np.prod(graph.shapes[graph.outputs[0]]))
    if len(y) and (y.min() < 0 or y.max() >= classes):
        raise PlanError(f"{what}: labels must lie in [0, {classes}), got [{y.min()}, {y.max()}]")
    return classes


def train_on_device(
    graph: ir.Graph,
    result: PlanResult,
    samples: Sequence[Sample],
    board: str = BOARD,
    workdir: str | Path | None = None,
    progress: bool = False,
    say: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, list[float], int]:
    """Emit and cross-build the link firmware of ``result.plan`` for ``board`` (into ``workdir``, default a
    temporary folder), stream ``samples`` to it in QEMU, pull the trained parameters. Returns (parameters
    in mt_export_params order, the device's losses, instructions of the last training step)."""
    with contextlib.ExitStack() as stack:
        root = (
            Path(workdir) if workdir is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        )
        fb = build_firmware(emit_firmware(graph, result.plan, root / "fw", board, app="link").out_dir)
        if say is not None:
            say(f"firmware for {board}: {fb.summary().splitlines()[0].strip()}")
        with device_link(fb, graph) as link:
            losses = stream_samples(link, samples, progress=progress)
            instr = int(link.device_stats().last_step_instr)
            return link.get_params(), losses, instr


def run_adaptation(
    graph: ir.Graph,
    result: PlanResult,
    stream_x: np.ndarray,
    stream_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    encoding: InputEncoding | None = None,
    device: bool = False,
    board: str = BOARD,
    workdir: str | Path | None = None,
    progress: bool = False,
    say: Callable[[str], None] | None = None,
    yardstick: bool = False,
) -> AdaptResult:
    """Fine-tune ``graph`` with ``result.plan`` on the stream (in the given order) in the simulator and,
    with ``device``, on ``board`` in QEMU through the serial link; accuracy on the test set before and
    after. ``workdir`` keeps the firmware project (default: a temporary folder). ``say`` prints progress.
    ``yardstick`` also trains a float64 simulator: over thousands of steps float32 round-off can grow
    into visibly different parameters, and the float32-vs-float64 difference says how much."""
    t0 = time.perf_counter()
    log = say or (lambda _s: None)
    enc = encoding or InputEncoding()
    plan = result.plan
    classes = _check_inputs(graph, result, stream_x, stream_y, "stream")
    _check_inputs(graph, result, test_x, test_y, "test set")
    if len(stream_y) < plan.batch:
        raise PlanError(
            f"a stream of {len(stream_y)} samples is shorter than the plan's batch ({plan.batch})"
        )
    xs, xt = enc.decode(stream_x), enc.decode(test_x)
    onehot = np.eye(classes, dtype=np.float32)
    before = accuracy(graph, xt, test_y, plan)

    sim = Simulator(graph, plan)
    sim_losses = sim.fit(xs, onehot[stream_y])
    want = np.concatenate([v for _, v in trainable_vectors(graph, plan, sim.numpy_params())])
    sim_acc = accuracy(sim.trained_graph(), xt, test_y, plan)
    log(f"simulator: {len(stream_y)} samples, accuracy {before:.2%} -> {sim_acc:.2%}")
    acc64 = err64 = exact = None
    if yardstick:
        sim64 = Simulator(graph, plan, dtype=torch.float64)
        sim64.fit(xs, onehot[stream_y])
        exact = np.concatenate([v for _, v in trainable_vectors(graph, plan, sim64.numpy_params())])
        acc64 = accuracy(sim64.trained_graph(), xt, test_y, plan)
        err64 = float(np.max(np.abs(want - exact))) if want.size else 0.0
        log(f"float64 simulator: accuracy {acc64:.2%}; float32 parameters differ from it by {err64:.1e}")

    dev_acc = max_abs = rel = instr = dev64 = None
    dev_losses = None
    if device:
        samples = label_samples(stream_x, stream_y, classes, enc)
        got, dev_losses, instr = train_on_device(graph, result, samples, board, workdir, progress, log)
        if got.shape != want.shape:
            raise RuntimeError(f"the device exported {got.size} parameters, the plan trains {want.size}")
        max_abs = float(np.max(np.abs(got - want))) if want.size else 0.0
        rel = rel_diff(got, want)
        if exact is not None:
            dev64 = float(np.max(np.abs(got - exact))) if want.size else 0.0
        dev_acc = accuracy(graph.replace(params=unflatten_params(graph, plan, got)), xt, test_y, plan)
        log(
            f"device: accuracy {before:.2%} -> {dev_acc:.2%}; "
            f"parameters differ from the simulator's by {max_abs:.1e}"
        )
    return AdaptResult(
        strategy=plan.strategy,
        samples=len(stream_y),
        test_samples=len(test_y),
        accuracy_before=before,
        accuracy_after=dev_acc if dev_acc is not None else sim_acc,
        simulator_accuracy=sim_acc,
        device_accuracy=dev_acc,
        budget_bytes=plan.budget_bytes,
        peak_ram_bytes=result.memory.peak_ram_bytes,
        trainable_params=int(want.size),
        device_vs_simulator_max_abs=max_abs,
        device_vs_simulator_rel=rel,
        instructions_per_sample=instr,
        float64_accuracy=acc64,
        float32_vs_float64_max_abs=err64,
        device_vs_float64_max_abs=dev64,
        simulator_losses=sim_losses,
        device_losses=dev_losses,
        seconds=time.perf_counter() - t0,
        simulator_params=want,
    )
