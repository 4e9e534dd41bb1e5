"""Demos and their host-side evaluation."""
