"""Reading evidence files and walking evidence directories, strictly read-only.

Everything here only ever reads. Files and directories are opened ``O_RDONLY`` (with ``O_NOATIME``
where the system permits it, so reading does not even move access times); nothing is written,
renamed, re-timed or created under an evidence path.

* :func:`read_file` / :func:`read_stream` read content in one streamed pass that yields its size, its
  MD5/SHA-1/SHA-256, its first bytes (for type sniffing) and, when asked and small enough, the
  content itself. Memory stays bounded for files of any size.
* :func:`read_entry` reads a file :func:`walk` listed, and only that file: a symbolic link, FIFO or
  other file swapped into its place (or a symbolic link swapped in for a directory on its path)
  between the walk and the read is refused, never followed out of the tree: the path is resolved one
  name at a time below the path the user gave, each with ``O_NOFOLLOW``, and what was opened is
  checked with ``fstat``.
* :func:`walk` lists what is under the paths an examiner gives, in a deterministic order, with one
  :class:`Entry` for everything met. Symbolic links inside the walk are reported, never followed;
  FIFOs, sockets and devices are reported, never opened. File-system problems become entries with an
  error message, never exceptions, so nothing met goes unrecorded.
* :func:`reopen_entry` / :func:`reopen_file` open again, read-only and as the read opened it, a file
  too large to hold in memory (a video the decoder then reads from the file), and refuse it unless
  ``fstat`` still shows what was digested (:class:`FileIdentity`: device, inode, size, modification
  time), so a file swapped or rewritten between the digests and the decode is never decoded.
* :func:`display_path` turns a raw path into text for reports without losing undecodable bytes.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from .digests import DigestAccumulator, Digests
from .errors import FileReadError, NotAFileError, UsageError

__all__ = [
    "CHUNK_SIZE",
    "HEAD_SIZE",
    "Entry",
    "FileIdentity",
    "ReadResult",
    "display_path",
    "path_inside",
    "read_entry",
    "read_file",
    "read_stream",
    "reopen_entry",
    "reopen_file",
    "identity_of",
    "walk",
]

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
#: A file growing while it is read is read until it has grown by its size at open, or by this many
#: bytes if more; then reading stops and the result says the file changed.
GROWTH_ALLOWANCE = 64 * 1024 * 1024
"""Bytes asked for per read."""

HEAD_SIZE = 4096
"""How many leading bytes :attr:`ReadResult.head` holds."""

_DEFAULT_MAX_KEEP = 512 * 1024 * 1024
_O_NOATIME: int = getattr(os, "O_NOATIME", 0)
_FILE_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)  # opening a FIFO swapped in for the file must not block
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_BINARY", 0)
)
# Directories are listed through a descriptor where the platform allows it, so that O_NOATIME keeps
# listing them from updating their access times; elsewhere (Windows) they are listed by path.
_SCANDIR_FD = os.scandir in os.supports_fd and hasattr(os, "O_DIRECTORY")
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)

_KINDS = {
    stat.S_IFREG: "file",
    stat.S_IFDIR: "directory",
    stat.S_IFLNK: "symlink",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "char_device",
    stat.S_IFBLK: "block_device",
}
_SKIPPED_LABELS = {
    "fifo": "FIFO",
    "socket": "socket",
    "char_device": "character device",
    "block_device": "block device",
    "other": "file of unknown type",
}
ENTRY_KINDS = frozenset(
    {"file", "symlink", "fifo", "socket", "char_device", "block_device", "directory_error", "missing", "other"}
)
"""The values :attr:`Entry.kind` can take."""


# --------------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """Which file, in which state, a read digested: its ``device`` and ``inode``, ``size`` and
    modification time (``mtime_ns``), from ``fstat`` of the open file after the read."""

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        """The identity ``fstat`` (or ``stat``) gave."""
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True, slots=True)
class ReadResult:
    """What one streamed read of a file or stream produced.

    ``size`` is the number of bytes actually read and ``digests`` their digests; ``head`` is the first
    up to :data:`HEAD_SIZE` bytes; ``data`` is the whole content when it was kept, else ``None``.
    ``noatime`` tells whether ``O_NOATIME`` was in effect (so the access time cannot have moved), and
    ``changed`` whether the file's size or modification time differed between just before and just
    after the read, i.e. the content may not be one consistent state of the file. ``identity`` is
    the file's :class:`FileIdentity` after the read (``None`` for a stream), for :func:`reopen_entry`
    and :func:`reopen_file`.
    """

    size: int
    digests: Digests
    head: bytes
    data: bytes | None
    noatime: bool
    changed: bool
    identity: FileIdentity | None = None


def read_file(
    path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
    *,
    keep: Callable[[bytes], bool] | bool = False,
    max_keep_bytes: int = _DEFAULT_MAX_KEEP,
    follow_symlinks: bool = True,
) -> ReadResult:
    """Read the regular file at ``path`` in one streamed pass, without modifying it in any way.

    ``keep`` decides whether the content is returned in :attr:`ReadResult.data`: ``True``/``False``, or
    a callable given the head (first up to :data:`HEAD_SIZE` bytes) once it is known, e.g. to keep only
    what looks like an image. Content is only kept while it totals at most ``max_keep_bytes``; a larger
    file gives ``data=None`` (its digests are still complete), so memory stays bounded.

    A symbolic link named as ``path`` is followed, as :func:`walk` follows a path the user named; with
    ``follow_symlinks=False`` it is not (``O_NOFOLLOW``): a link there raises
    :class:`~matcher.errors.NotAFileError` saying ``"symbolic link (to '…'), not followed"``. To read a
    file :func:`walk` listed, use :func:`read_entry`, which follows no link below the path the user
    gave (``follow_symlinks=False`` guards the last name only).

    Raises :class:`~matcher.errors.NotAFileError` when ``path`` is not a regular file (a FIFO, socket
    or device is never read from, and is not even opened unless it was swapped in at the last moment;
    the non-blocking open keeps that from hanging), and :class:`~matcher.errors.FileReadError` (an
    ``OSError``, with ``errno`` set) when the file cannot be opened or read; its message names the path
    and the reason, e.g. ``"…: cannot open: permission denied"``.
    """
    return _read_path(_fsencode(path), keep, max_keep_bytes, follow=follow_symlinks)


def read_entry(
    entry: Entry,
    *,
    keep: Callable[[bytes], bool] | bool = False,
    max_keep_bytes: int = _DEFAULT_MAX_KEEP,
) -> ReadResult:
    """Read the regular file a :func:`walk` entry lists, as :func:`read_file` does, never anything else.

    The read does not follow the walk at once, and a file can be swapped meanwhile. So the entry's path
    is resolved one name at a time below the path the user gave (:attr:`Entry.root`), each name with
    ``O_NOFOLLOW``: a symbolic link found where the walk listed the file, or in place of a directory on
    its path, is never followed. It raises :class:`~matcher.errors.NotAFileError` describing the link
    as the walk describes links (``"…: symbolic link (to '…'), not followed"``; a scan reports it
    *skipped*). A FIFO, socket or device swapped in raises ``NotAFileError`` too, without being read.
    A regular file rewritten or replaced in place is read; :attr:`ReadResult.changed` and the size
    tell of it. The path the user gave is followed if it is a link, as the walk followed it.

    An entry that is not a regular file (``entry.kind != "file"``) raises ``NotAFileError`` with
    :meth:`Entry.not_read`'s message, without touching the file system.
    """
    if not isinstance(entry, Entry):
        raise UsageError(f"read_entry() takes a walk Entry, not {type(entry).__name__}")
    if entry.kind != "file":
        raise NotAFileError(f"{display_path(entry.path)[0]}: {entry.not_read()[1]}")
    root = entry.root
    if root == entry.path:  # a file the user named: followed, as the walk followed it
        return _read_path(entry.path, keep, max_keep_bytes, follow=True)
    return _read_path(entry.path, keep, max_keep_bytes, follow=False, root=root)


def _read_path(
    path: bytes,
    keep: Callable[[bytes], bool] | bool,
    max_keep_bytes: int,
    *,
    follow: bool,
    root: bytes | None = None,
) -> ReadResult:
    """The read behind :func:`read_file` and :func:`read_entry`; ``root``: resolve ``path`` below it
    one name at a time, following no link (see :func:`_open_below`)."""
    _check_keep_arguments(keep, max_keep_bytes)
    name = display_path(path)[0]
    fd, noatime, before = _open_checked(path, name, follow=follow, root=root)
    try:
        # A file that keeps growing is not read forever: reading stops once it has grown by its own size
        # (at least GROWTH_ALLOWANCE bytes) since it was opened, and the result says it changed.
        stop_after = before.st_size + max(before.st_size, GROWTH_ALLOWANCE)
        if before.st_size > max_keep_bytes:
            keep = False  # too big to keep from the start: never held in memory
        size, digests, head, data = _consume(lambda: os.read(fd, CHUNK_SIZE), keep, max_keep_bytes, name, stop_after)
        try:
            after = os.fstat(fd)
        except OSError as exc:
            raise _read_error(f"{name}: cannot examine the file after reading", exc) from exc
    finally:
        os.close(fd)
    changed = size > stop_after or (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns)
    if changed:
        logger.debug("%s changed while it was being read", name)
    return ReadResult(size, digests, head, data, noatime, changed, FileIdentity.of(after))


def _open_checked(path: bytes, name: str, *, follow: bool, root: bytes | None) -> tuple[int, bool, os.stat_result]:
    """Open ``path`` read-only as :func:`_read_path` reads it (below ``root`` following no link, else
    following a final link only with ``follow``), check with ``fstat`` that it is a regular file and
    make the descriptor blocking; the descriptor, whether ``O_NOATIME`` applied, and the ``fstat``."""
    try:
        if root is not None and _OPENS_AT and _below(root, path) is not None:
            fd, noatime = _open_below(root, path, name)
        else:
            fd, noatime = _open_regular(path, name, follow=follow)
    except OSError as exc:
        raise _read_error(f"{name}: cannot open", exc) from exc
    try:
        before = os.fstat(fd)
        _require_regular(name, before.st_mode)  # whatever may have been swapped in since the look
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # O_NONBLOCK was only for the open
    except OSError as exc:
        os.close(fd)
        raise _read_error(f"{name}: cannot examine the opened file", exc) from exc
    except BaseException:
        os.close(fd)
        raise
    return fd, noatime, before


def reopen_entry(entry: Entry, identity: FileIdentity) -> BinaryIO:
    """The file a :func:`walk` entry lists, opened again read-only exactly as :func:`read_entry`
    opens it (no link below the path the user gave is followed), for reading it a second time
    (a video too large to hold in memory is decoded from its file).

    Refused unless ``fstat`` of what was opened shows ``identity`` (what :func:`read_entry`
    digested, :attr:`ReadResult.identity`): :class:`~matcher.errors.FileReadError` saying the file
    changed since it was digested; :class:`~matcher.errors.NotAFileError` for a link, FIFO or device
    swapped in. The caller closes the returned binary file (read-only; its ``fileno`` is the open
    descriptor, for :func:`identity_of`).
    """
    if entry.kind != "file":
        raise NotAFileError(f"{display_path(entry.path)[0]}: {entry.not_read()[1]}")
    root = None if entry.root == entry.path else entry.root
    return _reopen(entry.path, identity, follow=entry.root == entry.path, root=root)


def reopen_file(
    path: str | bytes | os.PathLike[str] | os.PathLike[bytes], identity: FileIdentity, *, follow_symlinks: bool = True
) -> BinaryIO:
    """The file at ``path`` opened again read-only as :func:`read_file` opens it, refused unless it
    is still the file ``identity`` describes (see :func:`reopen_entry`)."""
    return _reopen(_fsencode(path), identity, follow=follow_symlinks, root=None)


def _reopen(path: bytes, identity: FileIdentity, *, follow: bool, root: bytes | None) -> BinaryIO:
    name = display_path(path)[0]
    fd, _noatime, st = _open_checked(path, name, follow=follow, root=root)
    if FileIdentity.of(st) != identity:
        os.close(fd)
        error = FileReadError(
            f"{name}: changed since its digests were computed (device, inode, size or modification time "
            "differ); not decoded"
        )
        error.errno = errno.ESTALE
        raise error
    try:
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def identity_of(stream: BinaryIO) -> FileIdentity | None:
    """The :class:`FileIdentity` of the open file ``stream`` now (``None`` when it has no descriptor
    or ``fstat`` fails), to check after reading it again that it did not change meanwhile."""
    try:
        return FileIdentity.of(os.fstat(stream.fileno()))
    except (OSError, AttributeError, ValueError):
        return None


def read_stream(
    stream: BinaryIO,
    *,
    keep: Callable[[bytes], bool] | bool = False,
    max_keep_bytes: int = _DEFAULT_MAX_KEEP,
) -> ReadResult:
    """Read an open binary stream to its end, as :func:`read_file` reads a file.

    The stream is read from its current position and is not closed. ``noatime`` is always ``False``.
    ``changed`` compares ``fstat`` of the stream's file descriptor before and after reading when it has
    one that refers to a regular file, and is ``False`` otherwise. Read errors raise
    :class:`~matcher.errors.FileReadError`; a text stream raises :class:`~matcher.errors.UsageError`.
    """
    _check_keep_arguments(keep, max_keep_bytes)
    name = str(getattr(stream, "name", None) or f"<{type(stream).__name__} stream>")

    def read_chunk() -> bytes:
        chunk = stream.read(CHUNK_SIZE)
        if chunk is None:
            raise UsageError(f"{name}: the stream is non-blocking and had no data ready; pass a blocking stream")
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise UsageError(f"{name}: read gave {type(chunk).__name__}, not bytes; open the stream in binary mode")
        return bytes(chunk)

    before = _stream_stat(stream)
    size, digests, head, data = _consume(read_chunk, keep, max_keep_bytes, name)
    after = _stream_stat(stream)
    changed = before is not None and after is not None and before != after
    return ReadResult(size, digests, head, data, False, changed)


def _consume(
    read_chunk: Callable[[], bytes],
    keep: Callable[[bytes], bool] | bool,
    max_keep_bytes: int,
    name: str,
    stop_after: int | None = None,
) -> tuple[int, Digests, bytes, bytes | None]:
    """The streamed pass shared by :func:`read_file` and :func:`read_stream`.

    Chunks are held only while they may still be kept: until ``keep`` says no, or as long as their
    total is within ``max_keep_bytes``. ``keep`` (when callable) is asked once, as soon as the head is
    complete, or at the end for a file shorter than the head. Reading stops once more than
    ``stop_after`` bytes have come (``None``: at the end of the stream only).
    """
    accumulator = DigestAccumulator()
    head = bytearray()
    total = 0
    ask = None if isinstance(keep, bool) else keep  # still to be asked, once the head is known
    chunks: list[bytes] | None = [] if keep is not False else None  # held while they may be kept
    while True:
        try:
            chunk = read_chunk()
        except OSError as exc:
            raise _read_error(f"{name}: read failed after {total} bytes", exc) from exc
        if not chunk:
            break
        accumulator.update(chunk)
        total += len(chunk)
        if len(head) < HEAD_SIZE:
            head += chunk[: HEAD_SIZE - len(head)]
        if chunks is not None:
            if total <= max_keep_bytes:
                chunks.append(chunk)
            else:
                chunks = None  # too big to keep: let it go, so memory stays bounded
        if ask is not None and chunks is not None and len(head) >= HEAD_SIZE:
            if not ask(bytes(head)):
                chunks = None
            ask = None
        if stop_after is not None and total > stop_after:
            break
    if ask is not None and chunks is not None and not ask(bytes(head)):
        chunks = None
    data = b"".join(chunks) if chunks is not None else None
    return total, accumulator.result(), bytes(head), data


def _check_keep_arguments(keep: object, max_keep_bytes: object) -> None:
    if not isinstance(keep, bool) and not callable(keep):
        raise UsageError(f"keep must be True, False or a callable taking the head bytes, not {keep!r}")
    if isinstance(max_keep_bytes, bool) or not isinstance(max_keep_bytes, int) or max_keep_bytes < 0:
        raise UsageError(f"max_keep_bytes must be a non-negative integer, not {max_keep_bytes!r}")


def _open_regular(path: bytes, name: str, *, follow: bool) -> tuple[int, bool]:
    """Open the regular file at ``path`` read-only for :func:`read_file` (``O_NOATIME`` when permitted).

    Looks first, so that a FIFO or device named directly is never opened at all. Without ``follow``
    the look does not follow a final symbolic link (``lstat``) and neither does the open
    (``O_NOFOLLOW``, so a link swapped in after the look is refused too): a link raises
    :class:`NotAFileError`. A path longer than PATH_MAX is reached through its directory opened a piece
    at a time (as the walk lists it), with the same rule for the last name. The caller checks what was
    opened with ``fstat``.
    """
    flags = _FILE_FLAGS if follow else _FILE_FLAGS | _O_NOFOLLOW
    look = os.stat if follow else os.lstat
    try:
        _require_regular(name, look(path).st_mode, path)
        return _open_file(path, name, flags)
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG or not _OPENS_AT:
            raise
    parent, base = os.path.split(path)
    directory = _open_in_pieces(parent, _PIECE_FLAGS)
    try:
        _require_regular(name, look(base, dir_fd=directory).st_mode, path, directory)
        return _open_file(base, name, flags, directory)
    finally:
        os.close(directory)


def _below(root: bytes, path: bytes) -> list[bytes] | None:
    """The names leading from ``root`` down to ``path`` (as the walk joined them), or ``None``."""
    sep = os.sep.encode()
    if not path.startswith(root):
        return None
    rest = path[len(root) :]
    if not root.endswith(sep):
        if not rest.startswith(sep):
            return None
        rest = rest[len(sep) :]
    names = rest.split(sep)
    return names if names and all(names) else None


def _open_below(root: bytes, path: bytes, name: str) -> tuple[int, bool]:
    """Open the regular file at ``path``, found by the walk under the given path ``root``, following
    no symbolic link below ``root`` (see :func:`_parent_below`); the file itself is looked at and
    opened as :func:`_open_regular` does without following. A link met raises :class:`NotAFileError`.
    """
    names = _below(root, path)
    if names is None:
        raise UsageError(f"{name}: not under {display_path(root)[0]}")
    directory = _parent_below(root, names, f"{name}: ")
    try:
        last = names[-1]
        _require_regular(name, os.lstat(last, dir_fd=directory).st_mode, last, directory)
        return _open_file(last, name, _FILE_FLAGS | _O_NOFOLLOW, directory)
    finally:
        os.close(directory)


def _parent_below(root: bytes, names: list[bytes], prefix: str) -> int:
    """An open descriptor of the directory holding ``names[-1]``, reached from ``root`` through
    ``names[:-1]`` without following any symbolic link.

    ``root`` is opened as the user named it (a link there is followed, as the walk followed it; a root
    past PATH_MAX in pieces); then each name on the way is opened relative to the directory before
    with ``O_NOFOLLOW`` (``O_PATH`` where there is one: nothing read, no permission beyond search
    needed). A link met on the way raises :class:`NotAFileError` (message: ``prefix`` + what was met).
    """
    directory = _open_directory(root, _PIECE_FLAGS)
    try:
        for part in names[:-1]:
            try:
                child = os.open(part, _PIECE_FLAGS | _O_NOFOLLOW, dir_fd=directory)
            except OSError as exc:
                if exc.errno in (errno.ENOTDIR, *_NOFOLLOW_ERRNOS) and _is_link(part, directory):
                    shown = display_path(part)[0]
                    raise NotAFileError(
                        f"{prefix}'{shown}' on its path is a {_describe_link(part, directory, relative=True)}, "
                        "not followed"
                    ) from exc
                raise
            os.close(directory)
            directory = child
    except BaseException:
        os.close(directory)
        raise
    return directory


def _open_directory_below(root: bytes, path: bytes) -> int | None:
    """Open the directory ``path`` found under the given path ``root`` for listing, following no
    symbolic link below ``root``; ``None`` when ``path`` is not below ``root`` (open it as it is).
    A link met (in place of the directory or on its way) raises :class:`NotAFileError` describing it."""
    names = _below(root, path)
    if names is None:
        return None
    parent = _parent_below(root, names, "")
    try:
        last = names[-1]
        try:
            return _open_noatime(last, _DIR_FLAGS | _O_NOFOLLOW, parent)[0]
        except OSError as exc:
            if exc.errno in (errno.ENOTDIR, *_NOFOLLOW_ERRNOS) and _is_link(last, parent):
                raise NotAFileError(f"{_describe_link(last, parent, relative=True)}, not followed") from exc
            raise
    finally:
        os.close(parent)


def _is_link(name: bytes, dir_fd: int | None) -> bool:
    """Whether ``name`` (relative to ``dir_fd`` when given) is a symbolic link now."""
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode)
    except OSError:
        return False


def _open_file(path: bytes, name: str, flags: int, dir_fd: int | None = None) -> tuple[int, bool]:
    """:func:`_open_noatime` for a file; a symbolic link met by an ``O_NOFOLLOW`` open (swapped in after
    the look) raises :class:`NotAFileError` describing it, as the walk describes links."""
    try:
        return _open_noatime(path, flags, dir_fd)
    except OSError as exc:
        # O_NOFOLLOW on a final link fails with ELOOP (EMLINK on some BSDs, EFTYPE on NetBSD)
        if not (flags & _O_NOFOLLOW) or exc.errno not in _NOFOLLOW_ERRNOS:
            raise
        if not _is_link(path, dir_fd):
            raise
        raise NotAFileError(f"{name}: {_describe_link(path, dir_fd, relative=True)}, not followed") from exc


_NOFOLLOW_ERRNOS = frozenset(
    code for code in (errno.ELOOP, errno.EMLINK, getattr(errno, "EFTYPE", None)) if code is not None
)


def _require_regular(name: str, mode: int, path: bytes | None = None, dir_fd: int | None = None) -> None:
    """Raise :class:`NotAFileError` unless ``mode`` is a regular file's; a symbolic link (seen by
    ``lstat`` at ``path``, relative to ``dir_fd`` when given) is described as the walk describes it."""
    if stat.S_ISLNK(mode) and path is not None:
        link = os.path.basename(path) if dir_fd is not None else path
        raise NotAFileError(f"{name}: {_describe_link(link, dir_fd, relative=True)}, not followed")
    if not stat.S_ISREG(mode):
        raise NotAFileError(f"{name}: not a regular file ({_kind_of(mode)})")


def _open_noatime(
    path: str | bytes | os.PathLike[str] | os.PathLike[bytes], flags: int, dir_fd: int | None = None
) -> tuple[int, bool]:
    """``os.open`` read-only, with ``O_NOATIME`` when permitted; returns the descriptor and whether it applied.

    ``O_NOATIME`` is refused (``EPERM``) for files the caller neither owns nor has the privilege for;
    the open is then retried without it. ``dir_fd``: ``path`` is relative to that open directory.
    """
    if _O_NOATIME:
        try:
            return os.open(path, flags | _O_NOATIME, dir_fd=dir_fd), True
        except PermissionError as exc:
            if exc.errno != errno.EPERM:
                raise
            logger.debug("O_NOATIME not permitted for %r; opening without it", path)
    return os.open(path, flags, dir_fd=dir_fd), False


def _stream_stat(stream: BinaryIO) -> tuple[int, int] | None:
    try:
        st = os.fstat(stream.fileno())
    except (OSError, AttributeError, ValueError):  # io.UnsupportedOperation is both OSError and ValueError
        return None
    return (st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None


def _read_error(message: str, exc: OSError) -> FileReadError:
    error = FileReadError(f"{message}: {_reason(exc)}")
    error.errno = exc.errno  # the message stays as written; errno lets callers tell causes apart
    return error


def _reason(exc: OSError) -> str:
    """The OS's reason for ``exc`` in lower case, e.g. ``"permission denied"``."""
    if exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


