"""Where samples come from: the synthetic generators and the converters of public data sets."""
