"""Persistent user settings as a JSON file, so preferences survive restarts without touching Qt.

The file lives in ``$DERMVIEWER_CONFIG_DIR`` (tests point it at a temporary folder) or the XDG config
folder. A missing or unreadable file gives the defaults: settings are a convenience, never a reason
for the app not to start.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["BACKENDS", "DEVICES", "MAX_RECENT", "Settings", "settings_path"]

DEVICES = ("auto", "cpu", "cuda")
BACKENDS = ("torch", "onnx")
MAX_RECENT = 10


def settings_path() -> Path:
    base = os.environ.get("DERMVIEWER_CONFIG_DIR")
    if base:
        return Path(base) / "settings.json"
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "dermviewer" / "settings.json"


@dataclass
class Settings:
    device: str = "auto"
    backend: str = "torch"
    model_path: str | None = None
    recent_files: list[str] = field(default_factory=list)
    colormap: str = "jet"
    overlay_opacity: float = 0.5
    top_k: int = 5
    last_dir: str | None = None
    window_geometry: str | None = None  # base64 of Qt's saveGeometry, opaque here

    def add_recent(self, path: str | Path) -> None:
        p = str(Path(path).resolve())
        self.recent_files = [p, *[r for r in self.recent_files if r != p]][:MAX_RECENT]

    def validated(self) -> Settings:
        """Repair values a hand-edited or older file may hold."""
        if self.device not in DEVICES:
            self.device = "auto"
        if self.backend not in BACKENDS:
            self.backend = "torch"
        self.overlay_opacity = min(max(float(self.overlay_opacity), 0.0), 1.0)
        self.top_k = int(min(max(int(self.top_k), 1), 50))
        self.recent_files = [str(r) for r in self.recent_files][:MAX_RECENT]
        return self

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        path = path or settings_path()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(raw, dict):
            return cls()
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in raw.items() if k in known}).validated()
        except (TypeError, ValueError):
            return cls()

    def save(self, path: Path | None = None) -> Path:
        path = path or settings_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        tmp.replace(path)
        return path

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