def _kind_of(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "other")


def _fsencode(path: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> bytes:
    try:
        return os.fsencode(path)
    except TypeError:
        raise UsageError(f"a path must be str, bytes or os.PathLike, not {type(path).__name__}") from None


# --------------------------------------------------------------------------------------------------
# Walking


# Entry kinds that are never opened on purpose: reported as skipped, not as errors.
_SKIPPED_KINDS = frozenset({"symlink", "fifo", "socket", "char_device", "block_device"})


@dataclass(frozen=True, slots=True)
class Entry:
    """One thing met by :func:`walk`.

    ``path`` is the exact file-system path as bytes (names need not be valid UTF-8; see
    :func:`display_path`). ``kind`` is one of :data:`ENTRY_KINDS`. ``size`` is the size from ``lstat``
    for a regular file, else ``None``. ``error`` is ``None`` for a regular file and otherwise says why
    nothing will be read, e.g. ``"symbolic link (to '../x'), not followed"``, ``"FIFO, skipped (never
    opened)"``, ``"directory could not be listed: permission denied"``, ``"no such file or directory"``.

    ``root`` is the path the user gave that this entry was found under (the entry's own path for a
    path the user named; ``None`` when not known): :func:`read_entry` resolves ``path`` below it
    without following links, as the walk did. It takes no part in comparisons or ``repr``.
    """

    path: bytes
    kind: str
    size: int | None = None
    error: str | None = None
    root: bytes | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.path, bytes):
            raise UsageError(f"Entry.path must be bytes, not {type(self.path).__name__}")
        if self.kind not in ENTRY_KINDS:
            raise UsageError(f"Entry.kind must be one of {sorted(ENTRY_KINDS)}, not {self.kind!r}")
        if self.root is not None and not isinstance(self.root, bytes):
            raise UsageError(f"Entry.root must be bytes or None, not {type(self.root).__name__}")

    def not_read(self) -> tuple[bool, str]:
        """For an entry that is not a regular file: ``(skipped, message)``. Links, FIFOs, sockets and
        devices (and other things never opened) are *skipped*, by design; anything else (a directory
        that could not be listed, a path that vanished) is an *error*."""
        message = self.error or f"{self.kind}, not read"
        skipped = self.kind in _SKIPPED_KINDS or (self.kind == "other" and "never opened" in message)
        return skipped, message


