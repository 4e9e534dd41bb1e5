"""Stage 0, the core every other stage reads: the IR (:mod:`~mcutrain.core.ops`, :mod:`~mcutrain.core.graph`,
both in the :mod:`~mcutrain.core.ir` namespace), the op semantics in PyTorch (:mod:`~mcutrain.core.semantics`),
graph passes, device weight layouts and the memory units. Imports nothing from the later stages."""
