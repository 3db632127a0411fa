"""The HTTP API of the service desk: `create_app()` builds it."""
