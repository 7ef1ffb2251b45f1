"""The ONNX cache: each bundle's ONNX graph, built once and kept in the user's cache folder by bundle checksum.

Why a cache and not an ``.onnx`` shipped beside each bundle: the graph is fp32 (the default bundle's
fp16 weights are 10.5 MB, its graph about twice that), shipping both would double the models' share of
the package for every bundle, and a bundle replaced without re-exporting its sibling leaves a stale file
that must be refused anyway; a bundle the user opens from elsewhere has no sibling at all. The cache
handles all of them the same way, at the price of one export (torch, a few seconds) the first time a
bundle is used.

An entry is ``<sha>.onnx`` plus ``<sha>.json``, where ``<sha>`` is the SHA-256 of the whole bundle file
(header and weights). The JSON records the bundle checksum, the size and SHA-256 of the ``.onnx`` bytes,
and the bundle's model config. An entry is used only if all of them match what is on disk now, so a
truncated or corrupted file, a file copied under another bundle's name, or an entry written by an older
exporter (``FORMAT``) is rebuilt, never trusted. Checking needs no torch and no ``onnx`` package: the
prediction path imports neither. Building does need torch: :func:`build_entry` runs in a subprocess
(``python -m engine.onnx_cache BUNDLE``) for the app, whose process must not import torch on a
worker thread, or in-process for the CLI, which has nothing else to do meanwhile. Writes are atomic
(temporary file, then rename; the JSON last), so two processes building the same entry cannot leave
half of one.

Beside the graph the entry keeps ``<sha>.cpu.onnx``, the same graph after ONNX Runtime's optimiser for the
CPU (``optimized_model_filepath``), with its own size and checksum in the JSON: a session over it skips the
optimiser and starts in about half the time (1.2 s -> 0.7 s for the default model here), which is most of a
one-photo ``dermviewer-predict``. It is used only on the CPU and by the ONNX Runtime version that wrote it
(another version falls back to the plain graph); a damaged one makes the whole entry rebuilt.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.bundle import Bundle, file_sha256, read_bundle_header
from engine.errors import ExportError

__all__ = ["FORMAT", "CacheEntry", "build_entry", "build_in_subprocess", "cached_onnx", "default_cache_dir",
           "read_entry"]

FORMAT = 1  # bump when the exporter changes what a graph holds: older entries are then rebuilt
_APP_NAME = "dermviewer"
_BUILD_TIMEOUT_S = 900.0


def default_cache_dir() -> Path:
    """``$DERMVIEWER_CACHE_DIR/onnx`` or the platform's user cache folder (the app's ``settings.cache_dir``)."""
    base = os.environ.get("DERMVIEWER_CACHE_DIR")
    if not base:
        import platformdirs

        base = platformdirs.user_cache_dir(_APP_NAME, appauthor=False)
    return Path(base) / "onnx"


@dataclass(frozen=True)
class CacheEntry:
    """A verified entry: the graph's bytes, where they came from, and the CPU-optimised graph if usable."""

    blob: bytes
    path: Path
    bundle_sha256: str
    cpu_optimized: bytes | None = None


def _paths(root: Path, sha: str) -> tuple[Path, Path]:
    return root / f"{sha}.onnx", root / f"{sha}.json"


def _optimized_path(root: Path, sha: str) -> Path:
    return root / f"{sha}.cpu.onnx"


def _ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def _optimize_for_cpu(blob: bytes, out: Path) -> None:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.optimized_model_filepath = str(out)
    opts.log_severity_level = 3
    ort.InferenceSession(blob, sess_options=opts, providers=["CPUExecutionProvider"])


def _model_key(bundle: Bundle) -> str:
    return json.dumps(bundle.model_config.to_dict(), sort_keys=True)


def read_entry(root: Path, sha: str, bundle: Bundle) -> CacheEntry | None:
    """The entry for the bundle file whose checksum is ``sha``, or ``None`` if it is missing, truncated,
    corrupted, for other weights or from another exporter format (such an entry is removed)."""
    onnx_path, meta_path = _paths(root, sha)
    if not meta_path.is_file() or not onnx_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        blob = onnx_path.read_bytes()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        meta, blob = None, b""
    ok = (isinstance(meta, dict) and meta.get("format") == FORMAT and meta.get("bundle_sha256") == sha
          and meta.get("onnx_size") == len(blob) and meta.get("onnx_sha256") == hashlib.sha256(blob).hexdigest()
          and meta.get("model") == _model_key(bundle))
    optimized = None
    opt_meta = meta.get("cpu_optimized") if ok and isinstance(meta, dict) else None
    if ok and isinstance(opt_meta, dict):
        opt_path = _optimized_path(root, sha)
        try:
            optimized = opt_path.read_bytes()
        except OSError:
            optimized = b""
        if opt_meta.get("size") != len(optimized) or opt_meta.get("sha256") != hashlib.sha256(optimized).hexdigest():
            ok = False
        elif opt_meta.get("onnxruntime") != _ort_version():
            optimized = None  # written by another ONNX Runtime: the plain graph is always valid
    if not ok:
        _discard(onnx_path, meta_path, _optimized_path(root, sha))
        return None
    return CacheEntry(blob, onnx_path, sha, optimized)


