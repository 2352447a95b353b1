"""The local, Docker-free stack: install, start, stop and check PostgreSQL, Kafka, Connect, ES."""
