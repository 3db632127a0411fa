"""The one write path every practice and entry point uses: load, run a command, save through group commit."""
