"""A file swapped between the walk and the read: the read never follows it out of the tree.

Evidence is walked first and read later (by another process, perhaps minutes later). Whatever is put
in a listed file's place meanwhile (a symbolic link to a file outside the tree, a FIFO, a link in
place of a directory on the way), :func:`matcher.files.read_entry` never reads anything but the file
the walk listed, and says why in words like the walk's own. All data is synthetic, under tmp_path.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from matcher import files
from matcher.errors import NotAFileError
from matcher.files import Entry, read_entry, read_file, walk

pytestmark = pytest.mark.skipif(os.name != "posix" or not hasattr(os, "O_NOFOLLOW"), reason="POSIX links")

SECRET = b"outside the evidence tree: must never be read under an evidence name"


@pytest.fixture()
def world(tmp_path: Path) -> tuple[Path, Path]:
    """An evidence tree with one file (and one in a subdirectory), and a file outside it."""
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.jpg").write_bytes(b"evidence a")
    (tree / "sub" / "b.jpg").write_bytes(b"evidence b")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "b.jpg").write_bytes(SECRET)
    (outside / "secret.jpg").write_bytes(SECRET)
    return tree, outside


def entry_for(tree: Path, name: str) -> Entry:
    wanted = os.fsencode(tree / name)
    (entry,) = [e for e in walk([tree]) if e.path == wanted]
    assert entry.kind == "file"
    return entry


def swap_for_link(path: Path, target: Path) -> None:
    path.unlink()
    os.symlink(target, path)


def never_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record every os.read the files module makes (none may happen on a refused file)."""
    reads: list[int] = []
    real_read = os.read

    def read(fd: int, n: int) -> bytes:
        reads.append(fd)
        return real_read(fd, n)

    monkeypatch.setattr(files.os, "read", read)
    return reads


def test_file_swapped_for_a_link_out_of_the_tree_is_not_followed(world, monkeypatch) -> None:
    tree, outside = world
    entry = entry_for(tree, "a.jpg")
    swap_for_link(tree / "a.jpg", outside / "secret.jpg")
    reads = never_reads(monkeypatch)
    with pytest.raises(NotAFileError) as caught:
        read_entry(entry, keep=True)
    message = str(caught.value)
    assert message == f"{tree / 'a.jpg'}: symbolic link (to '{outside / 'secret.jpg'}'), not followed"
    assert reads == []


def test_link_swapped_in_after_the_look_is_refused_by_the_open(world, monkeypatch) -> None:
    """The swap lands between the lstat and the open: O_NOFOLLOW refuses it, nothing is read."""
    tree, outside = world
    entry = entry_for(tree, "a.jpg")
    stale = os.lstat(tree / "a.jpg")  # what a look made just before the swap saw
    swap_for_link(tree / "a.jpg", outside / "secret.jpg")
    real_lstat = os.lstat
    looks: list[bytes] = []

    def stale_lstat(path, *args, **kwargs):  # the whole path, or its last name in an open directory
        if os.fsencode(path) in (entry.path, b"a.jpg") and not looks:
            looks.append(entry.path)
            return stale
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(files.os, "lstat", stale_lstat)
    reads = never_reads(monkeypatch)
    with pytest.raises(NotAFileError, match=r"a\.jpg: symbolic link \(to '.*secret\.jpg'\), not followed$"):
        read_entry(entry, keep=True)
    assert looks and reads == []


def test_fifo_swapped_in_after_the_look_is_opened_without_blocking_and_not_read(world, monkeypatch) -> None:
    tree, _ = world
    entry = entry_for(tree, "a.jpg")
    stale = os.lstat(tree / "a.jpg")
    (tree / "a.jpg").unlink()
    os.mkfifo(tree / "a.jpg")
    real_lstat = os.lstat
    monkeypatch.setattr(
        files.os,
        "lstat",
        lambda p, *a, **k: stale if os.fsencode(p) in (entry.path, b"a.jpg") else real_lstat(p, *a, **k),
    )
    reads = never_reads(monkeypatch)
    with pytest.raises(NotAFileError, match=r"not a regular file \(fifo\)"):
        read_entry(entry)  # O_NONBLOCK: opening a FIFO with no writer returns at once
    assert reads == []


