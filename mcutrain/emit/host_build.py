"""Host build of a generated project and its ctypes binding (tests, simulator comparisons)."""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import numpy as np

from mcutrain.core import ir
from mcutrain.train.trainable import trainable_bytes, unflatten_params
from mcutrain.train.update_plan import PlanError, UpdatePlan


class BuildError(RuntimeError):
    pass


def build_host(project: str | Path, target: str = "libmt.so") -> Path:
    project = Path(project)
    r = subprocess.run(
        ["make", "-s", "-C", str(project), target], capture_output=True, text=True, timeout=600
    )
    if r.returncode != 0:
        raise BuildError(f"host build of {project} failed:\n{r.stdout}{r.stderr}")
    return project / target


class _Stats(ctypes.Structure):
    _fields_ = [("loss", ctypes.c_float), ("step", ctypes.c_uint32), ("lr", ctypes.c_float)]


_F = ctypes.POINTER(ctypes.c_float)


def _ptr(a: np.ndarray | None):
    return None if a is None else a.ctypes.data_as(_F)


class HostModel:
    """The generated training step, loaded from its shared library."""

    def __init__(self, lib: str | Path, graph: ir.Graph, plan: UpdatePlan) -> None:
        self.lib = ctypes.CDLL(str(lib))
        self.graph, self.plan = graph, plan
        L = self.lib
        L.mt_train_step.argtypes = [_F, _F, _F, ctypes.POINTER(_Stats)]
        L.mt_train_step.restype = ctypes.c_int
        L.mt_eval.argtypes = [_F, _F, _F]
        L.mt_eval.restype = ctypes.c_float
        L.mt_infer.argtypes = [_F, _F]
        L.mt_export_params.argtypes = [_F, ctypes.c_size_t]
        L.mt_export_params.restype = ctypes.c_size_t
        L.mt_import_params.argtypes = [_F, ctypes.c_size_t]
        L.mt_import_params.restype = ctypes.c_int
        self.n_in = int(np.prod(graph.inputs[0][1]))
        self.n_out = int(np.prod(graph.shapes[graph.outputs[0]]))
        # trainable floats, in the order of mt_export_params: what the memory model counts as trainable
        self.n_params = sum(t for t, _ in trainable_bytes(graph, plan).values()) // 4
        L.mt_init()

    def train_step(
        self, x: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None
    ) -> tuple[int, float]:
        xs = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
        ts = np.ascontiguousarray(target, dtype=np.float32).reshape(-1)
        ms = None if mask is None else np.ascontiguousarray(mask, dtype=np.float32).reshape(-1)
        if xs.size != self.n_in:
            raise PlanError(f"sample has {xs.size} values, the model takes {self.n_in}")
        st = _Stats()
        rc = self.lib.mt_train_step(_ptr(xs), _ptr(ts), _ptr(ms), ctypes.byref(st))
        return rc, float(st.loss)

    def eval(self, x: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
        xs = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
        ts = np.ascontiguousarray(target, dtype=np.float32).reshape(-1)
        ms = None if mask is None else np.ascontiguousarray(mask, dtype=np.float32).reshape(-1)
        return float(self.lib.mt_eval(_ptr(xs), _ptr(ts), _ptr(ms)))

    def infer(self, x: np.ndarray) -> np.ndarray:
        xs = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
        y = np.zeros(self.n_out, dtype=np.float32)
        self.lib.mt_infer(_ptr(xs), _ptr(y))
        return y

    def export_flat(self) -> np.ndarray:
        buf = np.zeros(self.n_params, dtype=np.float32)
        n = self.lib.mt_export_params(_ptr(buf), buf.size)
        if n != self.n_params:
            raise BuildError(f"mt_export_params returned {n}, expected {self.n_params}")
        return buf

    def params(self) -> dict[str, np.ndarray]:
        """All model parameters (PyTorch layouts) with the device's trainable values filled in."""
        return unflatten_params(self.graph, self.plan, self.export_flat())
