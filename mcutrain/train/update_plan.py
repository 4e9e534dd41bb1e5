"""Update plans: what to train, with which loss and optimizer. Plain frozen data with JSON I/O.

An :class:`UpdatePlan` names, for every trainable layer, what its fine-tuning updates:

* ``frozen``: nothing (weights and bias stay in flash);
* ``bias``: only the bias;
* ``weight``: the weight rows of the first ``channels`` output channels (rows ``[0, channels)``), and the
  bias too when ``bias`` is true. Updated rows live in RAM, the other rows stay in flash.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mcutrain.core import ir
from mcutrain.core.int8_scratch import S8_COL_BYTES, col_bytes_problem

#: RAM a plan reserves by default for the call stack and the board runtime's static data (UART and counter
#: state, picolibc's stdio and TLS, the harness). The one place this number is decided; ``mcutrain plan
#: --stack-reserve`` overrides it per plan, and the firmware's build checks that the stack fits.
STACK_RESERVE_BYTES = 2048
#: Of the reserve, bytes the firmware keeps for the board runtime's static data (measured: 72 B on the Arm
#: boards); it links a stack of the rest (:attr:`UpdatePlan.stack_region_bytes`).
RUNTIME_DATA_BYTES = 256
#: The smallest stack the firmware links.
MIN_STACK_BYTES = 512
#: Validation slots the link service can track (a bit each in its state).
MAX_VAL_SLOTS = 32
#: Where the link firmware can persist its checkpoints: a semihosting file standing in for flash (QEMU).
STORAGES = ("semihost",)


class PlanError(ValueError):
    """A plan that does not fit its model or its budget, with a message meant for the user."""


class Update(str, enum.Enum):
    FROZEN = "frozen"
    BIAS = "bias"
    WEIGHT = "weight"


@dataclass(frozen=True)
class LayerUpdate:
    name: str
    update: Update = Update.FROZEN
    channels: int = 0  # output channels whose weight rows are updated (rows [0, channels))
    bias: bool = False

    def __post_init__(self) -> None:
        if self.update is Update.FROZEN and (self.channels or self.bias):
            raise PlanError(f"layer {self.name}: a frozen layer updates no channels and no bias")
        if self.update is Update.BIAS and (self.channels or not self.bias):
            raise PlanError(f"layer {self.name}: a bias-only update has bias=True and channels=0")
        if self.update is Update.WEIGHT and self.channels <= 0:
            raise PlanError(f"layer {self.name}: a weight update needs channels >= 1")

    @property
    def trains(self) -> bool:
        return self.update is not Update.FROZEN

    @staticmethod
    def frozen(name: str) -> LayerUpdate:
        return LayerUpdate(name)

    @staticmethod
    def bias_only(name: str) -> LayerUpdate:
        return LayerUpdate(name, Update.BIAS, 0, True)

    @staticmethod
    def weights(name: str, channels: int, bias: bool = True) -> LayerUpdate:
        return LayerUpdate(name, Update.WEIGHT, channels, bias)

    def describe(self, out_channels: int) -> str:
        if self.update is Update.FROZEN:
            return "frozen"
        if self.update is Update.BIAS:
            return "bias"
        frac = "all" if self.channels == out_channels else f"{self.channels}/{out_channels}"
        return f"weight {frac}" + (" + bias" if self.bias else "")


class OptimizerKind(str, enum.Enum):
    SGD = "sgd"
    MOMENTUM = "momentum"
    ADAM = "adam"

    @property
    def state_per_param(self) -> int:
        """Floats of optimizer state kept per trainable parameter."""
        return {OptimizerKind.SGD: 0, OptimizerKind.MOMENTUM: 1, OptimizerKind.ADAM: 2}[self]


@dataclass(frozen=True)
class OptimizerConfig:
    kind: OptimizerKind = OptimizerKind.SGD
    lr: float = 0.01
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    schedule: str = "constant"  # or "cosine" over total_steps
    total_steps: int = 1000

    def __post_init__(self) -> None:
        if self.schedule not in ("constant", "cosine"):
            raise PlanError(f"unknown learning-rate schedule {self.schedule!r}: use constant or cosine")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise PlanError(f"learning rate must be a positive number, got {self.lr}")

    def lr_at(self, step: int) -> float:
        """Learning rate of 0-based ``step`` (the C code computes the same in float32)."""
        if self.schedule == "constant":
            return self.lr
        t = min(step, self.total_steps)
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * t / self.total_steps))


class LossKind(str, enum.Enum):
    XENT = "xent"  # softmax cross-entropy against a probability vector (one-hot labels)
    MSE = "mse"
    L1 = "l1"
    BERHU = "berhu"


@dataclass(frozen=True)
class ZoneSpec:
    """Average-pool a dense ``(1, H, W)`` prediction over a ``rows x cols`` grid of ``zone_h x zone_w``
    rectangles whose top-left corner is ``(top, left)``: the footprint of an 8x8 ToF sensor."""

    top: int
    left: int
    zone_h: int
    zone_w: int
    rows: int = 8
    cols: int = 8

    def check(self, shape: ir.Shape) -> None:
        if len(shape) != 3 or shape[0] != 1:
            raise PlanError(f"a zone loss needs a (1, H, W) prediction, the model outputs {shape}")
        _, h, w = shape
        if (
            self.top < 0
            or self.left < 0
            or self.top + self.rows * self.zone_h > h
            or (self.left + self.cols * self.zone_w > w)
        ):
            raise PlanError(f"zone footprint {self} does not fit inside the {h}x{w} prediction")


@dataclass(frozen=True)
class LossConfig:
    kind: LossKind = LossKind.XENT
    masked: bool = False  # a per-element validity mask accompanies each target
    zone: ZoneSpec | None = None

    def target_numel(self, out_shape: ir.Shape) -> int:
        if self.zone is not None:
            return self.zone.rows * self.zone.cols
        return math.prod(out_shape)


#: The replay reservoir's default xorshift32 seed (mcutrain.demos.replay.ReplayConfig's too).
REPLAY_SEED = 0x2545F491
#: LinkApp's fields of the reservoir, absent from plan files without one.
REPLAY_FIELDS = ("replay_slots", "replay_steps", "replay_new", "replay_seed")


@dataclass(frozen=True)
class LinkApp:
    """The serial-link firmware the plan is for (``mcutrain plan --app link``): its RAM (frame buffer,
    model output, link state, validation slots, training-state snapshot) is part of the plan's peak, so
    that the budget covers the whole firmware (:mod:`mcutrain.train.app_memory`)."""

    val_slots: int = 0  # validation samples kept on the device (EVAL, CHECKPOINT accept-if-better)
    snapshot: bool = False  # a copy of the training state for CHECKPOINT / ROLLBACK
    storage: str | None = None  # persistence of checkpoints (STORAGES)
    # a replay reservoir of streamed samples, stored as they arrive (mcutrain.demos.replay; docs/depth.md):
    # its slots, and the schedule the firmware runs per SAMPLE with REPLAY (compiled in, reported in INFO)
    replay_slots: int = 0
    replay_steps: int = 1  # replayed training steps per incoming sample
    replay_new: bool = True  # also one step on the incoming sample, before the replayed ones
    replay_seed: int = REPLAY_SEED  # xorshift32 state at boot and after RESET, non-zero uint32
    # INFER BLEND answers A * prediction + (1 - A) * the running mean of each target element over the
    # streamed samples' valid targets (docs/depth.md, "The blend on the device"); None: no running mean
    blend: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.val_slots <= MAX_VAL_SLOTS:
            raise PlanError(f"val_slots must be 0..{MAX_VAL_SLOTS}, got {self.val_slots}")
        if self.replay_slots < 0:
            raise PlanError(f"replay_slots must be >= 0, got {self.replay_slots}")
        if self.replay_steps < 0 or not 0 < self.replay_seed <= 0xFFFFFFFF:
            raise PlanError(f"replay: need replay_steps >= 0 and a non-zero uint32 seed, got {self}")
        if not self.replay_new and self.replay_steps == 0:
            raise PlanError("replay: with replay_new=False at least one replayed step per sample is needed")
        if self.storage is not None and self.storage not in STORAGES:
            raise PlanError(f"unknown storage {self.storage!r}: one of {', '.join(STORAGES)} (or None)")
        if self.storage is not None and not self.snapshot:
            raise PlanError("persistence writes the snapshot: storage needs snapshot=True")
        if self.blend is not None and not 0.0 <= self.blend <= 1.0:
            raise PlanError(f"blend: the network's weight A must be in [0, 1], got {self.blend}")

    @staticmethod
    def make(
        val_slots: int = 0,
        snapshot: bool | None = None,
        storage: str | None = None,
        replay_slots: int = 0,
        replay_steps: int = 1,
        replay_new: bool = True,
        replay_seed: int = REPLAY_SEED,
        blend: float | None = None,
    ) -> LinkApp:
        """With ``snapshot=None``: a snapshot when there are validation slots or storage."""
        snap = bool(val_slots or storage) if snapshot is None else snapshot
        return LinkApp(val_slots, snap, storage, replay_slots, replay_steps, replay_new, replay_seed, blend)


@dataclass(frozen=True)
class UpdatePlan:
    model_name: str
    model_hash: str
    strategy: str
    layers: tuple[LayerUpdate, ...]
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    batch: int = 1  # samples whose gradients are accumulated before each update
    budget_bytes: int | None = None
    # RAM reserved for the call stack and the board runtime's static data. The firmware links a stack
    # of this size minus RUNTIME_DATA_BYTES and fails its build if the static stack bound does not fit
    # (docs/firmware.md).
    stack_reserve_bytes: int = STACK_RESERVE_BYTES
    # Constant multipliers of the learning rate, fixed at plan time (docs/cifar.md, "Learning-rate
    # scales"): (layer, weight scale, bias scale) per trainable layer. Layers not listed use 1.0.
    lr_scales: tuple[tuple[str, float, float], ...] = ()
    app: LinkApp | None = None  # the serial-link firmware whose RAM the plan counts (None: the step alone)
    # Frozen layers of a quantized model run int8 ("int8") or in float32 ("fp32"); updated layers always
    # run float32 (mcutrain.train.precision).
    frozen_precision: str = "fp32"
    # int8 conv2d forwards get working memory for the Cortex-M DSP kernels (docs/quantization.md, "Cortex-M
    # DSP kernels"); False: none, and the portable reference kernels run (less RAM, about 30x slower).
    int8_scratch: bool = True
    # the DSP conv2d's column-tile budget (MT_S8_COL_BYTES of the build): more bytes of scratch, longer runs
    # of positions per pass over a channel, fewer instructions (docs/quantization.md, "The column budget")
    int8_col_bytes: int = S8_COL_BYTES

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise PlanError(f"batch must be >= 1, got {self.batch}")
        if self.stack_reserve_bytes < RUNTIME_DATA_BYTES + MIN_STACK_BYTES:
            least = RUNTIME_DATA_BYTES + MIN_STACK_BYTES
            raise PlanError(
                f"a stack reserve of {self.stack_reserve_bytes} B is too small: the firmware needs at least "
                f"{least} B ({RUNTIME_DATA_BYTES} B of it for the runtime's data)"
            )
        if problem := col_bytes_problem(self.int8_col_bytes):
            raise PlanError(problem)
        for name, *scales in self.lr_scales:
            if not all(s > 0 and math.isfinite(s) for s in scales):
                raise PlanError(f"layer {name}: learning-rate scales must be positive numbers, got {scales}")

    @property
    def stack_region_bytes(self) -> int:
        """The stack the firmware links: the reserve minus the runtime's static data, 8-aligned."""
        return (self.stack_reserve_bytes - RUNTIME_DATA_BYTES) // 8 * 8

    def lr_scale(self, layer: str, param: str) -> float:
        """The learning-rate multiplier of ``layer``'s ``param`` (``weight`` or ``bias``)."""
        for name, w, b in self.lr_scales:
            if name == layer:
                return w if param == "weight" else b
        return 1.0

    def layer(self, name: str) -> LayerUpdate:
        for lu in self.layers:
            if lu.name == name:
                return lu
        return LayerUpdate.frozen(name)

    @property
    def trained(self) -> list[LayerUpdate]:
        return [lu for lu in self.layers if lu.trains]

    def validate(self, graph: ir.Graph) -> None:
        """Check that the plan belongs to ``graph`` and names its layers correctly."""
        if self.model_hash != graph.fingerprint():
            raise PlanError(
                f"plan was made for model {self.model_name} ({self.model_hash[:12]}), not for "
                f"{graph.name} ({graph.fingerprint()[:12]}): re-run `mcutrain plan` for this model"
            )
        trainable = {n.name: n for n in graph.trainable_nodes()}
        for lu in self.layers:
            if lu.name not in trainable:
                raise PlanError(f"plan names layer {lu.name!r}, which is not a trainable layer of the model")
            cout = graph.shapes[lu.name][0]
            if lu.channels > cout:
                raise PlanError(f"layer {lu.name}: {lu.channels} channels planned but it has only {cout}")
        if self.loss.zone is not None:
            self.loss.zone.check(graph.shapes[graph.outputs[0]])
        if self.app is not None and self.app.blend is not None and self.loss.kind is LossKind.XENT:
            raise PlanError("blend: a running mean of the targets needs a regression loss: drop --blend")

    # -- JSON ---------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (the plan file, :mod:`mcutrain.train.plan_file`, adds the model and memory)."""
        d = asdict(self)
        d.pop("lr_scales")
        if self.lr_scales:  # absent when every scale is 1.0
            d["lr_scales"] = {name: {"weight": w, "bias": b} for name, w, b in self.lr_scales}
        if self.app is None:
            d.pop("app")
        elif not self.app.replay_slots:  # absent without a reservoir (plan files stay as they were)
            for k in REPLAY_FIELDS:
                d["app"].pop(k)
        if self.app is not None and self.app.blend is None:  # absent without a running mean
            d["app"].pop("blend")
        if self.int8_scratch:  # absent when the default
            d.pop("int8_scratch")
        if self.int8_col_bytes == S8_COL_BYTES:  # absent when the default
            d.pop("int8_col_bytes")
        return json.loads(json.dumps(d, default=lambda o: o.value if isinstance(o, enum.Enum) else o))

    @staticmethod
    def from_dict(d: dict[str, Any]) -> UpdatePlan:
        """The plan of :meth:`to_dict`'s data; raises :class:`PlanError` naming what is malformed."""
        try:
            loss = dict(d["loss"])
            loss["kind"] = LossKind(loss["kind"])
            loss["zone"] = ZoneSpec(**loss["zone"]) if loss.get("zone") else None
            opt = dict(d["optimizer"])
            opt["kind"] = OptimizerKind(opt["kind"])
            app = d.get("app")
            return UpdatePlan(
                model_name=d["model_name"],
                model_hash=d["model_hash"],
                strategy=d["strategy"],
                layers=tuple(
                    LayerUpdate(lu["name"], Update(lu["update"]), int(lu["channels"]), bool(lu["bias"]))
                    for lu in d["layers"]
                ),
                optimizer=OptimizerConfig(**opt),
                loss=LossConfig(**loss),
                batch=int(d.get("batch", 1)),
                budget_bytes=d.get("budget_bytes"),
                stack_reserve_bytes=int(d.get("stack_reserve_bytes", STACK_RESERVE_BYTES)),
                lr_scales=tuple(
                    (name, float(s["weight"]), float(s["bias"])) for name, s in d.get("lr_scales", {}).items()
                ),
                app=LinkApp(
                    int(app["val_slots"]),
                    bool(app["snapshot"]),
                    app.get("storage"),
                    **{k: type(getattr(LinkApp, k))(app[k]) for k in REPLAY_FIELDS if k in app},  # as typed
                    blend=None if app.get("blend") is None else float(app["blend"]),
                )
                if app
                else None,
                frozen_precision=str(d.get("frozen_precision", "fp32")),
                int8_scratch=bool(d.get("int8_scratch", True)),
                int8_col_bytes=int(d.get("int8_col_bytes", S8_COL_BYTES)),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise PlanError(f"malformed plan: {type(e).__name__} {e}") from None

    def with_layers(self, layers: tuple[LayerUpdate, ...], strategy: str | None = None) -> UpdatePlan:
        return replace(self, layers=layers, strategy=strategy or self.strategy)
