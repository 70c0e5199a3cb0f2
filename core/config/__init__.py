"""The experiment's typed configuration: its schema, loading YAML with dotted overrides, and sweep files."""
