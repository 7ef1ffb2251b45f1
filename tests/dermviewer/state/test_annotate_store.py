"""The annotation store, the same tests on SQLite and on a real PostgreSQL server (started here), plus the
SQLite-only guarantees: bad files, migrations from version 1, read-only / full disk, two processes."""

from __future__ import annotations

import contextlib
import csv
import glob
import json
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from dermviewer.state.annotate import (
    IMPORT,
    OUTLINE,
    UNUSABLE,
    Edit,
    Outline,
    ProjectError,
    ProjectWriteError,
    SqlAnnotationStore,
    export_manifest,
    export_outlines,
    import_manifest,
    open_store,
)
from dermviewer.state.annotate import schema as S
from dermviewer.state.annotate.review import cohen_kappa, outline_dice, pending_changes, review_change
from engine.masks import load_mask
from engine.taxonomy import load_taxonomy
from tests.dermviewer.conftest import DATA

ROOT = Path(__file__).resolve().parents[3]
TAX = load_taxonomy("pad_ufes_20")
N_PHOTOS = 12


def small_manifest(folder: Path, n: int = N_PHOTOS) -> Path:
    """The first ``n`` rows of the shared manifest, images as absolute paths, masks/ linked beside it."""
    with (DATA / "manifest.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        rows, cols = list(reader)[:n], list(reader.fieldnames or [])
    folder.mkdir(parents=True, exist_ok=True)
    for r in rows:
        r["image"] = str(DATA / r["image"])
    out = folder / "manifest.csv"
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    if not (folder / "masks").exists():
        (folder / "masks").symlink_to(DATA / "masks")
    return out


# -- PostgreSQL: Debian's server under a temporary directory, as the postgres user -------------------------
def _pg_bin() -> Path | None:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(d, "initdb").is_file():
            return Path(d)
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def _install_pg() -> str | None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "PostgreSQL is not installed and this user cannot apt-get it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "install", "-y", "-qq", "postgresql"], ["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "postgresql"]):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
        if cmd[1] == "install" and r.returncode == 0:
            return None
    return f"apt-get install postgresql failed: {r.stderr.strip()[-300:]}"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URL of a private PostgreSQL server (skipped, with the reason printed, only where none can run)."""
    bindir = _pg_bin()
    if bindir is None:
        problem = _install_pg()
        bindir = _pg_bin()
        if bindir is None:
            print(f"SKIP PostgreSQL: {problem}")
            pytest.skip(f"PostgreSQL back end not tested: {problem}")
    run_as: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="dv-pg-"))
    if os.geteuid() == 0:  # initdb refuses root
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            print("SKIP PostgreSQL: running as root and there is no 'postgres' user")
            pytest.skip("PostgreSQL back end not tested: root without a 'postgres' user")
        os.chown(folder, pw.pw_uid, pw.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data = folder / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opts = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    for cmd in ([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "dv", "-E", "UTF8", "--no-sync"],
                [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-o", opts, "-w", "start"]):
        r = subprocess.run([*run_as, *cmd], capture_output=True, text=True, check=False)
        if r.returncode != 0:
            log = (folder / "log").read_text(errors="replace")[-500:] if (folder / "log").exists() else ""
            shutil.rmtree(folder, ignore_errors=True)
            problem = f"{Path(cmd[0]).name} failed: {(r.stderr or r.stdout).strip()[-500:]} {log}"
            print(f"SKIP PostgreSQL: {problem}")
            pytest.skip(f"PostgreSQL back end not tested: {problem}")
    try:
        yield f"postgresql+psycopg://dv@127.0.0.1:{port}"
    finally:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       check=False, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], SqlAnnotationStore]]:
    """Makes empty projects on the parametrised back end."""
    made: list[SqlAnnotationStore] = []
    if request.param == "sqlite":
        def make() -> SqlAnnotationStore:
            made.append(open_store(tmp_path / f"p{len(made)}.dvproj", TAX, create=True))
            return made[-1]
    else:
        server = request.getfixturevalue("pg_server")
        admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")

        def make() -> SqlAnnotationStore:
            name = f"dv_{uuid.uuid4().hex[:12]}"
            with admin.connect() as conn:
                conn.exec_driver_sql(f"CREATE DATABASE {name}")
            made.append(open_store(f"{server}/{name}", TAX, create=True))
            return made[-1]
    yield make
    for s in made:
        s.close()


@pytest.fixture
def project(new_store, tmp_path: Path) -> SqlAnnotationStore:
    store = new_store()
    report = import_manifest(store, small_manifest(tmp_path / "src"))
    assert report.added == N_PHOTOS and not report.missing_photos and not report.invalid_labels
    return store


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def assert_audit_matches(store: SqlAnnotationStore) -> None:
    """The latest audit row of every (photo, owner, field) holds the stored value (outlines: its summary)."""
    last: dict[tuple[str, str, str], str] = {}
    for e in store.audit():
        last[(e.key, e.owner, e.field)] = e.new
    for (key, owner, field), new in last.items():
        value = store.value(key, field, owner)
        if field == OUTLINE and value:
            value = Outline.from_json(value).summary()
        assert value == new, (key, owner, field)


# -- both back ends -----------------------------------------------------------------------------------------
def test_import_gives_the_manifest_labels_and_masks(project: SqlAnnotationStore) -> None:
    src = _rows(DATA / "manifest.csv")[:N_PHOTOS]
    photos = project.photos()
    assert [p.key for p in photos] == [r["img_id"] for r in src]
    assert all(p.sha256 == r["sha256"] for p, r in zip(photos, src, strict=True))  # content hash of the JPEG
    values = project.values("alice")
    for r in src:
        v = values[r["img_id"]]
        assert v["disease"] == r["diagnosis_code"] and v["body_part"] == r["body_part"]
        assert [v[f"attr:{a}"] for a in ("itch", "grew", "hurt", "changed", "bleed", "elevation")] == [
            r[a] for a in ("itch", "grew", "hurt", "changed", "bleed", "elevation")]
    outlines = project.outlines("alice")
    with_mask = [r for r in src if (DATA / "masks" / (Path(r["image"]).stem + ".png")).is_file()]
    assert len(outlines) == len(with_mask) > 0
    r = with_mask[0]
    mask = load_mask(DATA / "masks" / (Path(r["image"]).stem + ".png"))
    assert np.array_equal(outlines[r["img_id"]].mask(), mask)
    assert_audit_matches(project)


def test_edit_undo_redo_survive_reopening(project: SqlAnnotationStore) -> None:
    k = [p.key for p in project.photos()]
    before = project.value(k[0], "disease", "alice")
    new = "MEL" if before != "MEL" else "NEV"
    project.apply([Edit(k[0], "disease", new)], "alice", label="disease")
    project.apply([Edit(k[1], "disease", "SCC"), Edit(k[2], "disease", "SCC")], "alice", label="bulk")
    assert project.value(k[0], "disease", "alice") == new
    assert project.value(k[0], "disease", "bob") == before  # labels are per annotator
    assert project.history("alice") == (["disease", "bulk"], 2)
    again = open_store(project.location) if project.file is None else open_store(project.file)
    try:
        assert {e.key for e in again.undo("alice")} == {k[1], k[2]}  # the bulk step undoes as one
        assert again.value(k[1], "disease", "alice") == project.value(k[1], "disease", IMPORT)
        assert again.history("alice") == (["disease", "bulk"], 1)
        assert again.redo("alice")[0].value == "SCC"
        again.undo("alice")
        again.undo("alice")
        assert again.value(k[0], "disease", "alice") == before
        assert again.undo("alice") == []
        again.redo("alice")
        again.apply([Edit(k[3], "body_part", "hand")], "alice", label="body")  # a new edit drops the redo tail
        assert again.history("alice") == (["disease", "body"], 2)
        assert again.redo("alice") == []
        assert_audit_matches(again)
    finally:
        again.close()


def test_invalid_edits_are_refused_and_nothing_is_written(project: SqlAnnotationStore) -> None:
    k = project.photos()[0].key
    n = len(project.audit())
    with pytest.raises(ValueError, match="not a choice"):
        project.apply([Edit(k, "body_part", "hand"), Edit(k, "disease", "XYZ")], "alice")
    with pytest.raises(KeyError):
        project.apply([Edit(k, "body_part", "hand"), Edit("no-such-photo", "disease", "MEL")], "alice")
    with pytest.raises(ValueError, match="no field"):
        project.apply([Edit(k, "colour", "red")], "alice")
    assert len(project.audit()) == n
    same = Edit(k, "disease", project.value(k, "disease", "alice"))
    assert project.apply([same], "alice") == 1 and project.audit(k)[-1].reason == "confirmed"
    assert project.apply([same], "alice") is None  # the annotator already has it: nothing to save


def test_audit_log_is_append_only(project: SqlAnnotationStore) -> None:
    for stmt in (S.audit.update().values(new="forged"), S.audit.delete()):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), project.engine.begin() as conn:
            conn.execute(stmt)
    assert all(e.new != "forged" for e in project.audit())


def test_unusable_and_outline_edits_are_audited_and_undone(project: SqlAnnotationStore) -> None:
    k = project.photos()[0].key
    old = project.outline(k, "alice")
    drawn = Outline.from_polygons([[(10, 10), (60, 12), (55, 70), (12, 50)]], (300, 300))
    assert drawn.box == (10, 10, 61, 71)
    project.apply([Edit(k, OUTLINE, drawn.to_json()), Edit(k, UNUSABLE, "ink marks")], "alice")
    assert project.outline(k, "alice") == drawn and project.values("alice")[k][UNUSABLE] == "ink marks"
    assert project.audit(k)[-1].new == "ink marks" and project.audit(k)[-2].new == drawn.summary()
    project.apply([Edit(k, OUTLINE, "")], "alice")  # erased: hides the imported outline too
    assert project.outline(k, "alice") is None
    project.undo("alice")
    project.undo("alice")
    assert project.outline(k, "alice") == old and project.values("alice")[k].get(UNUSABLE, "") == ""
    assert_audit_matches(project)


def test_export_manifest_and_outlines(project: SqlAnnotationStore, tmp_path: Path) -> None:
    k = [p.key for p in project.photos()]
    project.apply([Edit(k[0], "disease", "MEL"), Edit(k[1], "body_part", "foot"), Edit(k[2], "attr:itch", ""),
                   Edit(k[3], UNUSABLE, "no visible lesion")], "alice")
    out = export_manifest(project, "alice", tmp_path / "out" / "corrected.csv")
    src, got = _rows(DATA / "manifest.csv")[:N_PHOTOS], _rows(out)
    assert list(got[0]) == [*src[0].keys(), "unusable", "unusable_reason"]
    for i, (a, b) in enumerate(zip(src, got, strict=True)):
        assert (out.parent / b["image"]).resolve() == (DATA / a["image"]).resolve()
        changed = {"image", "unusable", "unusable_reason"} | (
            {"diagnosis_code", "diagnosis", "malignant"} if i == 0 else set()) | (
            {"body_part", "body_part_coarse"} if i == 1 else set()) | ({"itch"} if i == 2 else set())
        assert {c: b[c] for c in a if c not in changed} == {c: a[c] for c in a if c not in changed}
    assert (got[0]["diagnosis_code"], got[0]["diagnosis"], got[0]["malignant"]) == ("MEL", "Melanoma", "1")
    assert (got[1]["body_part"], got[1]["body_part_coarse"]) == ("foot", "lower limb")
    assert got[2]["itch"] == "" and (got[3]["unusable"], got[3]["unusable_reason"]) == ("1", "no visible lesion")
    assert {r["unusable"] for i, r in enumerate(got) if i != 3} == {"0"}
    assert not list(out.parent.glob(".*tmp"))  # the temporary file was renamed, not left behind

    folder = export_outlines(project, "alice", tmp_path / "outlines").parent
    coco = json.loads((folder / "annotations.json").read_text())
    assert len(coco["annotations"]) == len(project.outlines("alice")) > 0
    for img, ann in zip(coco["images"], coco["annotations"], strict=True):
        source = load_mask(DATA / "masks" / Path(img["mask"]).name)
        exported = load_mask(folder / img["mask"])
        assert np.array_equal(exported, source)
        ys, xs = np.nonzero(source)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert ann["area"] == int(source.sum())
        from dermviewer.state.annotate.outline import dice, polygon_mask

        poly = [list(zip(s[::2], s[1::2], strict=True)) for s in ann["segmentation"]]
        assert dice(polygon_mask(poly, source.shape), source) > 0.9


def test_review_kappa_and_dice(project: SqlAnnotationStore) -> None:
    k = [p.key for p in project.photos()]
    project.apply([Edit(k[0], "disease", "MEL"), Edit(k[1], "disease", "SCC")], "alice")
    pending = pending_changes(project, "alice", "bob")
    assert sorted(e.key for e in pending) == sorted(k[:2])
    with pytest.raises(ValueError, match="another annotator"):
        review_change(project, pending[0], "alice", accept=True)
    accepted = next(e for e in pending if e.key == k[0])
    rejected = next(e for e in pending if e.key == k[1])
    review_change(project, accepted, "bob", accept=True)
    review_change(project, rejected, "bob", accept=False, comment="typical BCC")
    assert project.value(k[0], "disease", "alice") == "MEL"
    assert project.value(k[1], "disease", "alice") == project.value(k[1], "disease", IMPORT)
    assert project.audit(k[1])[-1].annotator == "bob" and "typical BCC" in project.audit(k[1])[-1].reason
    assert pending_changes(project, "alice", "bob") == []
    assert_audit_matches(project)

    # two annotators label the same 8 photos: diseases agree on 6 of 8
    a = ["ACK", "BCC", "MEL", "NEV", "SCC", "SEK", "ACK", "BCC"]
    b = ["ACK", "BCC", "MEL", "NEV", "SCC", "SEK", "BCC", "ACK"]
    project.apply([Edit(k[i], "disease", v) for i, v in enumerate(a)], "carol")
    project.apply([Edit(k[i], "disease", v) for i, v in enumerate(b)], "dave")
    from sklearn.metrics import cohen_kappa_score

    kappa = cohen_kappa(project, "carol", "dave")
    assert kappa["disease"] == pytest.approx(cohen_kappa_score(a, b)) and kappa["disease"] < 1
    assert kappa["body_part"] is None
    sq1 = Outline.from_box((0, 0, 10, 10), (20, 20))
    sq2 = Outline.from_mask(np.pad(np.ones((10, 5), bool), ((0, 10), (0, 15))))  # half of sq1
    project.apply([Edit(k[0], OUTLINE, sq1.to_json())], "carol")
    project.apply([Edit(k[0], OUTLINE, sq2.to_json())], "dave")
    mean, per = outline_dice(project, "carol", "dave")
    assert per == {k[0]: pytest.approx(2 * 50 / 150)} and mean == pytest.approx(2 / 3)


def test_concurrent_annotators_on_the_same_photos(new_store, tmp_path: Path) -> None:
    """Two annotators save at the same time on the same photos (threads, one connection pool each): every
    change is in the audit log once and the log matches the labels (PostgreSQL: the photo row lock queues
    them; SQLite: BEGIN IMMEDIATE)."""
    import threading

    first = new_store()
    import_manifest(first, small_manifest(tmp_path / "src"), masks=False)
    second = open_store(first.location) if first.file is None else open_store(first.file)
    keys = [p.key for p in first.photos()]
    errors: list[Exception] = []

    def work(store: SqlAnnotationStore, who: str) -> None:
        try:
            for i in range(30):
                store.apply([Edit(keys[i % len(keys)], "disease", ("MEL", "NEV")[i // len(keys) % 2]),
                             Edit(keys[(i + 3) % len(keys)], "attr:hurt", str(i % 2))], who)
        except (sa.exc.SQLAlchemyError, ProjectWriteError, KeyError, ValueError) as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(st, who)) for st, who in ((first, "alice"), (second, "bob"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    second.close()
    assert not errors, errors
    for who in ("alice", "bob"):
        labels, done = first.history(who)
        assert len(labels) == done == 30
    assert_audit_matches(first)


# -- SQLite only --------------------------------------------------------------------------------------------
def test_bad_project_files_raise_typed_errors_naming_the_file(tmp_path: Path) -> None:
    cases: dict[str, bytes | None] = {"missing.dvproj": None, "empty.dvproj": b"", "text.dvproj": b"hello " * 100}
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
    foreign = tmp_path / "foreign.dvproj"
    with sqlite3.connect(foreign) as c:
        c.execute("CREATE TABLE x (a)")
    newer = tmp_path / "newer.dvproj"
    open_store(newer, TAX, create=True).close()
    with sqlite3.connect(newer) as c:
        c.execute("INSERT INTO schema_version VALUES (99, 0)")
    damaged = tmp_path / "damaged.dvproj"
    s = open_store(damaged, TAX, create=True)
    import_manifest(s, small_manifest(tmp_path / "src"), masks=False)
    s.close()
    data = bytearray(damaged.read_bytes())
    page = 4096
    data[3 * page + 8: 3 * page + 400] = os.urandom(392)  # a table page's cells
    damaged.write_bytes(bytes(data))
    expected = {"missing.dvproj": "no such project", "empty.dvproj": "empty file", "text.dvproj": "not an SQLite",
                "foreign.dvproj": "not a DermViewer", "newer.dvproj": "newer DermViewer",
                "damaged.dvproj": "damaged|malformed|not a readable"}
    for name, reason in expected.items():
        with pytest.raises(ProjectError, match=reason) as info:
            open_store(tmp_path / name)
        assert info.value.path == tmp_path / name, name


def test_migrations_from_version_1(tmp_path: Path) -> None:
    path = tmp_path / "v1.dvproj"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:  # a project exactly as version 1 wrote it
        S.MIGRATIONS[0](conn)
        conn.execute(S.schema_version.insert().values(version=1, applied_at=0.0))
        conn.execute(S.label_schema.insert().values(field="disease", head="disease", position=0,
                                                    choices_json=json.dumps([["ACK", "a"], ["MEL", "m"]])))
        conn.execute(S.project_info.insert().values(key="taxonomy", value=json.dumps(TAX.to_dict())))
        conn.exec_driver_sql("INSERT INTO photos (key, path, sha256, size, position, row_json) "
                             "VALUES ('p1', '/x.jpg', 'ab', 1, 1, '{}')")
        conn.exec_driver_sql("INSERT INTO labels VALUES (1, 'import', 'disease', 'ACK', 0)")
    engine.dispose()
    assert "phash" not in {c["name"] for c in sa.inspect(sa.create_engine(f"sqlite:///{path}")).get_columns("photos")}
    store = open_store(path)
    try:
        with store.engine.connect() as conn:
            versions = [r[0] for r in conn.execute(sa.select(S.schema_version.c.version).order_by("version"))]
            insp = sa.inspect(conn)
            assert "phash" in {c["name"] for c in insp.get_columns("photos")} and insp.has_table("reviews")
        assert versions == list(range(1, S.SCHEMA_VERSION + 1))
        assert store.value("p1", "disease", "alice") == "ACK"
        store.apply([Edit("p1", "disease", "MEL")], "alice")
        assert store.undo("alice") == [Edit("p1", "disease", "ACK")]
    finally:
        store.close()
    fresh = open_store(tmp_path / "fresh.dvproj", TAX, create=True)
    fresh_cols = {t: sorted(c["name"] for c in sa.inspect(fresh.engine).get_columns(t)) for t in S.tables}
    migrated = open_store(path)
    assert {t: sorted(c["name"] for c in sa.inspect(migrated.engine).get_columns(t)) for t in S.tables} == fresh_cols
    fresh.close()
    migrated.close()


@pytest.mark.parametrize("problem", ["read-only", "full"])
def test_read_only_or_full_disk_gives_a_clear_error_and_keeps_saved_edits(tmp_path: Path, problem: str) -> None:
    path = tmp_path / "p.dvproj"
    store = open_store(path, TAX, create=True)
    import_manifest(store, small_manifest(tmp_path / "src"), masks=False)
    k = [p.key for p in store.photos()]
    store.apply([Edit(k[0], "disease", "MEL")], "alice")

    @sa.event.listens_for(store.engine, "connect")
    def _limit(dbapi_conn, _rec) -> None:  # as the disk or the file system would refuse
        if problem == "read-only":
            dbapi_conn.execute("PRAGMA query_only=ON")
        else:
            pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
            dbapi_conn.execute(f"PRAGMA max_page_count={pages}")

    store.engine.dispose()
    big = Outline.from_mask(np.random.default_rng(0).random((600, 600)) > 0.5).to_json()  # needs new pages
    with pytest.raises(ProjectWriteError, match=problem) as info:
        store.apply([Edit(k[1], "disease", "SCC"), Edit(k[1], OUTLINE, big)], "alice")
    assert info.value.path == path and "saved edits are intact" in str(info.value)
    store.close()
    if problem == "read-only":  # a read-only project still opens, for reading, and refuses edits clearly
        from dermviewer.state.annotate.store import _sqlite_engine

        engine = _sqlite_engine(path)
        sa.event.listen(engine, "connect", lambda dbapi_conn, _rec: dbapi_conn.execute("PRAGMA query_only=ON"))
        ro = SqlAnnotationStore(engine, str(path), path).open()
        assert ro.value(k[0], "disease", "alice") == "MEL"
        with pytest.raises(ProjectWriteError, match="read-only"):
            ro.apply([Edit(k[2], "disease", "SCC")], "alice")
        ro.close()
    again = open_store(path)
    assert again.value(k[0], "disease", "alice") == "MEL"
    assert again.value(k[1], "disease", "alice") == again.value(k[1], "disease", IMPORT)  # all or nothing
    assert_audit_matches(again)
    again.close()


WRITER = """
import sys
from dermviewer.state.annotate import Edit, open_store
store = open_store(sys.argv[1])
keys = [p.key for p in store.photos()]
codes = ["ACK", "BCC", "MEL", "NEV", "SCC", "SEK"]
who = sys.argv[2]
for i in range(int(sys.argv[3])):
    store.apply([Edit(keys[i % len(keys)], "disease", codes[i % 6]), Edit(keys[(i + 1) % len(keys)], "attr:itch",
                 str(i % 2))], who)
    if i % 10 == 0:
        store.undo(who)
        store.redo(who)
