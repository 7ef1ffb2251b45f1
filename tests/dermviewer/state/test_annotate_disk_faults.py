"""The annotation project on a real read-only file system and a real full disk: a small tmpfs is mounted for
each test (remounted read-only, or filled to the last byte), so the refusals come from the kernel, not from
a pragma that imitates it (tests run as root, and chmod does not stop root's writes; a read-only mount does).

Each test checks the store names the file and the cause, that the session, review and export layers report
it instead of crashing, and that everything saved before is there after remounting read-write and reopening
(integrity check on opening), with the refused edit absent as a whole. Where mounting is not permitted (not
root, no CAP_SYS_ADMIN, not Linux) the tests skip and say why; the simulated variant in
test_annotate_store.py still runs there.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from dermviewer.state.annotate import (
    IMPORT,
    OUTLINE,
    Edit,
    Outline,
    ProjectError,
    ProjectWriteError,
    export_manifest,
    import_manifest,
    open_store,
)
from dermviewer.state.annotate.reviewing import ReviewQueue
from dermviewer.state.annotate.session import AnnotateSession
from engine.taxonomy import load_taxonomy
from tests.dermviewer.state.test_annotate_store import assert_audit_matches, small_manifest

TAX = load_taxonomy("pad_ufes_20")
_NOT_PERMITTED = ("permission denied", "not permitted", "must be superuser", "only root")


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@dataclass
class Ramdisk:
    path: Path

    def remount(self, *, read_only: bool) -> None:
        """A file open for writing on it makes the kernel refuse (EBUSY): close stores' connections first."""
        r = _mount("-o", f"remount,{'ro' if read_only else 'rw'}", str(self.path))
        assert r.returncode == 0, f"remount {'ro' if read_only else 'rw'} failed: {r.stderr.strip()}"

    def fill(self) -> Path:
        """Write a file until the disk refuses another byte (ENOSPC); it is the space :meth:`free` gives back."""
        filler = self.path / "filler"
        block = b"\0" * 4096
        with filler.open("wb", buffering=0) as f:
            for chunk in (block, b"\0" * 512, b"\0" * 64, b"\0"):  # down to the last partial block
                with pytest.raises(OSError) as full:  # noqa: PT012 - writing until the disk refuses is the point
                    while True:
                        f.write(chunk)
                assert full.value.errno == errno.ENOSPC, full.value
        return filler

    def free(self) -> int:
        return shutil.disk_usage(self.path).free


@pytest.fixture
def ramdisk(tmp_path: Path) -> Iterator[Callable[[str], Ramdisk]]:
    """``ramdisk("2m")`` mounts a tmpfs of that size; unmounted (lazily, if a test left a file open) at the end."""
    mounted: list[Path] = []

    def make(size: str) -> Ramdisk:
        if sys.platform != "linux":
            pytest.skip(f"a tmpfs is mounted only on Linux (this is {sys.platform})")
        if shutil.which("mount") is None:
            pytest.skip("no mount command here: cannot make a real read-only or full file system")
        where = tmp_path / f"disk{len(mounted)}"
        where.mkdir()
        r = _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where))
        if r.returncode != 0:
            why = r.stderr.strip() or f"exit {r.returncode}"
            if os.geteuid() != 0 or any(s in why.lower() for s in _NOT_PERMITTED):
                pytest.skip(f"mounting a tmpfs is not permitted here ({why}): real read-only / full-disk tests "
                            "skipped, the simulated ones in test_annotate_store.py still run")
            pytest.fail(f"mount -t tmpfs failed for another reason than permission: {why}")
        mounted.append(where)
        return Ramdisk(where)

    yield make
    for where in reversed(mounted):
        r = subprocess.run(["umount", str(where)], capture_output=True, text=True, check=False)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=False)
            pytest.fail(f"{where} was still busy at the end of the test (a store left open?): {r.stderr.strip()}")


