"""Persistent user settings as a JSON file, so preferences survive restarts without touching Qt.

The file lives in ``$DERMVIEWER_CONFIG_DIR`` (tests point it at a temporary folder) or the platform's
user config folder (``platformdirs``: ``~/.config/dermviewer`` on Linux, honouring XDG). Settings are a
convenience, never a reason for the app not to start, but they are never lost without a word either:

- a file that cannot be read (not JSON, not an object, not UTF-8) is renamed to
  ``settings.json.bad-<timestamp>`` and the defaults are used, so closing the window cannot overwrite
  it; if it cannot even be renamed, saving refuses to overwrite it;
- a field with a bad value (a device nobody offers, a colour map OpenCV cannot draw, a negative top-k)
  falls back to that field's default and the others are kept.

Either way :meth:`Settings.load_with_messages` returns one message per problem, naming the file, the
field and the bad value, for the app to show.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import cv2
import platformdirs

__all__ = ["APP_NAME", "BACKENDS", "DEVICES", "MAX_RECENT", "MAX_TOP_K", "Settings", "cache_dir", "config_dir",
           "settings_path"]

APP_NAME = "dermviewer"
DEVICES = ("auto", "cpu", "cuda")
BACKENDS = ("torch", "onnx")
MAX_RECENT = 10
MAX_TOP_K = 50


def config_dir() -> Path:
    """Where settings live: ``$DERMVIEWER_CONFIG_DIR`` or the platform's user config folder."""
    base = os.environ.get("DERMVIEWER_CONFIG_DIR")
    return Path(base) if base else Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def cache_dir() -> Path:
    """Where rebuildable files live (e.g. models converted per bundle checksum): ``$DERMVIEWER_CACHE_DIR``
    or the platform's user cache folder. Nothing in it may be needed to start the app."""
    base = os.environ.get("DERMVIEWER_CACHE_DIR")
    return Path(base) if base else Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def settings_path() -> Path:
    return config_dir() / "settings.json"


def _colormap_draws(name: str) -> bool:
    """The rule ``engine.explain.overlay.COLORMAPS`` is built by: a lower-case OpenCV ``COLORMAP_*`` name."""
    return name == name.lower() and isinstance(getattr(cv2, f"COLORMAP_{name.upper()}", None), int)


def _is_str_or_none(v: object) -> bool:
    return v is None or isinstance(v, str)


def _number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


# field -> (is the value acceptable, what a good value looks like). A value that fails is replaced by
# the field's default; JSON gives no other types than these, so no coercion is attempted.
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "device": (lambda v: v in DEVICES, f"one of {', '.join(DEVICES)}"),
    "backend": (lambda v: v in BACKENDS, f"one of {', '.join(BACKENDS)}"),
    "model_path": (_is_str_or_none, "a file path or null"),
    "recent_files": (lambda v: isinstance(v, list) and all(isinstance(r, str) for r in v), "a list of file paths"),
    "colormap": (lambda v: isinstance(v, str) and _colormap_draws(v), "an OpenCV colour map such as jet or viridis"),
    "overlay_opacity": (lambda v: _number(v) and 0.0 <= v <= 1.0, "a number from 0 to 1"),
    "top_k": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_TOP_K,
              f"a whole number from 1 to {MAX_TOP_K}"),
    "last_dir": (_is_str_or_none, "a folder path or null"),
    "window_geometry": (_is_str_or_none, "text or null"),
}


@dataclass
class Settings:
    device: str = "auto"
    backend: str = "onnx"  # ONNX Runtime: the window and the first differential without importing torch
    model_path: str | None = None
    recent_files: list[str] = field(default_factory=list)
    colormap: str = "jet"
    overlay_opacity: float = 0.5
    top_k: int = 5
    last_dir: str | None = None
    window_geometry: str | None = None  # base64 of Qt's saveGeometry, opaque here

    def __post_init__(self) -> None:
        # A file at this path that could be neither read nor set aside: saving must not overwrite it.
        self._keep_off: Path | None = None

    def add_recent(self, path: str | Path) -> None:
        p = str(Path(path).resolve())
        self.recent_files = [p, *[r for r in self.recent_files if r != p]][:MAX_RECENT]

    def problems(self) -> list[tuple[str, Any, str]]:
        """``(field, bad value, what is expected)`` for every field whose value the app cannot use."""
        return [(f.name, getattr(self, f.name), _RULES[f.name][1]) for f in fields(self)
                if not _RULES[f.name][0](getattr(self, f.name))]

    def validated(self) -> Settings:
        """Reset every field with a value the app cannot use to its default (see :meth:`problems`)."""
        defaults = Settings()
        for name, _bad, _want in self.problems():
            setattr(self, name, getattr(defaults, name))
        self.recent_files = self.recent_files[:MAX_RECENT]
        return self

    def update(self, **changes: Any) -> list[str]:
        """Set the fields in ``changes`` that hold usable values; one message per value refused (kept as it was)."""
        messages = []
        for name, value in changes.items():
            if name not in _RULES:
                messages.append(f"no setting {name!r}")
            elif not _RULES[name][0](value):
                messages.append(f"setting {name!r} cannot be {value!r} (expected {_RULES[name][1]})")
            else:
                setattr(self, name, value)
        return messages

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        return cls.load_with_messages(path)[0]

    @classmethod
    def load_with_messages(cls, path: Path | None = None) -> tuple[Settings, list[str]]:
        """The settings in ``path`` (default :func:`settings_path`) and one message per problem found.

        A missing file is no problem (first start). An unreadable one is renamed aside and gives the
        defaults; a bad field gives that field's default.
        """
        path = path or settings_path()
        try:
            raw = json.loads(path.read_bytes().decode("utf-8"))
            if not isinstance(raw, dict):
                raise ValueError(f"expected a JSON object, found {type(raw).__name__}")
        except FileNotFoundError:
            return cls(), []
        except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            return cls._set_aside(path, exc)
        messages = []
        known = {f.name for f in fields(cls)}
        unknown = sorted(k for k in raw if k not in known)
        if unknown:
            messages.append(f"{path}: ignored unknown setting{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(map(repr, unknown))}")
        settings = cls(**{k: v for k, v in raw.items() if k in known})
        defaults = cls()
        for name, bad, want in settings.problems():
            messages.append(f"{path}: setting {name!r} has the unusable value {bad!r} (expected {want}); "
                            f"using the default {getattr(defaults, name)!r}")
        return settings.validated(), messages

    @classmethod
    def _set_aside(cls, path: Path, exc: BaseException) -> tuple[Settings, list[str]]:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        aside = path.with_name(f"{path.name}.bad-{stamp}")
        n = 1
        while aside.exists():
            n += 1
            aside = path.with_name(f"{path.name}.bad-{stamp}-{n}")
        settings = cls()
        try:
            path.rename(aside)
        except OSError as move_exc:
            settings._keep_off = path
            return settings, [f"{path}: cannot be read ({reason}) and cannot be set aside "
                              f"({move_exc.strerror or move_exc}); using the default settings, and this file "
                              "will not be overwritten"]
        return settings, [f"{path}: cannot be read ({reason}); kept it as {aside.name} and using the default settings"]

    def save(self, path: Path | None = None) -> Path:
        """Write atomically. Raises ``OSError`` rather than overwrite a file that could not be read or moved."""
        path = path or settings_path()
        if self._keep_off is not None and Path(path) == self._keep_off and path.exists():
            raise OSError(f"{path}: could not be read when the app started and was not overwritten; "
                          "move or fix it to save settings again")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        tmp.replace(path)
        return path

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
