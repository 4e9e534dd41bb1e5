"""Data for mcutrain: the synthetic multi-modal indoor scene generator (camera image, dense depth and an
8x8 time-of-flight frame) in :mod:`mcutrain.data.scenes`, its ray caster and its ToF sensor model."""
