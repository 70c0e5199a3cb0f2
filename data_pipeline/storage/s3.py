"""s3fs that rides out an S3 endpoint that stops answering, with waits that add up to a known time.

s3fs retries a request with growing waits (0.1 s x 1.7^i, at most 15 s each) on the errors it
knows as transient; a refused or unreachable endpoint is not among them by default, so it is added
here, at import. Instances are this subclass so that a process that unpickles one (a Ray worker
uploading a checkpoint) imports this module, and with it the same rule.
"""
from __future__ import annotations

import s3fs
from botocore.exceptions import ConnectionError as EndpointDown

s3fs.add_retryable_error(EndpointDown)
_MAX_WAIT_S = 15.0  # s3fs's cap on one wait between tries


class RetryingS3FileSystem(s3fs.S3FileSystem):
    """An S3FileSystem that retries for about `retry_s` seconds; botocore's own retries (random waits) are off."""

    cachable = False  # fsspec would hand one instance (and its event loop) to every caller with these arguments

    def __init__(self, endpoint_url: str | None, retry_s: float, **kwargs):
        super().__init__(
            client_kwargs={"endpoint_url": endpoint_url} if endpoint_url else {},
            config_kwargs={"retries": {"total_max_attempts": 1}, "connect_timeout": 10, "read_timeout": 60},
            **kwargs)
        self.retries = tries_within(retry_s)  # s3fs reads this attribute; its constructor takes no such argument


def tries_within(seconds: float) -> int:
    """How many tries s3fs makes so that its waits between them add up to at least `seconds`."""
    tries, waited = 1, 0.0
    while waited < seconds:
        waited += min(1.7 ** (tries - 1) * 0.1, _MAX_WAIT_S)
        tries += 1
    return tries
