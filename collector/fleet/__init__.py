"""A fleet of stations on one dataset (docs/fleet.md): the catalogue on a PostgreSQL server (migrate.py) and
episodes published to shared storage (storage.py, upload_queue.py, publisher.py)."""
