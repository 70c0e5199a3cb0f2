"""The parts of python -m jobs.profile: timed Ray Train runs per combination and the batch-size search."""
