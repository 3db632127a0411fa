"""The one write path every practice and entry point uses.

Load, run a command, save through group commit."""
