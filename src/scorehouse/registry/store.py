"""The artifact store: content-addressed artifact files under any fsspec URL."""

from __future__ import annotations

import uuid

import fsspec

from ..artifact.limits import BYTES_ENV, Limits, human
from ..errors import ArtifactError, NotFoundError, RegistryError


class ArtifactStore:
    """Keeps `<root>/<model>/<manifest sha256>.shz`; a local folder by default."""

    def __init__(self, url: str):
        self.url = url
        try:
            self.fs, self.root = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as e:
            raise RegistryError(f"cannot use artifact store {url!r}: {e}") from None
        self.root = self.root.rstrip("/")

    def uri_for(self, name: str, sha: str) -> str:
        """Where an artifact with this manifest hash lives."""
        return f"{self.root}/{name}/{sha}.shz"

    def put(self, name: str, sha: str, data: bytes) -> str:
        """Store zip bytes (once: same hash, same file); returns the path in the store."""
        path = self.uri_for(name, sha)
        # Same manifest hash means same content, unless the stored copy was damaged: then the
        # fresh bytes replace it.
        if self.fs.exists(path) and self.fs.cat_file(path) == data:
            return path
        self.fs.makedirs(f"{self.root}/{name}", exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, path)
        return path

    def get(self, path: str) -> bytes:
        """The bytes of a stored artifact; ArtifactError when larger than the size limit."""
        try:
            # Checked before reading: whoever can write to the store must not be able to
            # make every server that loads a model read an arbitrarily large file.
            size, limit = self.fs.size(path), Limits.from_env().max_bytes
            if size is not None and size > limit:
                raise ArtifactError(f"artifact file {path} is {human(size)}, more than the limit "
                                    f"of {human(limit)} (${BYTES_ENV}); refused")
            data: bytes = self.fs.cat_file(path)
            return data
        except FileNotFoundError:
            raise NotFoundError(f"artifact file {path} is missing from the store "
                                f"{self.url}") from None