@dataclass(frozen=True, slots=True)
class _Directory:
    """A directory still to be listed; ``follow``: whether a symbolic link here may be followed;
    ``root``: the path the user gave that it was found under."""

    path: bytes
    follow: bool
    root: bytes


def walk(paths: Iterable[str | bytes | os.PathLike[str] | os.PathLike[bytes]]) -> Iterator[Entry]:
    """Yield an :class:`Entry` for every file and problem under ``paths``, lazily.

    Each given path is handled in turn. A regular file gives one entry; a directory is walked
    depth-first with its contents in order of name bytes, so that each directory's output is sorted by
    full path bytes. A given path that is a symbolic link is followed (it was asked for); symbolic links
    met inside a directory are reported as ``"symlink"`` entries and never followed, so links cannot make
    the walk loop or leave the tree. FIFOs, sockets and devices are reported and never opened. A
    directory that cannot be listed gives a ``"directory_error"`` entry and the walk goes on; a given
    path that does not exist gives a ``"missing"`` entry. A directory reached more than once (overlapping
    given paths, bind mounts) is walked only the first time. Directories themselves give no entry.
    Depth has no limit: a directory whose path is longer than the system takes in one call (PATH_MAX)
    is opened a piece at a time through directory descriptors, so it is listed like any other. Memory
    is bounded by the widest directory (its listing is held to sort it) and the depth, never by the
    number of files in the tree.

    File-system problems never raise; only a ``paths`` argument that is not an iterable of paths raises
    :class:`~matcher.errors.UsageError` (a single path must be wrapped in a list).
    """
    if isinstance(paths, (str, bytes, bytearray, os.PathLike)):
        raise UsageError(f"walk() takes an iterable of paths, not a single path ({paths!r}); wrap it in a list")
    return _walk(paths)


