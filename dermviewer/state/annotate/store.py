"""The annotation store: one small interface (:class:`AnnotationStore`), one SQLAlchemy Core implementation
that runs on an SQLite file (the embedded default) and on PostgreSQL (teams, several annotators at once).

Never lose an edit: every call of :meth:`SqlAnnotationStore.apply` is one transaction that writes the label,
its audit row and its undo-log row together, and returns only once committed (SQLite in WAL mode with
``synchronous=FULL``: the commit is on disk). A write that fails (read-only file, full disk) rolls back and
raises :class:`ProjectWriteError`; what was saved before stays. Opening checks ``PRAGMA integrity_check``
and the schema version, and runs the missing migrations (:mod:`.schema`); a project on a read-only disk
opens for reading (:mod:`.sqlite_file`).

Fields: ``disease``, ``body_part``, ``attr:<code>`` (values ``1``/``0``/empty), plus ``outline``
(:meth:`Outline.to_json`, empty = none) and ``unusable`` (the reason, empty = usable). Labels belong to
an annotator; what an annotator sees is their own value, else the imported one (annotator ``import``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from dermviewer.state.annotate import schema as S
from dermviewer.state.annotate.errors import ProjectError, ProjectWriteError
from dermviewer.state.annotate.outline import Outline
from dermviewer.state.annotate.sqlite_file import refusal_reason
from dermviewer.state.annotate.sqlite_file import sqlite_engine as _sqlite_engine
from engine.taxonomy import Taxonomy

__all__ = ["IMPORT", "OUTLINE", "UNUSABLE", "AnnotationStore", "AuditEntry", "Edit", "FieldSpec", "Photo",
           "SqlAnnotationStore", "open_store"]

IMPORT = "import"  # the annotator that owns the starting labels
OUTLINE, UNUSABLE = "outline", "unusable"
ATTRIBUTE_CHOICES = [["1", "yes"], ["0", "no"], ["", "unknown"]]
_SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class Photo:
    id: int
    key: str
    path: Path
    sha256: str
    size: int
    row: dict[str, str]


@dataclass(frozen=True)
class FieldSpec:
    field: str
    head: str
    choices: list[tuple[str, str]]  # (code, name)

    @property
    def codes(self) -> list[str]:
        return [c for c, _ in self.choices]


@dataclass(frozen=True)
class Edit:
    key: str  # photo key
    field: str
    value: str


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    annotator: str
    owner: str
    key: str
    field: str
    old: str
    new: str
    reason: str


class AnnotationStore(Protocol):
    """What the annotate mode needs from storage; tests run the same suite on every implementation."""

    location: str

    def photos(self) -> list[Photo]: ...
    def fields(self) -> list[FieldSpec]: ...
    def taxonomy(self) -> Taxonomy: ...
    def values(self, annotator: str) -> dict[str, dict[str, str]]: ...
    def value(self, key: str, field: str, annotator: str) -> str: ...
    def apply(self, edits: Sequence[Edit], annotator: str, reason: str = "", label: str = "") -> int | None: ...
    def undo(self, annotator: str) -> list[Edit]: ...
    def redo(self, annotator: str) -> list[Edit]: ...
    def history(self, annotator: str) -> tuple[list[str], int]: ...
    def audit(self, key: str | None = None, owner: str | None = None) -> list[AuditEntry]: ...
    def close(self) -> None: ...


class SqlAnnotationStore:
    def __init__(self, engine: Engine, location: str, file: Path | None = None) -> None:
        self.engine, self.location, self.file = engine, location, file
        self._writer = engine.execution_options(write=True)
        self._ids: dict[str, int] = {}
        self._keys: dict[int, str] = {}
        self._fields: list[FieldSpec] = []

    # -- opening --------------------------------------------------------------------------------------
    def _fail(self, reason: str, exc: BaseException | None = None) -> ProjectError:
        return ProjectError(reason, self.file or self.location)

    def _version(self, conn: Connection, taxonomy: Taxonomy | None, integrity: bool) -> int:
        if integrity and self.file is not None:
            result = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check").fetchall()]
            if result != ["ok"]:
                raise self._fail(f"the database is damaged (integrity_check: {'; '.join(result[:3])})")
        names = set(sa.inspect(conn).get_table_names())
        if not names:
            if taxonomy is None:
                raise self._fail("empty file: not an annotation project (create it with a taxonomy)")
            return 0
        if "schema_version" not in names:
            raise self._fail("not a DermViewer annotation project (no schema_version table)")
        version = int(conn.execute(sa.select(sa.func.max(S.schema_version.c.version))).scalar() or 0)
        if version > S.SCHEMA_VERSION:
            raise self._fail(f"made by a newer DermViewer (schema {version}, this one reads up to {S.SCHEMA_VERSION})")
        return version

    def open(self, taxonomy: Taxonomy | None = None) -> SqlAnnotationStore:
        """Check (in a read transaction, so a read-only project still opens for reading), migrate if needed
        (under the write lock, checking the version again: another process may have just done it), load.
        ``taxonomy`` is required for a new (empty) project."""
        version = -1
        try:
            with self.engine.begin() as conn:
                version = self._version(conn, taxonomy, integrity=True)
            if version < S.SCHEMA_VERSION:
                with self._writer.begin() as conn:
                    version = self._version(conn, taxonomy, integrity=False)
                    for v in range(version, S.SCHEMA_VERSION):
                        S.MIGRATIONS[v](conn)
                        conn.execute(S.schema_version.insert().values(version=v + 1, applied_at=time.time()))
                    if version == 0 and taxonomy is not None:
                        self._write_schema(conn, taxonomy)
        except sa.exc.DatabaseError as exc:
            if version >= 0 and "readonly" in str(exc.orig):
                raise self._fail(f"the project (schema {version}) must be upgraded to {S.SCHEMA_VERSION}, "
                                 "but it is read-only") from exc
            raise self._fail(f"not a readable annotation project ({exc.orig})") from exc
        except UnicodeDecodeError as exc:  # sqlite3 decoding a "malformed schema" message that quotes bad bytes
            raise self._fail("damaged annotation project: its stored schema is not valid text") from exc
        try:
            self._load()
        except (ValueError, TypeError, KeyError) as exc:  # JSONDecodeError is a ValueError: pages fine, JSON not
            self.engine.dispose()
            raise self._fail(f"damaged annotation project: its label schema cannot be read ({exc})") from exc
        return self

    def _write_schema(self, conn: Connection, taxonomy: Taxonomy) -> None:
        rows = []
        for head in ("disease", "body_part"):
            if head in taxonomy.heads:
                rows.append({"field": head, "head": head, "choices_json": json.dumps(
                    [[c.code, c.name] for c in taxonomy.head(head).classes])})
        if "attributes" in taxonomy.heads:
            rows += [{"field": f"attr:{c.code}", "head": "attributes", "choices_json": json.dumps(ATTRIBUTE_CHOICES)}
                     for c in taxonomy.head("attributes").classes]
        conn.execute(S.label_schema.insert(), [{**r, "position": i} for i, r in enumerate(rows)])
        conn.execute(S.project_info.insert().values(key="taxonomy", value=json.dumps(taxonomy.to_dict())))

    def _load(self) -> None:
        with self.engine.connect() as conn:
            self._ids = {k: i for i, k in conn.execute(sa.select(S.photos.c.id, S.photos.c.key))}
            self._fields = [FieldSpec(f, h, [(c, n) for c, n in json.loads(ch)]) for f, h, ch in conn.execute(
                sa.select(S.label_schema.c.field, S.label_schema.c.head, S.label_schema.c.choices_json)
                .order_by(S.label_schema.c.position))]
        self._keys = {i: k for k, i in self._ids.items()}

    def close(self) -> None:
        self.engine.dispose()

    # -- reading --------------------------------------------------------------------------------------
    def photos(self) -> list[Photo]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(S.photos).order_by(S.photos.c.position)).mappings().all()
        return [Photo(r["id"], r["key"], Path(r["path"]), r["sha256"], r["size"], json.loads(r["row_json"]))
                for r in rows]

    def fields(self) -> list[FieldSpec]:
        return list(self._fields)

    def taxonomy(self) -> Taxonomy:
        with self.engine.connect() as conn:
            text = conn.execute(sa.select(S.project_info.c.value).where(S.project_info.c.key == "taxonomy")).scalar()
        if text is None:
            raise self._fail("the project has no taxonomy")
        return Taxonomy.from_dict(json.loads(text), self.file)

    def photo_keys(self) -> dict[int, str]:
        """Photo id -> key, read fresh (another process may have imported) but only those two columns."""
        with self.engine.connect() as conn:
            return {int(i): str(k) for i, k in conn.execute(sa.select(S.photos.c.id, S.photos.c.key))}

    def photo_id(self, key: str) -> int:
        try:
            return self._ids[key]
        except KeyError:
            self._load()  # another process may have imported since
            if key not in self._ids:
                raise KeyError(f"no photo {key!r} in the project") from None
            return self._ids[key]

    def _own(self, conn: Connection, pid: int, annotator: str, field: str) -> str | None:
        if field == OUTLINE:
            t, col = S.outlines, S.outlines.c.data_json
        elif field == UNUSABLE:
            t, col = S.unusable, S.unusable.c.reason
        else:
            t, col = S.labels, S.labels.c.value
        q = sa.select(col).where(t.c.photo_id == pid, t.c.annotator == annotator)
        if t is S.labels:
            q = q.where(t.c.field == field)
        return conn.execute(q).scalar()

    def _effective(self, conn: Connection, pid: int, annotator: str, field: str) -> str:
        own = self._own(conn, pid, annotator, field)
        if own is None and annotator != IMPORT:
            own = self._own(conn, pid, IMPORT, field)
        return own or ""

    def value(self, key: str, field: str, annotator: str) -> str:
        with self.engine.connect() as conn:
            return self._effective(conn, self.photo_id(key), annotator, field)

    def values(self, annotator: str, keys: Sequence[str] | None = None) -> dict[str, dict[str, str]]:
        """Effective labels for ``annotator`` (own, else imported), unusable reason included: of every photo,
        or only of ``keys`` (what an edit touched: a keypress must not reload a 10,000-photo project)."""
        out: dict[str, dict[str, str]] = {k: {} for k in (self._ids if keys is None else keys)}
        ids = None if keys is None else [self.photo_id(k) for k in keys]
        with self.engine.connect() as conn:
            for who in (IMPORT, annotator):
                q = (sa.select(S.labels.c.photo_id, S.labels.c.field, S.labels.c.value)
                     .where(S.labels.c.annotator == who))
                u = sa.select(S.unusable.c.photo_id, S.unusable.c.reason).where(S.unusable.c.annotator == who)
                if ids is not None:
                    q, u = q.where(S.labels.c.photo_id.in_(ids)), u.where(S.unusable.c.photo_id.in_(ids))
                for pid, field, value in conn.execute(q):
                    out[self._keys[pid]][field] = value
                for pid, reason in conn.execute(u):
                    out[self._keys[pid]][UNUSABLE] = reason
        return out

    def outline(self, key: str, annotator: str) -> Outline | None:
        text = self.value(key, OUTLINE, annotator)
        return Outline.from_json(text) if text else None

    def outlines(self, annotator: str) -> dict[str, Outline]:
        out: dict[str, Outline] = {}
        with self.engine.connect() as conn:
            for who in (IMPORT, annotator):
                for pid, text in conn.execute(sa.select(S.outlines.c.photo_id, S.outlines.c.data_json)
                                              .where(S.outlines.c.annotator == who)):
                    if text:
                        out[self._keys[pid]] = Outline.from_json(text)
                    else:
                        out.pop(self._keys[pid], None)
        return out

    def audit(self, key: str | None = None, owner: str | None = None) -> list[AuditEntry]:
        """The log, oldest first: of one photo and/or of one owner's labels (a review reads one owner's
        changes, not the import's rows of every photo)."""
        q = sa.select(S.audit).order_by(S.audit.c.id)
        if key is not None:
            q = q.where(S.audit.c.photo_id == self.photo_id(key))
        if owner is not None:
            q = q.where(S.audit.c.owner == owner)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [AuditEntry(r["id"], r["at"], r["annotator"], r["owner"], self._keys.get(r["photo_id"], "?"),
                           r["field"], r["old"], r["new"], r["reason"]) for r in rows]

    # -- writing --------------------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction; a database that refuses the write raises :class:`ProjectWriteError`."""
        try:
            with self._writer.begin() as conn:
                yield conn
        except sa.exc.DBAPIError as exc:
            reason = refusal_reason(str(exc.orig).strip(), self.file, isinstance(exc, sa.exc.OperationalError))
            raise ProjectWriteError(reason, self.file or self.location) from exc

    def check_value(self, field: str, value: str) -> None:
        if field in (OUTLINE, UNUSABLE):
            return
        spec = next((f for f in self._fields if f.field == field), None)
        if spec is None:
            raise ValueError(f"no field {field!r} in this project's label schema")
        if value not in spec.codes:
            raise ValueError(f"{value!r} is not a choice of {field!r} ({', '.join(spec.codes)})")

    def write_value(self, conn: Connection, pid: int, owner: str, field: str, value: str) -> None:
        now = time.time()
        where: list[Any]
        if field == OUTLINE:
            t, where, vals = S.outlines, [], {"data_json": value, "summary": _summary(field, value)}
        elif field == UNUSABLE:
            t, where, vals = S.unusable, [], {"reason": value}
        else:
            t, where, vals = S.labels, [S.labels.c.field == field], {"value": value}
        key_cols = [t.c.photo_id == pid, t.c.annotator == owner, *where]  # "" is kept: it hides the import's
        if conn.execute(t.update().where(*key_cols).values(**vals, updated_at=now)).rowcount == 0:
            extra = {"field": field} if t is S.labels else {}
            conn.execute(t.insert().values(photo_id=pid, annotator=owner, **extra, **vals, updated_at=now))

    def change(self, conn: Connection, pid: int, owner: str, field: str, new: str, who: str, reason: str) -> str | None:
        """Set the owner's value with its audit row; returns the old value, or None when the owner already had it."""
        conn.execute(sa.select(S.photos.c.id).where(S.photos.c.id == pid).with_for_update())  # PostgreSQL: queue
        own = self._own(conn, pid, owner, field)
        if own == new:
            return None
        old = own if own is not None else self._effective(conn, pid, owner, field)
        # setting the imported value is recorded too: the annotator confirmed it (agreement counts it)
        self.write_value(conn, pid, owner, field, new)
        conn.execute(S.audit.insert().values(at=time.time(), annotator=who, owner=owner, photo_id=pid, field=field,
                                             old=_summary(field, old), new=_summary(field, new),
                                             reason=reason or ("confirmed" if old == new else "")))
        return old

    def apply(self, edits: Sequence[Edit], annotator: str, reason: str = "", label: str = "") -> int | None:
        """Apply the edits as one transaction and one undo step; returns the step (None if nothing changed)."""
        for e in edits:
            self.check_value(e.field, e.value)
        ids = [self.photo_id(e.key) for e in edits]
        with self.transaction() as conn:
            step = (conn.execute(sa.select(sa.func.max(S.undo_log.c.step))
                                 .where(S.undo_log.c.annotator == annotator)).scalar() or 0) + 1
            rows = []
            for pid, e in zip(ids, edits, strict=True):
                old = self.change(conn, pid, annotator, e.field, e.value, annotator, reason)
                if old is not None:
                    rows.append({"annotator": annotator, "step": step, "photo_id": pid, "field": e.field,
                                 "old": old, "new": e.value, "undone": False, "label": label})
            if not rows:
                return None
            conn.execute(S.undo_log.delete().where(S.undo_log.c.annotator == annotator,
                                                   S.undo_log.c.undone == sa.true()))  # the redo tail goes
            conn.execute(S.undo_log.insert(), rows)
        return step

    def _replay(self, annotator: str, undo: bool) -> list[Edit]:
        u = S.undo_log.c
        with self.transaction() as conn:
            agg = sa.func.max(u.step) if undo else sa.func.min(u.step)
            step = conn.execute(sa.select(agg).where(u.annotator == annotator, u.undone == (not undo))).scalar()
            if step is None:
                return []
            rows = conn.execute(sa.select(S.undo_log).where(u.annotator == annotator, u.step == step)
                                .order_by(u.id.desc() if undo else u.id)).mappings().all()
            done = []
            for r in rows:
                value = r["old"] if undo else r["new"]
                self.change(conn, r["photo_id"], annotator, r["field"], value, annotator, "undo" if undo else "redo")
                done.append(Edit(self._keys[r["photo_id"]], r["field"], value))
            conn.execute(S.undo_log.update().where(u.annotator == annotator, u.step == step).values(undone=undo))
        return done

    def undo(self, annotator: str) -> list[Edit]:
        """Undo the annotator's last step (also one made before a restart); returns the values restored."""
        return self._replay(annotator, undo=True)

    def redo(self, annotator: str) -> list[Edit]:
        return self._replay(annotator, undo=False)

    def history(self, annotator: str) -> tuple[list[str], int]:
        """The annotator's undo steps (their labels, oldest first) and how many are done (QUndoStack's index)."""
        u = S.undo_log.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(u.step, sa.func.min(u.label), sa.func.max(sa.cast(u.undone, sa.Integer)))
                                .where(u.annotator == annotator).group_by(u.step).order_by(u.step)).all()
        return [r[1] for r in rows], sum(1 for r in rows if not r[2])