def _project(disk: Ramdisk, tmp_path: Path) -> tuple[Path, list[str]]:
    """A project of 12 real photos on the disk, with one edit of alice's and one of carol's saved."""
    path = disk.path / "p.dvproj"
    store = open_store(path, TAX, create=True)
    import_manifest(store, small_manifest(tmp_path / "src"), masks=False)
    k = [p.key for p in store.photos()]
    store.apply([Edit(k[0], "disease", "MEL")], "alice")
    store.apply([Edit(k[3], "disease", "SCC" if store.value(k[3], "disease", IMPORT) != "SCC" else "BCC")], "carol")
    store.close()
    return path, k


def _big_outline() -> str:
    return Outline.from_mask(np.random.default_rng(0).random((600, 600)) > 0.5).to_json()  # ~110 kB


def _check_intact(path: Path, k: list[str]) -> None:
    """Everything saved before is there, the refused edit of photo 1 is absent as a whole, the log matches."""
    again = open_store(path)  # runs PRAGMA integrity_check
    assert again.value(k[0], "disease", "alice") == "MEL"
    assert again.value(k[1], "disease", "alice") == again.value(k[1], "disease", IMPORT)
    assert again.outline(k[1], "alice") == again.outline(k[1], IMPORT)
    assert [e.owner for e in again.audit()].count("alice") == 1
    assert_audit_matches(again)
    again.close()


def test_a_disk_turning_read_only_refuses_edits_clearly_and_keeps_saved_ones(ramdisk, tmp_path: Path) -> None:
    disk = ramdisk("4m")
    path, k = _project(disk, tmp_path)
    store = open_store(path)
    session = AnnotateSession(store, "alice")
    review = ReviewQueue(store, "carol", "bob")
    assert review.current is not None
    store.engine.dispose()  # the pool lets go of the file, else the kernel refuses the remount (EBUSY)
    disk.remount(read_only=True)
    with pytest.raises(OSError) as refused:
        (disk.path / "probe").write_bytes(b"x")
    assert refused.value.errno == errno.EROFS  # the kernel refuses, also to root

    with pytest.raises(ProjectWriteError, match="read-only") as info:
        store.apply([Edit(k[1], "disease", "SCC"), Edit(k[1], OUTLINE, _big_outline())], "alice")
    assert info.value.path == path and str(path) in str(info.value) and "saved edits are intact" in str(info.value)
    assert store.value(k[0], "disease", "alice") == "MEL"  # reading goes on
    session.go(1)
    assert not session.set_value("disease", "SCC")
    assert session.save_state == "error" and "read-only" in session.save_detail and session.value("disease") != "SCC"
    assert session.undo() == [] and session.save_state == "error"
    problems: list[str] = []
    review.failed.connect(problems.append)
    assert not review.accept() and problems and "read-only" in problems[0] and str(path) in problems[0]
    with pytest.raises(ProjectWriteError, match="cannot write") as exported:
        export_manifest(store, "alice", disk.path / "export" / "manifest.csv")
    assert exported.value.path == disk.path / "export" / "manifest.csv"
    store.close()

    ro = open_store(path)  # the project opens on the read-only disk, for reading, and refuses edits clearly
    assert ro.value(k[0], "disease", "alice") == "MEL"
    with pytest.raises(ProjectWriteError, match="read-only"):
        ro.apply([Edit(k[2], "disease", "SCC")], "alice")
    ro.close()

    disk.remount(read_only=False)
    _check_intact(path, k)
    again = open_store(path)
    again.apply([Edit(k[1], "disease", "SCC")], "alice")  # once writable, the same edit saves
    assert len(ReviewQueue(again, "carol", "bob").entries) == 1  # the refused decision was not recorded
    again.close()
    final = open_store(path)
    assert final.value(k[1], "disease", "alice") == "SCC"
    final.close()


