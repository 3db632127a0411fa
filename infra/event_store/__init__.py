"""The event store adapter: transcoding, numbering, publishing stored events."""
