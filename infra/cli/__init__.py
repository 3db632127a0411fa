"""The itsm command: one module per command group, each registering its own subcommands."""
