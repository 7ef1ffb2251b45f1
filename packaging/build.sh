#!/usr/bin/env bash
# The Linux desktop build (issue 16): `make package`, run before each release (not in CI: it takes many
# minutes and ~6 GB of disk). PyInstaller makes one folder, dist/dermviewer/, holding Python, the app, torch and
# the bundled models; this script adds the .desktop entry and the icon, prints the folder's size and runs the
# smoke test, exactly `dist/dermviewer/dermviewer --self-test`, whose wall time is the printed cold start-up.
#
#   bash packaging/build.sh            # uses .venv (VENV=... for another), writes dist/dermviewer
#   nice -n 19 bash packaging/build.sh # on a shared machine
#
# To install the entry for the current user: dist/dermviewer/install-desktop-entry.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
DIST=${DIST:-dist}
WORK=${WORK:-build/pyinstaller}
BUNDLE="$DIST/dermviewer"
PY="$VENV/bin/python"

"$PY" -c "import PyInstaller" 2>/dev/null || { echo "PyInstaller missing: make package installs the [package] extra" >&2; exit 1; }
rm -rf "$WORK" "$BUNDLE"
mkdir -p "$WORK"
t0=$(date +%s)
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN --distpath "$DIST" --workpath "$WORK" packaging/dermviewer.spec
t1=$(date +%s)

"$PY" packaging/make_icon.py "$BUNDLE/dermviewer.png" --size 256
cp packaging/dermviewer.desktop "$BUNDLE/dermviewer.desktop"
cat > "$BUNDLE/install-desktop-entry.sh" <<'SH'
#!/usr/bin/env bash
# Adds DermViewer to this user's application menu, pointing at this folder (run again after moving it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
apps=${XDG_DATA_HOME:-$HOME/.local/share}/applications
mkdir -p "$apps"
sed "s|@BUNDLE@|$here|g" "$here/dermviewer.desktop" > "$apps/dermviewer.desktop"
command -v update-desktop-database >/dev/null && update-desktop-database -q "$apps" || true
echo "installed $apps/dermviewer.desktop"
SH
chmod +x "$BUNDLE/install-desktop-entry.sh"
if command -v desktop-file-validate >/dev/null; then
  sed "s|@BUNDLE@|/opt/dermviewer|g" packaging/dermviewer.desktop > "$WORK/check.desktop"
  desktop-file-validate "$WORK/check.desktop"
fi
rm -rf "$WORK"  # PyInstaller's work folder (~GBs); the bundle is all that is kept

echo "built $BUNDLE in $((t1 - t0)) s"
total=$(du -sb "$BUNDLE" | cut -f1)
files=$(find "$BUNDLE" -type f | wc -l)
awk -v b="$total" -v n="$files" 'BEGIN { printf "bundle size: %.2f GB (%.0f bytes, %d files)\n", b / 1e9, b, n }'
echo "largest parts:"
(cd "$BUNDLE/_internal" && du -sb nvidia torch PySide6 onnxruntime cv2 scipy resources 2>/dev/null | sort -rn |
  awk '{ printf "  %-12s %7.0f MB\n", $2, $1 / 1e6 }')

# The smoke test: a fresh process on a fresh user (no settings, no cache), no display.
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
s0=$(date +%s.%N)
set +e
env -u QT_QPA_PLATFORM -u DISPLAY -u WAYLAND_DISPLAY HOME="$home" XDG_CACHE_HOME="$home/.cache" \
  XDG_CONFIG_HOME="$home/.config" DERMVIEWER_CACHE_DIR="$home/cache" DERMVIEWER_CONFIG_DIR="$home/config" \
  "$BUNDLE/dermviewer" --self-test
rc=$?
set -e
s1=$(date +%s.%N)
awk -v a="$s0" -v b="$s1" -v l="$(cut -d' ' -f1 /proc/loadavg)" \
  'BEGIN { printf "cold start-up (%s --self-test to exit): %.1f s, load average %s\n", "'"$BUNDLE/dermviewer"'", b - a, l }'
[ "$rc" -eq 0 ] || { echo "smoke test FAILED (exit $rc)" >&2; exit "$rc"; }
echo "smoke test passed: $BUNDLE/dermviewer --self-test"
