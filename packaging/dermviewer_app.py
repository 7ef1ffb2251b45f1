"""Entry point of the PyInstaller desktop build (``packaging/dermviewer.spec``): the ``dermviewer`` command.

A frozen app's ``sys.executable`` is this program, not a Python interpreter, yet the app builds a bundle's ONNX
graph in a child process as ``sys.executable -m engine.onnx_cache BUNDLE --cache-dir DIR`` (engine/onnx_cache.py,
so torch stays out of the window's process). That one ``-m`` call is run here as the interpreter would run it;
every other command line is the app's own.
"""

from __future__ import annotations

import runpy
import sys

CHILD_MODULES = ("engine.onnx_cache",)  # what the app starts as `sys.executable -m MODULE ...`


def main() -> int:
    if getattr(sys, "frozen", False) and len(sys.argv) > 2 and sys.argv[1] == "-m" and sys.argv[2] in CHILD_MODULES:
        module = sys.argv[2]
        sys.argv = [module, *sys.argv[3:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)  # exits through the module's sys.exit
        return 0
    from dermviewer.__main__ import main as app_main

    return app_main()


if __name__ == "__main__":
    sys.exit(main())
