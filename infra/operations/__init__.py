"""Running the service: readiness, pipeline metrics, read-model rebuilds."""