def _summary(field: str, value: str) -> str:
    return Outline.from_json(value).summary() if field == OUTLINE and value else value


def open_store(location: str | Path, taxonomy: Taxonomy | None = None, *, create: bool = False) -> SqlAnnotationStore:
    """An SQLite project file (path) or a PostgreSQL database (``postgresql+psycopg://...`` URL).

    ``create=True`` with a taxonomy makes a new project where none exists; otherwise a missing, foreign or
    damaged file raises :class:`ProjectError` naming it and the reason.
    """
    text = str(location)
    if "://" in text:
        store = SqlAnnotationStore(sa.create_engine(text, pool_pre_ping=True), text)
        return store.open(taxonomy if create else None)
    path = Path(location)
    if path.exists():
        try:
            with path.open("rb") as f:
                head = f.read(16)
        except OSError as exc:
            raise ProjectError(f"cannot read the project: {exc.strerror}", path) from exc
        if head and head != _SQLITE_MAGIC:
            raise ProjectError("not an annotation project (not an SQLite database)", path)
        if not head and not create:
            raise ProjectError("empty file: not an annotation project", path)
    elif not create:
        raise ProjectError("no such project file", path)
    elif not path.parent.is_dir():
        raise ProjectError("the project's folder does not exist", path)
    return SqlAnnotationStore(_sqlite_engine(path), str(path), path).open(taxonomy if create else None)
