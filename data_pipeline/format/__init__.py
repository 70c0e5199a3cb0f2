"""The data set on disk: Parquet shards, manifest, image encoding, validation, statistics and exports."""
