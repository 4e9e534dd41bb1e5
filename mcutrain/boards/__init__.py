"""Stage 3, boards: target descriptions (``firmware/boards/*/board.toml``), cross builds and their sizes,
QEMU runs, and the static stack bound of a linked firmware. Reads :mod:`mcutrain.core` only."""
