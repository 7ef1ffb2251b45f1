"""The annotation project's tables (SQLAlchemy Core, so one definition serves SQLite and PostgreSQL) and the
migrations that build them, version by version.

A project is built *only* through :data:`MIGRATIONS`: a new file runs them all, an old one runs the ones it
lacks, so a file made by version 1 and a new file end with the same tables (tested from version 1 on).

- version 1: photos, label schema, labels per photo and annotator, outlines, unusable marks, the append-only
  audit log and the persistent undo log;
- version 2: review decisions, and a perceptual-hash column on photos (near-duplicate search caches it).
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "metadata", "tables"]

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", sa.Float, nullable=False),
)
project_info = sa.Table(
    "project_info", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


def _photo_columns() -> list[sa.Column]:
    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False, unique=True),  # img_id, else the file stem
        sa.Column("path", sa.Text, nullable=False),  # absolute path of the source photo (never written)
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),  # order of the manifest
        sa.Column("row_json", sa.Text, nullable=False),  # the manifest row as imported, for a faithful export
    ]


photos = sa.Table("photos", metadata, *_photo_columns(), sa.Column("phash", sa.String(128), nullable=True))
label_schema = sa.Table(
    "label_schema", metadata,
    sa.Column("field", sa.String(64), primary_key=True),  # disease | body_part | attr:<code>
    sa.Column("head", sa.String(32), nullable=False),
    sa.Column("choices_json", sa.Text, nullable=False),  # [[code, name], ...]
    sa.Column("position", sa.Integer, nullable=False),
)
labels = sa.Table(
    "labels", metadata,
    sa.Column("photo_id", sa.Integer, sa.ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("annotator", sa.String(64), primary_key=True),
    sa.Column("field", sa.String(64), sa.ForeignKey("label_schema.field"), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),  # a class code; attributes "1" / "0" / "" (unknown)
    sa.Column("updated_at", sa.Float, nullable=False),
)
outlines = sa.Table(
    "outlines", metadata,
    sa.Column("photo_id", sa.Integer, sa.ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("annotator", sa.String(64), primary_key=True),
    sa.Column("data_json", sa.Text, nullable=False),  # Outline.to_json(): mask PNG (base64), polygons, box
    sa.Column("summary", sa.String(200), nullable=False),  # what the audit log records
    sa.Column("updated_at", sa.Float, nullable=False),
)
unusable = sa.Table(
    "unusable", metadata,
    sa.Column("photo_id", sa.Integer, sa.ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("annotator", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
audit = sa.Table(
    "audit", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("annotator", sa.String(64), nullable=False),  # who made the change
    sa.Column("owner", sa.String(64), nullable=False),  # whose labels changed (differs for a review)
    sa.Column("photo_id", sa.Integer, sa.ForeignKey("photos.id"), nullable=False),
    sa.Column("field", sa.String(64), nullable=False),
    sa.Column("old", sa.Text, nullable=False),
    sa.Column("new", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_audit_photo_field", "photo_id", "owner", "field"),
)
undo_log = sa.Table(
    "undo_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("annotator", sa.String(64), nullable=False),
    sa.Column("step", sa.Integer, nullable=False),  # one user action (a bulk relabel is one step)
    sa.Column("photo_id", sa.Integer, sa.ForeignKey("photos.id"), nullable=False),
    sa.Column("field", sa.String(64), nullable=False),
    sa.Column("old", sa.Text, nullable=False),  # full values (outline JSON too), not the audit summary
    sa.Column("new", sa.Text, nullable=False),
    sa.Column("undone", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("label", sa.String(200), nullable=False, server_default=""),
    sa.Index("ix_undo_annotator_step", "annotator", "step"),
)
reviews = sa.Table(
    "reviews", metadata,
    sa.Column("audit_id", sa.Integer, sa.ForeignKey("audit.id"), primary_key=True),
    sa.Column("reviewer", sa.String(64), primary_key=True),
    sa.Column("decision", sa.String(16), nullable=False),  # accepted | rejected
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("comment", sa.Text, nullable=False, server_default=""),
)

tables = {t.name: t for t in metadata.sorted_tables}

_V1 = ["schema_version", "project_info", "label_schema", "labels", "outlines", "unusable", "audit", "undo_log"]

_APPEND_ONLY_SQLITE = [
    f"CREATE TRIGGER audit_no_{op.lower()} BEFORE {op} ON audit BEGIN "
    "SELECT RAISE(ABORT, 'the audit log is append-only'); END" for op in ("UPDATE", "DELETE")
]
_APPEND_ONLY_PG = [
    "CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger AS $$ BEGIN "
    "RAISE EXCEPTION 'the audit log is append-only'; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit FOR EACH ROW "
    "EXECUTE FUNCTION audit_append_only()",
]


def _v1(conn: Connection) -> None:
    v1 = sa.MetaData()
    sa.Table("photos", v1, *_photo_columns())  # version 1 had no phash column
    for name in _V1:
        tables[name].to_metadata(v1)
    v1.create_all(conn)
    for stmt in _APPEND_ONLY_PG if conn.dialect.name == "postgresql" else _APPEND_ONLY_SQLITE:
        conn.exec_driver_sql(stmt)


def _v2(conn: Connection) -> None:
    conn.exec_driver_sql("ALTER TABLE photos ADD COLUMN phash VARCHAR(128)")
    reviews.create(conn)


MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2]  # MIGRATIONS[i] brings version i to i + 1
SCHEMA_VERSION = len(MIGRATIONS)