def test_a_project_closed_cleanly_opens_read_only_as_a_snapshot(ramdisk, tmp_path: Path) -> None:
    """No -wal/-shm beside the file (a clean close folds them in): SQLite alone cannot read a WAL file on a
    read-only disk ('unable to open database file'); the store opens it as an immutable snapshot."""
    disk = ramdisk("4m")
    path, k = _project(disk, tmp_path)
    assert sorted(p.name for p in disk.path.iterdir()) == ["p.dvproj"]
    disk.remount(read_only=True)
    plain = sqlite3.connect(path)
    with pytest.raises(sqlite3.OperationalError, match="unable to open"):
        plain.execute("SELECT count(*) FROM photos").fetchone()
    plain.close()
    ro = open_store(path)
    assert ro.value(k[0], "disease", "alice") == "MEL" and len(ro.photos()) == 12
    with pytest.raises(ProjectWriteError, match="read-only") as info:
        ro.apply([Edit(k[1], "disease", "SCC")], "alice")
    assert info.value.path == path
    ro.close()
    disk.remount(read_only=False)
    _check_intact(path, k)


def test_unfolded_edits_on_a_read_only_disk_are_an_error_not_an_older_view(ramdisk, tmp_path: Path) -> None:
    """A -wal holding edits and no -shm (a copy taken while the project was open, the -shm left behind):
    an immutable snapshot would silently lack those edits, so opening says what to do instead."""
    disk = ramdisk("4m")
    path, k = _project(disk, tmp_path)
    store = open_store(path)
    store.apply([Edit(k[2], "disease", "NEV" if store.value(k[2], "disease", IMPORT) != "NEV" else "ACK")], "alice")
    copy = disk.path / "copy.dvproj"
    shutil.copyfile(path, copy)
    shutil.copyfile(path.with_name("p.dvproj-wal"), copy.with_name("copy.dvproj-wal"))
    assert copy.with_name("copy.dvproj-wal").stat().st_size > 0
    store.close()
    disk.remount(read_only=True)
    with pytest.raises(ProjectError, match=r"copy\.dvproj-wal") as info:
        open_store(copy)
    assert info.value.path == copy and "where it can be written" in str(info.value)
    disk.remount(read_only=False)
    fixed = open_store(copy)  # writable again: SQLite folds the -wal in, the edit is there
    assert fixed.value(k[2], "disease", "alice") != fixed.value(k[2], "disease", IMPORT)
    fixed.close()


def test_a_full_disk_refuses_edits_clearly_keeps_saved_ones_and_saves_once_space_is_freed(
        ramdisk, tmp_path: Path) -> None:
    disk = ramdisk("4m")
    path, k = _project(disk, tmp_path)
    store = open_store(path)
    session = AnnotateSession(store, "alice")
    first_export = export_manifest(store, "alice", disk.path / "export" / "manifest.csv")
    exported = first_export.read_bytes()
    filler = disk.fill()
    assert disk.free() == 0

    with pytest.raises(ProjectWriteError, match="full") as info:
        store.apply([Edit(k[1], "disease", "SCC"), Edit(k[1], OUTLINE, _big_outline())], "alice")
    assert info.value.path == path and str(path) in str(info.value) and "saved edits are intact" in str(info.value)
    session.go(1)
    assert not session.set_outline(Outline.from_json(_big_outline()))
    assert session.save_state == "error" and "full" in session.save_detail
    with pytest.raises(ProjectWriteError, match="cannot write") as refused:
        export_manifest(store, "alice", first_export)
    assert refused.value.path == first_export
    assert first_export.read_bytes() == exported  # the export is the old file, whole
    assert sorted(p.name for p in first_export.parent.iterdir()) == ["manifest.csv"]  # no temporary left
    assert store.value(k[0], "disease", "alice") == "MEL"  # reading goes on
    store.close()
    _check_intact(path, k)  # also while the disk is still full

    filler.unlink()
    again = open_store(path)
    assert again.apply([Edit(k[1], "disease", "SCC"), Edit(k[1], OUTLINE, _big_outline())], "alice") is not None
    again.close()
    final = open_store(path)
    assert final.value(k[1], "disease", "alice") == "SCC" and final.outline(k[1], "alice") is not None
    assert final.value(k[0], "disease", "alice") == "MEL"
    assert_audit_matches(final)
    final.close()
