"""Safe file and terminal I/O shared by every reader and writer of rnnattn (bottom layer, standard library only).

* :func:`open_regular` / :func:`read_regular`: every file rnnattn reads (checkpoint, trainer state, log, sweep
  spec, sweep results) is opened through these. They refuse anything but a regular file *without blocking* (a
  FIFO or a device named ``state.safetensors`` would otherwise hang the reader forever) and bound its size.
* :func:`atomic_write_bytes`: temp file + fsync + rename; never replaces a file unless asked.
* :func:`printable`: the one escaping of names and paths that come from outside (a file, a command line) before
  they reach a terminal or a one-line error.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO


class UnsafeFileError(ValueError):
    """A path that rnnattn refuses to read: not a regular file, or larger than a limit."""


def printable(text: object, limit: int | None = None) -> str:
    """``text`` with every non-printable character escaped as Python would (``\\n``, ``\\x1b``, ``\\u202e``,
    and ``\\udcff`` for the lone surrogates that stand for undecodable bytes in file names): the result is one
    line that cannot drive a terminal and always encodes. Longer than ``limit``: cut, ending in ``...``."""
    s = os.fspath(text) if isinstance(text, os.PathLike) else str(text)
    if isinstance(s, bytes):
        s = s.decode("utf-8", "backslashreplace")
    out = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in s)
    if limit is not None and len(out) > limit:
        out = out[: max(limit - 3, 0)] + "..."
    return out


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a special file"


def _not_regular(path: Path, mode: int, what: str) -> UnsafeFileError:
    return UnsafeFileError(f"{printable(path)}: not a regular file ({_kind(mode)}); refusing to read it as a {what}")


def open_regular(path: str | os.PathLike, max_bytes: int | None = None, what: str = "file") -> BinaryIO:
    """Open ``path`` for binary reading if it is a regular file of at most ``max_bytes`` bytes.

    The type is checked on ``stat`` before opening and again on the open descriptor (opened with ``O_NONBLOCK``,
    so a FIFO swapped in between cannot block either). Raises ``FileNotFoundError``/``PermissionError`` as usual,
    :class:`UnsafeFileError` for anything that is not a regular file or too large.
    """
    path = Path(path)
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(path, st.st_mode, what)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, st.st_mode, what)
        if max_bytes is not None and st.st_size > max_bytes:
            raise UnsafeFileError(
                f"{printable(path)}: {st.st_size:,} bytes, above the limit of {max_bytes:,} for a {what}; refusing"
            )
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike, max_bytes: int, what: str = "file") -> bytes:
    """All bytes of a regular file of at most ``max_bytes`` (see :func:`open_regular`); a file that grows past the
    limit while being read is refused too."""
    with open_regular(path, max_bytes, what) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnsafeFileError(f"{printable(path)}: grew above the limit of {max_bytes:,} bytes for a {what}")
    return data


# -- writing ------------------------------------------------------------------------------------------------------
def append_bytes(path: str | os.PathLike, data: bytes, fsync: bool = False) -> None:
    """Append ``data`` with one ``write`` to ``path`` (created if missing) - only if it is a regular file that is
    not a symlink: a log or results file replaced by a symlink (to a file elsewhere) or a FIFO is refused, never
    written through or blocked on."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeFileError(f"{printable(path)}: is a symlink; refusing to append through it")
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError(f"{printable(path)}: not a regular file ({_kind(st.st_mode)}); refusing to append")
    # and again, race-free, on the descriptor: O_NOFOLLOW fails on a symlink swapped in, O_NONBLOCK on a FIFO
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as e:
        raise UnsafeFileError(f"{printable(path)}: cannot append ({e.strerror or e})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafeFileError(f"{printable(path)}: not a regular file; refusing to append to it")
        os.set_blocking(fd, True)
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync and rename: readers see the old file or
    the new one, never a partial one. Refuses to replace an existing file unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{printable(path)} exists (pass overwrite=True / --force to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600; give the file ordinary permissions
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_no_replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)  # make the rename itself durable (power loss), not only the bytes
    return path


def _link_no_replace(tmp: str, path: Path) -> None:
    # The exists() check above is only a fast path: another process may create ``path`` while we write. link(2)
    # fails with EEXIST instead of replacing, so a file that appeared meanwhile is never clobbered.
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{printable(path)} exists (pass overwrite=True / --force to replace it)") from None
    except OSError:  # no hard links on this file system (FAT, some FUSE mounts): best effort
        if path.exists():
            raise FileExistsError(f"{printable(path)} exists (pass overwrite=True / --force to replace it)") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _fsync_dir(folder: Path) -> None:
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:  # some file systems refuse fsync on directories
        pass
    finally:
        os.close(dfd)