def test_directory_on_the_way_swapped_for_a_link_is_not_followed(world, monkeypatch) -> None:
    """O_NOFOLLOW guards the last name only: the path is resolved name by name below the given root."""
    tree, outside = world
    entry = entry_for(tree, "sub/b.jpg")
    (tree / "sub").rename(tree / "sub.moved")
    os.symlink(outside, tree / "sub")  # tree/sub/b.jpg now names outside/b.jpg
    reads = never_reads(monkeypatch)
    with pytest.raises(NotAFileError) as caught:
        read_entry(entry, keep=True)
    assert (
        str(caught.value)
        == f"{tree / 'sub/b.jpg'}: 'sub' on its path is a symbolic link (to '{outside}'), not followed"
    )
    assert reads == []


def test_a_given_directory_that_is_a_link_is_followed_below_it_nothing_is(world, tmp_path) -> None:
    tree, outside = world
    os.symlink(tree, tmp_path / "named")  # the user names a link to the tree: the walk follows it
    entry = next(e for e in walk([tmp_path / "named"]) if e.path.endswith(b"/sub/b.jpg"))
    assert read_entry(entry, keep=True).data == b"evidence b"
    (tree / "sub").rename(tree / "sub.moved")
    os.symlink(outside, tree / "sub")
    with pytest.raises(NotAFileError, match=r"'sub' on its path is a symbolic link"):
        read_entry(entry, keep=True)


def test_file_replaced_by_another_regular_file_is_read(world) -> None:
    """A file saved anew (a new inode, as editors save) is still a file in the tree: read, not refused."""
    tree, _ = world
    entry = entry_for(tree, "sub/b.jpg")
    (tree / "sub" / "b.new").write_bytes(b"saved anew")
    os.replace(tree / "sub" / "b.new", tree / "sub" / "b.jpg")
    assert read_entry(entry, keep=True).data == b"saved anew"


def test_an_entry_made_by_hand_is_read_without_following_links(world) -> None:
    tree, outside = world
    swap_for_link(tree / "a.jpg", outside / "secret.jpg")
    with pytest.raises(NotAFileError, match=r"symbolic link \(to '.*secret\.jpg'\), not followed$"):
        read_entry(Entry(os.fsencode(tree / "a.jpg"), "file", 10))


def test_file_rewritten_in_place_is_read_and_said_to_have_changed_size(world) -> None:
    tree, _ = world
    entry = entry_for(tree, "a.jpg")
    (tree / "a.jpg").write_bytes(b"rewritten in place, longer")
    result = read_entry(entry, keep=True)
    assert result.data == b"rewritten in place, longer" and result.size != entry.size


def test_link_the_user_named_is_still_followed(world) -> None:
    """A path given to the walk is followed by the walk, so its read follows it too."""
    tree, outside = world
    os.symlink(outside / "secret.jpg", tree.parent / "named.jpg")
    (entry,) = list(walk([tree.parent / "named.jpg"]))
    result = read_entry(entry, keep=True)
    assert result.data == SECRET
    assert result.digests.sha256 == hashlib.sha256(SECRET).hexdigest()


def test_read_entry_refuses_entries_that_are_not_files_without_touching_them(world, monkeypatch) -> None:
    tree, outside = world
    os.symlink(outside / "secret.jpg", tree / "link.jpg")
    (link,) = [e for e in walk([tree]) if e.kind == "symlink"]
    monkeypatch.setattr(files.os, "open", lambda *a, **k: pytest.fail("opened"))
    with pytest.raises(NotAFileError, match=r"link\.jpg: symbolic link \(to '.*secret\.jpg'\), not followed$"):
        read_entry(link)
    assert link.not_read() == (True, str(link.error))  # a scan reports it skipped, as it reports this


def test_read_file_without_following(world) -> None:
    tree, outside = world
    os.symlink(outside / "secret.jpg", tree / "link.jpg")
    assert read_file(tree / "link.jpg").data is None  # followed by default: a path the user named
    with pytest.raises(NotAFileError, match=r"link\.jpg: symbolic link \(to '.*secret\.jpg'\), not followed$"):
        read_file(tree / "link.jpg", follow_symlinks=False)
    assert read_file(tree / "a.jpg", follow_symlinks=False, keep=True).data == b"evidence a"


# --- past PATH_MAX: the file's directory is opened a piece at a time -----------------------------


