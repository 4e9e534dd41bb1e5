"""The end-to-end demos behind ``mcutrain demo`` (depth with ToF pseudo-labels, hand postures, shifted
CIFAR-10) and the adaptation runner they share. Reads every stage; nothing reads it but the CLI."""
