"""The parts of python -m jobs.train: the experiment, its Ray Train trainer and worker, storage, logging, signals."""
