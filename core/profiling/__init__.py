"""Measured costs: time to the first step, memory, communication, model size, the profile ledger and its tables."""
