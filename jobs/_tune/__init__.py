"""The parts of python -m jobs.tune: Ray Tune trials around Ray Train runs."""
