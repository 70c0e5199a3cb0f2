"""Pixel-aligned implicit surfaces (PIFu): its config section (config.py, light), the body's analytic field
(body_field.py, NumPy, shared with the data source) and the task itself (task.py)."""
