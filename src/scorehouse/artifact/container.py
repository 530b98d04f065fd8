"""Reading an artifact's entries from a `.shz` zip or a folder, with bounded memory.

Opening a container reads only its directory (names and declared sizes) and refuses what no
artifact writer produces: unsafe names (absolute, `..`, backslashes), duplicate names,
symbolic links, encryption, compression other than stored/deflate, and more entries than
the limit. Nothing is inflated until `read` names an entry; `read` checks the declared size
against the limits first, then streams the entry through sha256 and never holds more than
the declared size (a zip entry that inflates past it fails its CRC and is refused).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import ArtifactError, IntegrityError
from .limits import BYTES_ENV, FILES_ENV, RATIO_ENV, RATIO_EXEMPT_BYTES, Limits, human

#: Bytes inflated (or read) per step while hashing an entry.
CHUNK = 1 << 20

#: What a damaged zip raises while being read: a bad directory, a corrupt deflate stream, a cut.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError,
               OSError)


@dataclass(frozen=True)
class Entry:
    """One file of an artifact as its container declares it, before anything is read."""

    name: str  # relative POSIX path, e.g. "model/model.pkl"
    size: int  # bytes once inflated (declared by the zip directory, or the file's size)
    compressed: int  # bytes stored in the container (= size in a folder)


def check_name(name: str, source: str) -> None:
    """Refuse a path that could mean another place: absolute, `..`, `.`, empty parts, `\\`.

    Raises ArtifactError naming the entry.
    """
    parts = name.split("/")
    if (not name or name.startswith("/") or "\\" in name or "\0" in name or ":" in parts[0]
            or any(p in ("", ".", "..") for p in parts)):
        raise ArtifactError(f"{source}: entry name {name!r} is not a plain relative path "
                            "(absolute, '..', '.', empty part or backslash); refused")


class Container:
    """The entries of one artifact (`entries`), read one at a time with `read`."""

    def __init__(self, source: str, limits: Limits, entries: dict[str, Entry]):
        self.source, self.limits, self.entries = source, limits, entries
        if len(entries) > limits.max_files:
            raise ArtifactError(f"{source} holds {len(entries)} files, more than the limit "
                                f"of {limits.max_files} (${FILES_ENV}); refused")

    def check_total(self, names: list[str]) -> None:
        """Refuse, before inflating anything, when `names` together exceed the byte limit."""
        total = sum(self.entries[n].size for n in names)
        if total > self.limits.max_bytes:
            raise ArtifactError(
                f"{self.source} would inflate to {human(total)}, more than the limit of "
                f"{human(self.limits.max_bytes)} (${BYTES_ENV}); refused before inflating")

    def read(self, name: str, limit: int | None = None, limit_env: str | None = None
             ) -> tuple[bytes, str]:
        """The entry's bytes and their sha256, after checking its declared size.

        `limit` caps this entry (default: the byte limit), `limit_env` is the variable that
        sets it (for the message). Raises ArtifactError when the declared size is over the
        limit, the entry inflates far more than it is stored (a decompression bomb), or the
        entry is damaged or not the size it declares.
        """
        entry = self.entries[name]
        cap = self.limits.max_bytes
        env: str | None = BYTES_ENV
        if limit is not None and limit < cap:
            cap, env = limit, limit_env
        if entry.size > cap:
            raise ArtifactError(f"{self.source}: {name} declares {human(entry.size)}, more than "
                                f"the limit of {human(cap)}{f' (${env})' if env else ''}; "
                                "refused before inflating")
        ratio = entry.size / max(entry.compressed, 1)
        if entry.size > RATIO_EXEMPT_BYTES and ratio > self.limits.max_ratio:
            raise ArtifactError(
                f"{self.source}: {name} would inflate {ratio:.0f} times its stored size "
                f"({human(entry.compressed)} -> {human(entry.size)}), more than the limit of "
                f"{self.limits.max_ratio} (${RATIO_ENV}); refused as a decompression bomb")
        h = hashlib.sha256()
        chunks: list[bytes] = []
        got = 0
        try:
            with self._open(entry) as fh:
                # One byte past the declared size is asked for, so a longer entry is caught
                # after at most that much, never by inflating all of it.
                while got <= entry.size:
                    chunk = fh.read(min(CHUNK, entry.size + 1 - got))
                    if not chunk:
                        break
                    h.update(chunk)
                    chunks.append(chunk)
                    got += len(chunk)
        except _ZIP_ERRORS as e:
            raise IntegrityError(
                f"{self.source} is not a readable scorehouse artifact ({name} is damaged, not a "
                f"zip file entry, or larger than it declares: {type(e).__name__}: {e})") from None
        if got != entry.size:
            raise IntegrityError(f"{self.source}: {name} holds {'more' if got > entry.size else 'less'}"
                                 f" than the {entry.size} bytes it declares; refused")
        return b"".join(chunks), h.hexdigest()

    def _open(self, entry: Entry) -> BinaryIO:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Release the underlying file."""


