"""Metrics that add up across workers, with the trivial baselines a result is read against."""