def _walk(paths: Iterable[str | bytes | os.PathLike[str] | os.PathLike[bytes]]) -> Iterator[Entry]:
    seen: set[tuple[int, int]] = set()  # (st_dev, st_ino) of directories listed
    for given in paths:
        stack: list[Entry | _Directory] = [_examine_given(_fsencode(given))]
        while stack:  # an explicit stack: trees of any depth, no recursion
            item = stack.pop()
            if isinstance(item, Entry):
                yield item
                continue
            problem, children = _list_directory(item, seen)
            if problem is not None:
                yield problem
            stack.extend(reversed(children))


def _examine_given(path: bytes) -> Entry | _Directory:
    """Classify a path the user named, following a symbolic link."""
    try:
        st = os.stat(path)
    except OSError as exc:
        try:
            is_link = stat.S_ISLNK(os.lstat(path).st_mode)
        except OSError:
            is_link = False
        if is_link:
            return Entry(path, "symlink", None, f"{_describe_link(path)} could not be followed: {_reason(exc)}")
        if exc.errno == errno.ENOENT:
            return Entry(path, "missing", None, "no such file or directory")
        if exc.errno == errno.ENOTDIR:
            return Entry(path, "missing", None, "no such file or directory (a parent is not a directory)")
        return Entry(path, "other", None, f"could not be examined: {_reason(exc)}")
    return _classify(path, st, follow=True, root=path)