store.close()
"""


def test_two_processes_on_one_project_do_not_corrupt_it(tmp_path: Path) -> None:
    path = tmp_path / "p.dvproj"
    store = open_store(path, TAX, create=True)
    import_manifest(store, small_manifest(tmp_path / "src"), masks=False)
    n_audit = len(store.audit())
    store.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), who, "40"], env=env, stderr=subprocess.PIPE)
             for who in ("alice", "bob")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    store = open_store(path)
    try:
        audit = store.audit()[n_audit:]
        for who in ("alice", "bob"):
            mine = [e for e in audit if e.owner == who]
            assert len([e for e in mine if e.reason == ""]) > 0
            undone = sorted((e.key, e.field, e.old) for e in mine if e.reason == "undo")  # 4 undo + redo pairs
            assert undone and undone == sorted((e.key, e.field, e.new) for e in mine if e.reason == "redo")
        assert_audit_matches(store)
    finally:
        store.close()


def test_connections_contend_without_losing_a_write(tmp_path: Path) -> None:
    """Two stores (two windows) in one process interleave writes; both sets land."""
    path = tmp_path / "p.dvproj"
    a = open_store(path, TAX, create=True)
    import_manifest(a, small_manifest(tmp_path / "src"), masks=False)
    b = open_store(path)
    keys = [p.key for p in a.photos()]
    with contextlib.ExitStack() as stack:
        stack.callback(a.close)
        stack.callback(b.close)
        for i, k in enumerate(keys):
            (a if i % 2 else b).apply([Edit(k, "body_part", "hand")], "alice" if i % 2 else "bob")
        assert sum(1 for e in a.audit() if e.owner != IMPORT and e.new == "hand" and e.old != "hand") == sum(
            1 for k in keys if a.value(k, "body_part", IMPORT) != "hand")
        assert all(b.value(k, "body_part", "alice" if i % 2 else "bob") == "hand" for i, k in enumerate(keys))
