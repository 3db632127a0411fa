"""Read models fed by events: the same code whether events come from Kafka or in-process."""
