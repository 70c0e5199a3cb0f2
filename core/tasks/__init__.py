"""Tasks as plug-ins: one module each, registered in core.tasks.catalog, which builds them by name."""
