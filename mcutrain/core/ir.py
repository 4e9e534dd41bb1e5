"""The mcutrain IR in one namespace: the op kinds (:mod:`mcutrain.core.ops`) and the graph
(:mod:`mcutrain.core.graph`). Stages write ``from mcutrain.core import ir`` and ``ir.Conv2d``, ``ir.Graph``.
"""

from mcutrain.core.graph import Graph, GraphBuilder, Node
from mcutrain.core.ops import *  # noqa: F403
from mcutrain.core.ops import OP_TYPES, TRAINABLE_OPS, IRError, Op, Pad4, Pair, Shape

__all__ = [
    "OP_TYPES",
    "TRAINABLE_OPS",
    "Graph",
    "GraphBuilder",
    "IRError",
    "Node",
    "Op",
    "Pad4",
    "Pair",
    "Shape",
]