def _classify(
    path: bytes, st: os.stat_result, *, follow: bool, root: bytes, dir_fd: int | None = None
) -> Entry | _Directory:
    kind = _kind_of(st.st_mode)
    if kind == "file":
        return Entry(path, "file", st.st_size, None, root=root)
    if kind == "directory":
        return _Directory(path, follow, root)
    if kind == "symlink":
        return Entry(path, "symlink", None, f"{_describe_link(path, dir_fd)}, not followed")
    return Entry(path, kind, None, f"{_SKIPPED_LABELS[kind]}, skipped (never opened)")


def _describe_link(path: bytes, dir_fd: int | None = None, *, relative: bool = False) -> str:
    """The link's target; read relative to ``dir_fd`` (the open directory holding it) when given, so a
    link deeper than PATH_MAX is still described. ``relative``: ``path`` is already the name in
    ``dir_fd`` (else its last name is taken)."""
    try:
        if dir_fd is not None and _OPENS_AT:
            target = os.readlink(path if relative else os.path.basename(path), dir_fd=dir_fd)
        else:
            target = os.readlink(path)
    except OSError as exc:
        return f"symbolic link (target could not be read: {_reason(exc)})"
    text, raw_hex = display_path(target)
    return f"symbolic link (to '{text}')" if raw_hex is None else f"symbolic link (to '{text}', hex {raw_hex})"


