"""The projects whose generated files the snapshot test pins (tests/test_snapshot.py): fixed plans (no
scored planning, so that no float tie can change a plan between machines) over every op kind, loss,
optimizer, mini-batch, learning-rate scales, zone loss, an int8 model in mixed precision, and the
self-test, serial-link and PULP projects."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from conftest import MODELS
from graphs import residual, small_cnn, tiny_mlp

from mcutrain import api
from mcutrain.core import ir
from mcutrain.emit.firmware_project import emit_firmware
from mcutrain.emit.model_c import emit
from mcutrain.emit.selftest import SelfTest
from mcutrain.train.optimizers import lr_scales
from mcutrain.train.update_plan import (
    LayerUpdate,
    LossConfig,
    LossKind,
    OptimizerConfig,
    OptimizerKind,
    UpdatePlan,
    ZoneSpec,
)

#: Generated files that the snapshot pins (copied runtime and board sources are not generated).
GENERATED = (
    "mt_model.c", "mt_model.h", "mt_params.c", "mt_params.h", "mt_host_main.c", "Makefile", "main.c",
    "mt_profile.h", "mt_cluster_plan.h", "Makefile.mps2-an386", "Makefile.rv32-qemu",
    "Makefile.gap9-rv32-qemu", "Makefile.gap9", "Makefile.mps3-an547",
)  # fmt: skip


def _plan(g: ir.Graph, layers: list[LayerUpdate], **kw: object) -> UpdatePlan:
    return UpdatePlan(g.name, g.fingerprint(), "snapshot", tuple(layers), **kw)  # type: ignore[arg-type]


def _mixed(g: ir.Graph) -> list[LayerUpdate]:
    """Every other trainable layer: alternately bias-only, half the rows without bias, all rows + bias."""
    out = []
    for i, n in enumerate(g.trainable_nodes()):
        cout = g.shapes[n.name][0]
        out.append(
            [LayerUpdate.bias_only(n.name), LayerUpdate.weights(n.name, max(1, cout // 2), bias=False),
             LayerUpdate.frozen(n.name), LayerUpdate.weights(n.name, cout)][i % 4]
        )  # fmt: skip
    return out


def cases() -> Iterator[tuple[str, Callable[[], tuple[ir.Graph, UpdatePlan]]]]:
    adam = OptimizerConfig(OptimizerKind.ADAM, lr=1e-3, weight_decay=1e-4, schedule="cosine", total_steps=50)
    mom = OptimizerConfig(OptimizerKind.MOMENTUM, lr=0.05)

    def tiny():  # type: ignore[no-untyped-def]
        g = tiny_mlp()
        return g, _plan(g, [LayerUpdate.bias_only("fc1"), LayerUpdate.weights("fc2", 1)], optimizer=mom)

    def cnn():  # type: ignore[no-untyped-def]
        g = small_cnn()
        return g, _plan(
            g, [LayerUpdate.weights(n.name, g.shapes[n.name][0]) for n in g.trainable_nodes()], optimizer=adam
        )

    def res_batch():  # type: ignore[no-untyped-def]
        g = residual()
        return g, _plan(g, _mixed(g), batch=4)

    def handposture():  # type: ignore[no-untyped-def]
        g = api.load(MODELS / "st_handposture_vl53l5cx_cnn2d_float.tflite")
        return g, _plan(g, _mixed(g), optimizer=adam, lr_scales=lr_scales(g, "relative"))

    def resnet8():  # type: ignore[no-untyped-def]
        g = api.load(MODELS / "mlperf_tiny_resnet8_cifar10_float.tflite")
        return g, _plan(g, _mixed(g), optimizer=OptimizerConfig(OptimizerKind.ADAM, lr=1e-5))

    def depth():  # type: ignore[no-untyped-def]
        g = api.load("depth")
        loss = LossConfig(LossKind.BERHU, masked=True, zone=ZoneSpec(8, 16, 4, 4))
        return g, _plan(g, _mixed(g)[-8:], optimizer=adam, loss=loss)

    def unet():  # type: ignore[no-untyped-def]
        g = api.load("tiny_unet")
        return g, _plan(g, _mixed(g), loss=LossConfig(LossKind.L1))

    def mbv2():  # type: ignore[no-untyped-def]
        g = api.load("mbv2_block")
        return g, _plan(g, _mixed(g), loss=LossConfig(LossKind.MSE), optimizer=mom)

    def kws_int8():  # type: ignore[no-untyped-def]
        """An int8 model: frozen int8 prefix, a middle layer and the classifier trained in float32."""
        g = api.load(MODELS / "mlperf_kws_dscnn_int8.tflite")
        mid = g.trainable_nodes()[5].name
        return g, _plan(
            g,
            [LayerUpdate.weights(mid, 16), LayerUpdate.weights("dense", 12)],
            optimizer=mom,
            frozen_precision="int8",
        )

    yield from (("tiny", tiny), ("cnn", cnn), ("res_batch", res_batch), ("handposture", handposture),
                ("resnet8", resnet8), ("depth", depth), ("unet", unet), ("mbv2", mbv2),
                ("kws_int8", kws_int8))  # fmt: skip


def emit_all(name: str, g: ir.Graph, plan: UpdatePlan, out: Path) -> None:
    """The projects of one case: host; self-test on an Arm board, rv32 and the PULP cluster (fp32);
    footprint for GAP9 (the SDK's Makefile) and the cluster's fp16 option; the serial link with
    validation slots and storage, and without."""
    emit(g, plan, out / "host")
    st = SelfTest.random(g, plan, 2) if plan.batch == 1 else None
    emit_firmware(g, plan, out / "selftest", "mps2-an386", st)
    if st is not None:
        emit_firmware(g, plan, out / "rv32", "rv32-qemu", st)
    emit_firmware(g, plan, out / "link", "mps2-an386", app="link", val_slots=2, storage="semihost")
    if name in ("tiny", "cnn", "handposture", "kws_int8"):
        emit_firmware(g, plan, out / "link_m55", "mps3-an547", app="link")
        emit_firmware(g, plan, out / "gap9", "gap9-rv32-qemu", st)
        emit_firmware(g, plan, out / "gap9_sdk", "gap9")
        emit_firmware(g, plan, out / "gap9_fp16", "gap9-rv32-qemu", precision="fp16")


def digests(root: Path) -> dict[str, str]:
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.name in GENERATED and "bsp" not in p.parts and "runtime" not in p.parts
    }
