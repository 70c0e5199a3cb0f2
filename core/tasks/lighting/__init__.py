"""Volumetric lighting estimation (Lighthouse): its config section (config.py, light), the frames (geometry.py),
the volume renderer (rendering.py, PyTorch3D) and the task itself (task.py)."""