def _list_directory(directory: _Directory, seen: set[tuple[int, int]]) -> tuple[Entry | None, list[Entry | _Directory]]:
    """List one directory: an entry for the problem if any, and its children in walk order.

    Children are sorted by name, a directory's name taken with a trailing separator so that the walk's
    output comes out sorted by full path bytes. Returns no children for a directory already listed.
    """
    path = directory.path
    children: list[tuple[bytes, Entry | _Directory]] = []
    problem = None
    fd = None
    try:
        if _SCANDIR_FD:
            if not directory.follow and _OPENS_AT:  # resolved below the given path: no link followed
                fd = _open_directory_below(directory.root, path)
            if fd is None:
                flags = _DIR_FLAGS if directory.follow else _DIR_FLAGS | _O_NOFOLLOW
                fd = _open_directory(path, flags)
            st = os.fstat(fd)
        else:
            st = os.stat(path) if directory.follow else os.lstat(path)
            if not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        identity = (st.st_dev, st.st_ino)
        if identity in seen:
            logger.debug("%r: directory already walked; not walking it again", path)
            return None, []
        if st.st_ino:  # some file systems report no inode numbers; such directories cannot be told apart
            seen.add(identity)
        with os.scandir(path if fd is None else fd) as listing:
            for dir_entry in listing:
                name = os.fsencode(dir_entry.name)
                child = _examine_child(os.path.join(path, name), dir_entry, directory.root, fd)
                key = name + os.sep.encode() if isinstance(child, _Directory) else name
                children.append((key, child))
    except NotAFileError as exc:  # a link swapped in for the directory, or for one on its way, since it was met
        problem = Entry(path, "symlink", None, str(exc))
        logger.debug("%s: %s", display_path(path)[0], problem.error)
    except OSError as exc:
        what = "directory could not be fully listed" if children else "directory could not be listed"
        problem = Entry(path, "directory_error", None, f"{what}: {_reason(exc)}")
        logger.debug("%s: %s", display_path(path)[0], problem.error)
    finally:
        if fd is not None:
            os.close(fd)
    children.sort(key=lambda pair: pair[0])
    return problem, [child for _, child in children]


