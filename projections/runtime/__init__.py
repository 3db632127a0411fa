"""What feeds a read model: the runner, positions, quarantine, the envelope and the transaction protocol."""