def _discard(*paths: Path) -> None:
    for p in paths:
        with contextlib.suppress(OSError):  # a read-only cache: the entry is still never used
            p.unlink(missing_ok=True)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def build_entry(bundle_path: str | Path, root: Path | None = None) -> Path:
    """Export ``bundle_path`` (verified by :func:`~engine.bundle.load_bundle`; needs torch) into the cache."""
    from engine.bundle import load_bundle
    from engine.export.onnx_export import export_onnx_bytes

    root = root or default_cache_dir()
    bundle_path = Path(bundle_path)
    sha = file_sha256(bundle_path)
    bundle = load_bundle(bundle_path)
    if file_sha256(bundle_path) != sha:
        raise ExportError("the bundle changed while it was being exported", bundle_path)
    blob = export_onnx_bytes(bundle)
    onnx_path, meta_path = _paths(root, sha)
    meta: dict[str, object] = {"format": FORMAT, "bundle_sha256": sha, "bundle_name": bundle.name,
                               "onnx_size": len(blob), "onnx_sha256": hashlib.sha256(blob).hexdigest(),
                               "model": _model_key(bundle)}
    try:
        root.mkdir(parents=True, exist_ok=True)
        _atomic_write(onnx_path, blob)
        tmp_opt = root / f".{sha}.{secrets.token_hex(4)}.cpu.part"
        try:
            _optimize_for_cpu(blob, tmp_opt)
            optimized = tmp_opt.read_bytes()
            _atomic_write(_optimized_path(root, sha), optimized)
            meta["cpu_optimized"] = {"size": len(optimized), "sha256": hashlib.sha256(optimized).hexdigest(),
                                     "onnxruntime": _ort_version()}
        finally:
            tmp_opt.unlink(missing_ok=True)
        _atomic_write(meta_path, json.dumps(meta, indent=1).encode())
    except OSError as exc:
        raise ExportError(f"cannot write the ONNX cache entry: {exc.strerror or exc}", onnx_path) from exc
    return onnx_path


def build_in_subprocess(bundle_path: str | Path, root: Path | None = None,
                        timeout_s: float = _BUILD_TIMEOUT_S) -> None:
    """:func:`build_entry` in a new Python process, so torch never enters this one."""
    root = root or default_cache_dir()
    cmd = [sys.executable, "-m", "engine.onnx_cache", str(bundle_path), "--cache-dir", str(root)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ExportError(f"building the ONNX graph failed: {exc}", Path(bundle_path)) from exc
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr or "").strip().splitlines() if ln.strip()]
        raise ExportError(f"building the ONNX graph failed: {lines[-1] if lines else f'exit {done.returncode}'}",
                          Path(bundle_path))


def cached_onnx(bundle_path: str | Path, root: Path | None = None, *, subprocess_build: bool = False,
                bundle: Bundle | None = None) -> tuple[Bundle, CacheEntry]:
    """The bundle's header (no weights, no torch) and its verified ONNX graph, built first if need be."""
    root = root or default_cache_dir()
    bundle_path = Path(bundle_path)
    bundle = bundle or read_bundle_header(bundle_path)
    sha = file_sha256(bundle_path)
    entry = read_entry(root, sha, bundle)
    if entry is None:
        if subprocess_build:
            build_in_subprocess(bundle_path, root)
        else:
            build_entry(bundle_path, root)
        entry = read_entry(root, sha, bundle)
        if entry is None:
            raise ExportError("the ONNX cache entry just built does not verify (bundle changed meanwhile?)",
                              _paths(root, sha)[0])
    return bundle, entry


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.onnx_cache",
                                description="Build a bundle's ONNX graph into the cache.")
    p.add_argument("bundle", type=Path)
    p.add_argument("--cache-dir", type=Path, default=None)
    args = p.parse_args(argv)
    from engine.errors import DermViewerError

    try:
        out = build_entry(args.bundle, args.cache_dir)
    except DermViewerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
