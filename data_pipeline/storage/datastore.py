"""Where a data set lives: a local folder or s3://bucket/prefix, behind one fsspec filesystem.

S3 goes through s3fs, which takes credentials the way the AWS tools do (environment variables,
~/.aws files, instance roles); none ever passes through a config or this object, so nothing that
pickles or logs a store can leak them. `endpoint_url` points at MinIO or another S3-compatible
store. Local writes go to a temporary name and are renamed; an S3 object appears whole when its
upload completes, so neither ever shows a half-written file under its final name.

An S3 store rides out an endpoint that stops answering for about `retry_s` seconds (data_pipeline.storage.s3).
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import fsspec
import pyarrow.fs

S3 = "s3://"


@dataclass(frozen=True)
class DataStore:
    uri: str  # absolute local path, or s3://bucket/prefix
    endpoint_url: str | None = None
    retry_s: float = 30.0

    @classmethod
    def at(cls, location: str | Path, endpoint_url: str | None = None, retry_s: float = 30.0) -> "DataStore":
        """Relative local paths become absolute: workers may run in another folder, or on another machine."""
        text = str(location)
        if text.startswith(S3):
            return cls(text.rstrip("/"), endpoint_url, retry_s)
        return cls(str(Path(text).resolve()), None, retry_s)

    def __getstate__(self) -> dict:
        """Ray ships stores to workers: they rebuild the filesystem there rather than carry a client."""
        return {"uri": self.uri, "endpoint_url": self.endpoint_url, "retry_s": self.retry_s}

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith(S3)

    @cached_property
    def fs(self) -> fsspec.AbstractFileSystem:
        if self.is_s3:
            from data_pipeline.storage.s3 import RetryingS3FileSystem

            return RetryingS3FileSystem(self.endpoint_url, self.retry_s)
        return fsspec.filesystem("file")

    def arrow_fs(self) -> pyarrow.fs.FileSystem:
        """The same filesystem for pyarrow and Ray Data readers."""
        return pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(self.fs))

    @property
    def root(self) -> str:
        """The store's path as its filesystem names it (bucket/prefix for S3)."""
        return self.uri[len(S3):] if self.is_s3 else self.uri

    def path(self, name: str) -> str:
        return posixpath.join(self.root, name)

    def display(self, name: str = "") -> str:
        """How a file is named in messages: its full URI."""
        return posixpath.join(self.uri, name) if name else self.uri

    def exists(self, name: str) -> bool:
        return self.fs.exists(self.path(name))

    def read_bytes(self, name: str) -> bytes:
        return self.fs.cat_file(self.path(name))

    def write_bytes(self, name: str, data: bytes) -> None:
        """Appears whole or not at all under its name."""
        final = self.path(name)
        if self.is_s3:
            self.fs.pipe_file(final, data)
            return
        self.fs.makedirs(self.root, exist_ok=True)
        partial = self.path(f".{name}.partial")
        self.fs.pipe_file(partial, data)
        self.fs.mv(partial, final)

    def remove(self) -> None:
        """Delete everything under the store (an interrupted write's leftovers)."""
        if self.fs.exists(self.root):
            self.fs.rm(self.root, recursive=True)

