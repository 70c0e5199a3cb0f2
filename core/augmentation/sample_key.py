"""The name of the integer per sample that augmentation seeds its draws by (core.augmentation.augment).

The reader makes it from each sample's id while decoding (data_pipeline.readers.ray_data). It lives in a
module of its own, free of torch, because every process that decodes imports the reader: Ray Data's
split coordinator and each read task's worker, and importing torch there cost 1.6 s on the way to
the first batch.
"""

SAMPLE_KEY = "sample_key"
