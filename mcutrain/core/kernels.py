"""The C kernel runtime's interface as data: every kernel's prototype (as ``firmware/runtime/include/
mt_kernels.h`` declares it) and every dims struct's fields.

:mod:`mcutrain.core.op_table` says which kernel each op kind calls in each pass; the step kernels that
belong to no op (losses, zone pooling, optimizers, copies) are here. The code generator binds a kernel's
parameters by name (:mod:`mcutrain.emit.calls`), the PULP lowering reads :attr:`Kernel.cluster`, and the
kernel tests derive their ctypes prototypes from :func:`all_kernels`; a test compiles every prototype
against the header, so this table cannot drift from the C.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

Shape = tuple[int, ...]

#: How a kernel runs on the PULP cluster (docs/gap9.md): not at all (the fabric controller runs it), its
#: elements split among the cores in L2, or in L1 tiles of whole channels.
CLUSTER_NONE, CLUSTER_ELEMENTWISE, CLUSTER_TILED = "", "elementwise", "tiled"

_PROTO = re.compile(r"^\s*(?P<ret>[\w ]+?)\s+(?P<name>mt_\w+)\s*\((?P<params>[^)]*)\)\s*;?\s*$", re.S)
_PARAM = re.compile(r"^(?P<ctype>.*?[\s*])(?P<name>\w+)$")


@dataclass(frozen=True)
class Param:
    ctype: str  # e.g. "const float *", "int32_t", "const mt_conv2d_dims_t *"
    name: str

    @property
    def is_pointer(self) -> bool:
        return self.ctype.endswith("*")


@dataclass(frozen=True)
class Kernel:
    """One C function of the runtime."""

    name: str
    params: tuple[Param, ...]
    returns: str = "void"
    cluster: str = CLUSTER_NONE

    @staticmethod
    def parse(prototype: str, cluster: str = CLUSTER_NONE) -> Kernel:
        """``"void mt_add_fw_f32(int32_t n, const float *a, const float *b, float *y)"`` -> Kernel."""
        m = _PROTO.match(prototype)
        if m is None:
            raise ValueError(f"not a C prototype: {prototype!r}")
        params = []
        for text in (p.strip() for p in m["params"].split(",")):
            pm = _PARAM.match(" ".join(text.split()))
            if pm is None:
                raise ValueError(f"cannot read parameter {text!r} of {m['name']}")
            params.append(
                Param(" ".join(pm["ctype"].replace("*", " *").split()).replace("* ", "*"), pm["name"])
            )
        return Kernel(m["name"], tuple(params), " ".join(m["ret"].split()), cluster)

    def prototype(self) -> str:
        args = ", ".join(f"{p.ctype}{'' if p.is_pointer else ' '}{p.name}" for p in self.params)
        return f"{self.returns} {self.name}({args});"

    def index(self, param: str) -> int:
        for i, p in enumerate(self.params):
            if p.name == param:
                return i
        raise KeyError(f"{self.name} has no parameter {param!r}")

    @property
    def stem(self) -> str:
        """The name without ``mt_`` and the dtype suffix (``_f32``, ``_s8``), e.g. ``conv2d_fw``."""
        return self.name.removeprefix("mt_").removesuffix("_f32").removesuffix("_s8")


@dataclass(frozen=True)
class DimsStruct:
    """A ``const mt_<op>_dims_t`` of the runtime: its C type, its fields (all ``int32_t``, in declaration
    order) and how an op's attributes and shapes fill them."""

    ctype: str
    fields: tuple[str, ...]
    values: Callable[..., tuple[int, ...]]  # (op, input shapes, output shape) -> one int per field

    def of(self, op: object, ins: list[Shape], out: Shape) -> dict[str, int]:
        vals = self.values(op, ins, out)
        if len(vals) != len(self.fields):
            raise AssertionError(f"{self.ctype}: {len(vals)} values for {len(self.fields)} fields")
        return {f: int(v) for f, v in zip(self.fields, vals, strict=True)}


def k(prototype: str, cluster: str = CLUSTER_NONE) -> Kernel:
    return Kernel.parse(prototype, cluster)


_E = CLUSTER_ELEMENTWISE

#: The dims struct of the zone pooling of a dense prediction (ToF zones); filled from the plan's ZoneSpec.
ZONE_DIMS = DimsStruct(
    "mt_zone_dims_t", ("h", "w", "top", "left", "zone_h", "zone_w", "rows", "cols"), lambda *a: ()
)

#: Kernels of the training step that belong to no op kind: data movement, losses, zone pooling, optimizers.
STEP_KERNELS: dict[str, Kernel] = {
    kern.stem: kern
    for kern in (
        k("void mt_copy_f32(int32_t n, const float *src, float *dst)", _E),
        k("void mt_accumulate_f32(int32_t n, const float *src, float *dst, int32_t accumulate)", _E),
        k("void mt_scale_f32(int32_t n, float *x, float s)", _E),
        k(
            "float mt_loss_softmax_xent_f32(int32_t n, const float *logits, const float *target_prob, "
            "float *glogits)"
        ),
        k(
            "float mt_loss_mse_f32(int32_t n, const float *pred, const float *target, "
            "const float *mask, float *gpred)"
        ),
        k(
            "float mt_loss_l1_f32(int32_t n, const float *pred, const float *target, "
            "const float *mask, float *gpred)"
        ),
        k(
            "float mt_loss_berhu_f32(int32_t n, const float *pred, const float *target, "
            "const float *mask, float *gpred)"
        ),
        k("void mt_zone_pool_fw_f32(const mt_zone_dims_t *d, const float *pred, float *zones)"),
        k(
            "void mt_zone_pool_bw_f32(const mt_zone_dims_t *d, const float *gzones, float *gpred, "
            "int32_t accumulate)"
        ),
        k("void mt_quantize_fw_s8(const mt_quantize_q8_t *q, int32_t n, const float *x, int8_t *y)"),
        k("void mt_dequantize_fw_s8(const mt_quantize_q8_t *q, int32_t n, const int8_t *x, float *y)"),
        k("void mt_sgd_f32(int32_t n, float *w, const float *g, float lr, float wd)", _E),
        k(
            "void mt_sgd_momentum_f32(int32_t n, float *w, const float *g, float *m, float lr, "
            "float momentum, "
            "float wd)",
            _E,
        ),
        k(
            "void mt_adam_f32(int32_t n, float *w, const float *g, float *m, float *v, float lr, "
            "float beta1, "
            "float beta2, float eps, float wd, int32_t step)",
            _E,
        ),
    )
}


def step_kernel(stem: str) -> Kernel:
    """A kernel of :data:`STEP_KERNELS` by stem, e.g. ``loss_mse`` or ``adam``."""
    try:
        return STEP_KERNELS[stem]
    except KeyError:
        raise KeyError(f"no step kernel {stem!r}; known: {', '.join(STEP_KERNELS)}") from None


def scratch_query(kern: Kernel) -> Kernel:
    """The ``size_t mt_<op>_<pass>[_s8]_scratch_bytes(const dims *d)`` function of a MAC kernel (the
    float kernels' queries carry no dtype suffix)."""
    name = kern.name if kern.name.endswith("_s8") else f"mt_{kern.stem}"
    return Kernel(f"{name}_scratch_bytes", (kern.params[0],), "size_t")


def unique(kernels: Iterator[Kernel]) -> dict[str, Kernel]:
    out: dict[str, Kernel] = {}
    for kern in kernels:
        if kern.name in out and out[kern.name] != kern:
            raise AssertionError(f"{kern.name} is declared twice with different prototypes")
        out[kern.name] = kern
    return out