@pytest.fixture()
def deep(tmp_path: Path) -> Iterator[tuple[bytes, bytes, int]]:
    """A directory deeper than PATH_MAX holding ``f.jpg``; yields its path, the file's path and an open
    descriptor of the directory (to change it relative to, as no whole-path call reaches it)."""
    name = b"d" * 200
    made: list[bytes] = []
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(25):  # 25 x 201 bytes: past Linux's 4096 and macOS's 1024
            os.mkdir(name, dir_fd=fd)
            made.append(name)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        file_fd = os.open(b"f.jpg", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(file_fd, b"deep evidence")
        os.close(file_fd)
        directory = os.fsencode(tmp_path) + b"".join(b"/" + n for n in made)
        yield directory, directory + b"/f.jpg", fd
    finally:
        for name_at in ("f.jpg",):
            try:
                os.unlink(name_at, dir_fd=fd)
            except FileNotFoundError:
                pass
        os.close(fd)
        parent = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
        handles = [parent]
        for n in made[:-1]:
            handles.append(os.open(n, os.O_RDONLY | os.O_DIRECTORY, dir_fd=handles[-1]))
        for handle, n in zip(reversed(handles), reversed(made)):
            os.rmdir(n, dir_fd=handle)
            os.close(handle)


def test_past_path_max_a_swapped_link_is_not_followed(deep, world) -> None:
    _, path, fd = deep
    _, outside = world
    with pytest.raises(OSError) as too_long:
        os.lstat(path)
    assert too_long.value.errno == errno.ENAMETOOLONG  # the case under test: no whole-path call works
    (entry,) = [e for e in walk([outside.parent]) if e.path == path]
    assert read_entry(entry, keep=True).data == b"deep evidence"
    assert read_file(path, keep=True, follow_symlinks=False).data == b"deep evidence"  # in pieces
    os.unlink(b"f.jpg", dir_fd=fd)
    os.symlink(os.fsencode(outside / "secret.jpg"), b"f.jpg", dir_fd=fd)
    assert stat.S_ISLNK(os.lstat(b"f.jpg", dir_fd=fd).st_mode)
    for read in (lambda: read_entry(entry, keep=True), lambda: read_file(path, keep=True, follow_symlinks=False)):
        with pytest.raises(NotAFileError, match=r"f\.jpg: symbolic link \(to '.*secret\.jpg'\), not followed$"):
            read()


def test_walk_does_not_list_a_directory_swapped_for_a_link_during_the_walk(world) -> None:
    """Listed after its parent, a directory swapped for a link meanwhile is reported, not listed."""
    tree, outside = world
    (tree / "sub" / "deeper").mkdir()
    (tree / "sub" / "deeper" / "c.jpg").write_bytes(b"evidence c")
    (outside / "deeper").mkdir()
    (outside / "deeper" / "c.jpg").write_bytes(SECRET)
    walking = walk([tree])
    first = next(walking)
    assert first.path == os.fsencode(tree / "a.jpg")  # tree is listed; sub/ and its tree are still to come
    (tree / "sub").rename(tree / "sub.moved")
    os.symlink(outside, tree / "sub")
    rest = list(walking)
    assert [(e.path, e.kind) for e in rest] == [(os.fsencode(tree / "sub"), "symlink")]
    assert rest[0].error == f"symbolic link (to '{outside}'), not followed"
    assert rest[0].not_read()[0]  # skipped, as links met by the walk are


def test_walk_does_not_list_through_a_directory_on_the_way_swapped_for_a_link(world) -> None:
    tree, outside = world
    (tree / "sub" / "deeper").mkdir()
    (tree / "sub" / "deeper" / "c.jpg").write_bytes(b"evidence c")
    (outside / "deeper").mkdir()
    (outside / "deeper" / "c.jpg").write_bytes(SECRET)
    walking = walk([tree])
    assert [next(walking).path for _ in range(2)] == [os.fsencode(tree / "a.jpg"), os.fsencode(tree / "sub/b.jpg")]
    (tree / "sub").rename(tree / "sub.moved")  # sub is listed; sub/deeper is still to come
    os.symlink(outside, tree / "sub")
    rest = list(walking)
    assert [(e.path, e.kind) for e in rest] == [(os.fsencode(tree / "sub/deeper"), "symlink")]
    assert rest[0].error == f"'sub' on its path is a symbolic link (to '{outside}'), not followed"
