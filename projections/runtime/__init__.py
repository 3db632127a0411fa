"""What feeds a read model.

The runner, positions, quarantine, the envelope and the transaction protocol."""
