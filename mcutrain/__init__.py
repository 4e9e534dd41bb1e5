"""mcutrain: plan, compile and run neural-network fine-tuning on microcontrollers."""

__version__ = "0.1.0"
