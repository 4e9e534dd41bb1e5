"""Data for mcutrain: dataset generators and readers, e.g. the synthetic multi-modal indoor scenes
(camera image, dense depth, 8x8 time-of-flight frame) of :mod:`mcutrain.data.scenes`."""
