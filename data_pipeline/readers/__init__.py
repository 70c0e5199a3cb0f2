"""How a split reaches a worker: through Ray Data, or read in one process without Ray."""
