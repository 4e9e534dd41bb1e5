"""Stage 2, training: the update plan and its file (:mod:`~mcutrain.train.update_plan`), the training graph
(:mod:`~mcutrain.train.derive`), its schedule and exact memory (:mod:`~mcutrain.train.schedule`,
:mod:`~mcutrain.train.memory`), the planner and its scores, and the PyTorch simulator of the same step with
its losses and optimizers. Reads :mod:`mcutrain.core`; knows nothing of C, boards or links."""
