"""Train-time augmentation of decoded samples, driven by the kinds of the columns a task declares."""
