"""Where a data set lives: a local folder or S3, behind one fsspec filesystem."""