def _examine_child(
    path: bytes, dir_entry: os.DirEntry[str] | os.DirEntry[bytes], root: bytes, dir_fd: int | None = None
) -> Entry | _Directory:
    try:
        st = dir_entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return Entry(path, "missing", None, "no such file or directory (vanished during the walk)")
    except OSError as exc:
        return Entry(path, "other", None, f"could not be examined: {_reason(exc)}")
    return _classify(path, st, follow=False, root=root, dir_fd=dir_fd)


# A path longer than the system takes in one call (PATH_MAX: 4096 bytes on Linux) gives ENAMETOOLONG.
# A directory that deep is still reached: its path is opened a piece at a time, each piece relative to
# the descriptor of the one before (openat), so the walk lists trees of any depth. Pieces on the way
# are opened O_PATH (nothing read, no access time moved); only the directory itself is opened to list.
_PIECE_BYTES = 1024
_PIECE_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_OPENS_AT = os.open in os.supports_dir_fd


def _open_directory(path: bytes, flags: int) -> int:
    """``os.open`` the directory ``path`` with ``flags`` (``O_NOATIME`` where permitted), in pieces when
    the whole path is too long for one call."""
    try:
        return _open_noatime(path, flags)[0]
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG or not _OPENS_AT:
            raise
    return _open_in_pieces(path, flags)


