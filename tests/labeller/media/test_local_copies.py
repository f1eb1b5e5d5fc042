"""Local copies of videos on storage without local paths (object storage such as S3)."""

import io
import os
import subprocess
import threading

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage

from labeller.media.files import LocalCopies


class CountingStorage(Storage):
    """Bytes in a dict and no local path, as on S3; counts the files opened."""

    def __init__(self):
        self.files = {}
        self.opened = []

    def _save(self, name, content):
        self.files[name] = content.read()
        return name

    def _open(self, name, mode="rb"):
        self.opened.append(name)
        return ContentFile(self.files[name], name=name)

    def exists(self, name):
        return name in self.files


class BreakingStorage(CountingStorage):
    """Fails part of the way through a read, as a dropped connection does."""

    def _open(self, name, mode="rb"):
        super()._open(name, mode)
        return FailingRead(self.files[name])


class FailingRead(io.BytesIO):
    def read(self, size=-1):
        if self.tell():
            raise OSError("connection reset")
        return super().read(16)


def stored(storage, name, size):
    return storage.save(name, ContentFile(bytes(range(256)) * (size // 256)))


def test_a_file_read_twice_is_copied_once_with_its_bytes(tmp_path):
    storage = CountingStorage()
    name = stored(storage, "videos/a.mp4", 4096)
    copies = LocalCopies(root=tmp_path / "copies", max_bytes=10_000)

    with copies.path(storage, name) as first:
        assert first.read_bytes() == storage.open(name).read()
    with copies.path(storage, name) as second:
        assert second == first

    assert storage.opened.count(name) == 2  # the copy, and the check above; not the second read


def test_the_least_recently_used_copy_is_dropped_past_the_budget_but_never_one_being_read(tmp_path):
    storage = CountingStorage()
    names = [stored(storage, f"videos/{n}.mp4", 4096) for n in "abc"]
    copies = LocalCopies(root=tmp_path / "copies", max_bytes=9000)  # two fit

    with copies.path(storage, names[0]) as a:
        with copies.path(storage, names[1]) as b:
            pass
        with copies.path(storage, names[2]) as c:
            pass
        # Three copies are over the budget: b goes, since a is being read and c is the newest.
        assert a.exists() and not b.exists() and c.exists()
    storage.opened.clear()
    with copies.path(storage, names[0]), copies.path(storage, names[2]):
        pass
    assert storage.opened == []
    with copies.path(storage, names[1]):
        pass
    assert storage.opened == [names[1]]
    # Copying b again dropped a, now the least recently used.
    assert not a.exists() and c.exists()


def test_a_copy_cut_short_is_not_kept(tmp_path):
    storage = BreakingStorage()
    name = stored(storage, "videos/a.mp4", 4096)
    copies = LocalCopies(root=tmp_path / "copies", max_bytes=10_000)

    with pytest.raises(OSError), copies.path(storage, name):
        pass
    assert copies._copies == {}
    assert os.listdir(copies._folder) == []


def test_files_on_disk_are_read_in_place(tmp_path):
    storage = FileSystemStorage(location=tmp_path)
    name = stored(storage, "videos/a.mp4", 1024)
    copies = LocalCopies(root=tmp_path / "copies", max_bytes=10_000)

    with copies.path(storage, name) as path:
        assert path == tmp_path / name
    assert copies._folder is None


def test_readers_in_threads_share_one_copy(tmp_path):
    storage = CountingStorage()
    name = stored(storage, "videos/a.mp4", 64 * 1024)
    copies = LocalCopies(root=tmp_path / "copies", max_bytes=10**6)
    seen = []

    def read():
        with copies.path(storage, name) as path:
            seen.append(path.read_bytes())

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 4 and all(data == seen[0] for data in seen)
    assert len(copies._copies) == 1
    assert len(os.listdir(copies._folder)) == 1


def test_copies_left_by_a_dead_process_are_removed_and_a_forked_child_makes_its_own(tmp_path):
    storage = CountingStorage()
    name = stored(storage, "videos/a.mp4", 4096)
    root = tmp_path / "copies"
    finished = subprocess.Popen(["true"])
    finished.wait()  # reaped: its number belongs to no process now
    leftover = root / str(finished.pid)
    leftover.mkdir(parents=True)
    (leftover / "old.mp4").write_bytes(b"x" * 100)
    (root / "notes").mkdir()  # not a process's: left alone
    copies = LocalCopies(root=root, max_bytes=10_000)

    with copies.path(storage, name) as path:
        pass
    assert path.parent == root / str(os.getpid())
    assert not leftover.exists() and (root / "notes").exists()

    copies._owner = -1  # as in a child forked after its parent made copies
    with copies.path(storage, name) as again:
        assert again.read_bytes() == storage.files[name]
    assert storage.opened.count(name) == 2
