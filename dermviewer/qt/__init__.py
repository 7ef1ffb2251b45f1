"""The PySide6 GUI: the only package that imports Qt. It draws what ``dermviewer.state`` holds.

Work-around for a binding bug: PySide6 6.12.0 on Python 3.11 drops one reference to ``None`` on every call of a
Qt method returning nothing, and one to ``True`` on every signal emitted; when a count reaches zero the process
aborts ("none_dealloc: deallocating None"). A long session or a full test run gets there. The ballast below
holds 8 million extra references to each (64 MB each as list slots), many hours of use; 6.11.3 lacks the bug but
crashed elsewhere in our suite, so the pin stays until a fixed release is tested. Python 3.12 makes both immortal.
"""

import sys

if sys.version_info < (3, 12):
    _REFCOUNT_BALLAST = ([None] * 8_000_000, [True] * 8_000_000, [False] * 1_000_000)
