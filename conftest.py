"""Real servers for the suite: a Kafka broker and a PostgreSQL server, started on demand."""

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.postgres"]
