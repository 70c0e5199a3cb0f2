"""A run's own records: its directory, environment and summary."""
