#!/usr/bin/env bash
# Debian libraries Qt needs even offscreen (EGL/GL, xkbcommon, fontconfig, dbus) and Xvfb for
# screenshots. Installed only when missing, and only where we may (root with apt-get).
set -u
need=()
for lib in libEGL.so.1 libGL.so.1 libxkbcommon.so.0 libfontconfig.so.1 libdbus-1.so.3 libxkbcommon-x11.so.0 libxcb-cursor.so.0; do
  ldconfig -p 2>/dev/null | grep -q "$lib" || need+=("$lib")
done
command -v Xvfb >/dev/null 2>&1 || need+=("Xvfb")
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system libraries for Qt: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends \
    libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libxcb-cursor0 \
    libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-randr0 libxcb-render-util0 libxcb-image0 \
    libxcb-xinerama0 libxcb-xkb1 xvfb >/dev/null
else
  echo "warning: missing system libraries for Qt (${need[*]}); install them with your package manager" >&2
fi
exit 0