def _open_in_pieces(path: bytes, flags: int) -> int:
    """Open ``path`` as successive pieces of whole names of at most about :data:`_PIECE_BYTES` bytes.

    Each piece is resolved as the kernel resolves a path (a name longer than NAME_MAX still fails with
    ``ENAMETOOLONG``); ``flags`` apply to the last piece only, as they would to a whole-path open, so
    ``O_NOFOLLOW`` still refuses a final symbolic link. One descriptor at a time is held.
    """
    names = path.split(os.sep.encode())
    pieces: list[bytes] = []
    for name in names:
        if pieces and len(pieces[-1]) + 1 + len(name) <= _PIECE_BYTES:
            pieces[-1] += os.sep.encode() + name
        else:
            pieces.append(name)
    if pieces and pieces[0] == b"":  # an absolute path: names[0] was the empty name before the root
        pieces[0] = os.sep.encode()
    fd: int | None = None
    try:
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            if last:
                opened = _open_noatime(piece, flags, fd)[0]
            else:
                opened = os.open(piece, _PIECE_FLAGS, dir_fd=fd)
            if fd is not None:
                os.close(fd)
            fd = opened
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise
    assert fd is not None
    return fd


# --------------------------------------------------------------------------------------------------
# Display


def display_path(path: bytes) -> tuple[str, str | None]:
    """Text for showing ``path``, and the hex of its raw bytes when the text cannot carry them exactly.

    The text is ``path`` decoded as UTF-8, with undecodable bytes shown as ``\\xNN``. ``raw_hex`` is
    ``None`` when ``path`` is valid UTF-8 (the text is then exact), else the hex of the raw bytes, so a
    report keeps the true name. A ``str`` or path-like is first encoded with :func:`os.fsencode`.
    """
    raw = bytes(path) if isinstance(path, (bytes, bytearray, memoryview)) else _fsencode(path)
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace"), raw.hex()


def path_inside(
    path: str | os.PathLike[str], roots: Sequence[str | bytes | os.PathLike[str] | os.PathLike[bytes]]
) -> str | None:
    """The root (as given, decoded) that ``path`` is, or lies inside, after resolving links; ``None``
    if none. A root may be a directory or a single file: an output path equal to an evidence file
    counts as inside it, so no command ever writes over evidence."""
    real = os.path.realpath(path)
    for root in roots:
        real_root = os.path.realpath(os.fsdecode(root))
        if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep):
            return os.fsdecode(root)
    return None