class ZipContainer(Container):
    """A `.shz` zip, from a path or from bytes in memory."""

    def __init__(self, file: str | BinaryIO, source: str, limits: Limits):
        try:
            self._zip = zipfile.ZipFile(file)
            infos = self._zip.infolist()
        except _ZIP_ERRORS as e:
            raise ArtifactError(f"{source} is not a readable scorehouse artifact (damaged or not "
                                f"a zip file: {e})") from None
        self._infos: dict[str, zipfile.ZipInfo] = {}
        entries: dict[str, Entry] = {}
        if len(infos) > limits.max_files:  # before looking at each one
            raise ArtifactError(f"{source} holds {len(infos)} entries, more than the limit of "
                                f"{limits.max_files} (${FILES_ENV}); refused")
        for info in infos:
            name = info.filename
            mode = info.external_attr >> 16
            if info.is_dir():
                if info.file_size:
                    raise ArtifactError(f"{source}: directory entry {name!r} holds data; refused")
                check_name(name.rstrip("/"), source)
                continue
            check_name(name, source)
            if name in entries:
                raise ArtifactError(f"{source} holds two entries named {name!r}; refused")
            if stat.S_ISLNK(mode):
                raise ArtifactError(f"{source}: entry {name!r} is a symbolic link; refused")
            if info.flag_bits & 0x1:
                raise ArtifactError(f"{source}: entry {name!r} is encrypted; refused")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ArtifactError(f"{source}: entry {name!r} uses compression method "
                                    f"{info.compress_type}; artifacts use stored or deflate only")
            entries[name] = Entry(name, info.file_size, info.compress_size)
            self._infos[name] = info
        super().__init__(source, limits, entries)

    def _open(self, entry: Entry) -> BinaryIO:
        return self._zip.open(self._infos[entry.name])  # type: ignore[return-value]  # ZipExtFile

    def close(self) -> None:
        self._zip.close()


class FolderContainer(Container):
    """An artifact laid out as a folder; symbolic links and special files are refused."""

    def __init__(self, root: Path, source: str, limits: Limits):
        self.root = root
        entries: dict[str, Entry] = {}
        for here, dirs, files in os.walk(root, followlinks=False):
            for name in sorted(dirs) + sorted(files):
                path = Path(here) / name
                rel = path.relative_to(root).as_posix()
                st = path.lstat()
                if stat.S_ISLNK(st.st_mode):
                    raise ArtifactError(f"{source}: {rel} is a symbolic link; refused")
                if stat.S_ISDIR(st.st_mode):
                    continue
                if not stat.S_ISREG(st.st_mode):
                    raise ArtifactError(f"{source}: {rel} is not a regular file; refused")
                check_name(rel, source)
                entries[rel] = Entry(rel, st.st_size, st.st_size)
                if len(entries) > limits.max_files:
                    raise ArtifactError(f"{source} holds more than {limits.max_files} files, "
                                        f"the limit (${FILES_ENV}); refused")
        super().__init__(source, limits, entries)

    def _open(self, entry: Entry) -> BinaryIO:
        # O_NOFOLLOW: a file swapped for a link after the directory was listed is not followed.
        fd = os.open(self.root / entry.name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        return os.fdopen(fd, "rb")


def open_container(where: Path | bytes, source: str, limits: Limits | None = None) -> Container:
    """The container at `where` (a folder, a zip file, or zip bytes); reads only its directory.

    Raises ArtifactError for an unreadable zip or refused entries (see the module docstring).
    """
    limits = limits or Limits.from_env()
    if isinstance(where, bytes):
        return ZipContainer(io.BytesIO(where), source, limits)
    if where.is_dir():
        return FolderContainer(where, source, limits)
    return ZipContainer(str(where), source, limits)
