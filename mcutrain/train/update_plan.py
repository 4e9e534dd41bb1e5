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
from pathlib import Path
from typing import Any

from mcutrain.core import ir


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
    # of this size minus 256 bytes and fails its build if the static stack bound does not fit
    # (docs/firmware.md).
    stack_reserve_bytes: int = 2048
    # Constant multipliers of the learning rate, fixed at plan time (docs/cifar.md, "Learning-rate
    # scales"): (layer, weight scale, bias scale) per trainable layer. Layers not listed use 1.0.
    lr_scales: tuple[tuple[str, float, float], ...] = ()

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise PlanError(f"batch must be >= 1, got {self.batch}")
        for name, *scales in self.lr_scales:
            if not all(s > 0 and math.isfinite(s) for s in scales):
                raise PlanError(f"layer {name}: learning-rate scales must be positive numbers, got {scales}")

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

    # -- JSON ---------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["format"] = "mcutrain-plan/1"
        d.pop("lr_scales")
        if self.lr_scales:  # absent when every scale is 1.0: such plans read as before
            d["lr_scales"] = {name: {"weight": w, "bias": b} for name, w, b in self.lr_scales}
        return json.loads(json.dumps(d, default=lambda o: o.value if isinstance(o, enum.Enum) else o))

    @staticmethod
    def from_dict(d: dict[str, Any]) -> UpdatePlan:
        if d.get("format") != "mcutrain-plan/1":
            raise PlanError("not an mcutrain plan file (missing format 'mcutrain-plan/1')")
        try:
            loss = dict(d["loss"])
            loss["kind"] = LossKind(loss["kind"])
            loss["zone"] = ZoneSpec(**loss["zone"]) if loss.get("zone") else None
            opt = dict(d["optimizer"])
            opt["kind"] = OptimizerKind(opt["kind"])
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
                stack_reserve_bytes=int(d.get("stack_reserve_bytes", 2048)),
                lr_scales=tuple(
                    (name, float(s["weight"]), float(s["bias"])) for name, s in d.get("lr_scales", {}).items()
                ),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise PlanError(f"malformed plan file: {e}") from None

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        d = self.to_dict()
        if extra:
            d.update(extra)
        Path(path).write_text(json.dumps(d, indent=1) + "\n")

    @staticmethod
    def load(path: str | Path) -> UpdatePlan:
        try:
            d = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise PlanError(f"plan file {path} does not exist") from None
        except json.JSONDecodeError as e:
            raise PlanError(f"plan file {path} is not valid JSON: {e}") from None
        return UpdatePlan.from_dict(d)

    def with_layers(self, layers: tuple[LayerUpdate, ...], strategy: str | None = None) -> UpdatePlan:
        return replace(self, layers=layers, strategy=strategy or self.strategy)
