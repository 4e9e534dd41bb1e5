"""Stage 4, C generation: the training step as C (:mod:`~mcutrain.emit.model_c`, from typed kernel calls
rendered last), the host build and its ctypes binding, the PULP cluster lowering, and firmware projects
(self-test and serial-link apps) with their builds and QEMU runs. Reads core, train and boards."""
