"""Mesh reconstruction: its config section (config.py, light) and the task itself (task.py)."""
