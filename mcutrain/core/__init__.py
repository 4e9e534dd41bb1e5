"""Stage 0, the core every other stage reads: the IR (:mod:`~mcutrain.core.ops` and
:mod:`~mcutrain.core.graph`, both in the :mod:`~mcutrain.core.ir` namespace), the op table (each op kind's
semantics, backward and kernels: :mod:`~mcutrain.core.op_table`, :mod:`~mcutrain.core.kernels`), graph passes,
device weight layouts, the memory units and the resource folders. Imports nothing from the later stages."""
