#!/bin/sh
# Install MyVLM Desktop from the unpacked tar.gz, for the current user (no root needed):
#   ./install.sh                 -> ~/.local/opt/myvlm-desktop, commands in ~/.local/bin, a menu entry
#   ./install.sh --uninstall     -> removes all three
# PREFIX=/opt ./install.sh (as root) installs for every user: /opt/opt/myvlm-desktop, /opt/bin, /opt/share.
set -eu

PREFIX="${PREFIX:-$HOME/.local}"
APP_DIR="$PREFIX/opt/myvlm-desktop"
BIN_DIR="$PREFIX/bin"
DESKTOP_DIR="$PREFIX/share/applications"
ICON_DIR="$PREFIX/share/icons/hicolor/scalable/apps"
HERE="$(cd "$(dirname "$0")" && pwd)"

if [ "${1:-}" = "--uninstall" ]; then
    rm -rf "$APP_DIR"
    rm -f "$BIN_DIR/myvlm-desktop" "$BIN_DIR/myvlm" "$DESKTOP_DIR/myvlm-desktop.desktop" "$ICON_DIR/myvlm-desktop.svg"
    echo "MyVLM Desktop removed (your library and its data folder are kept)."
    exit 0
fi
if [ ! -x "$HERE/myvlm-desktop" ] || [ ! -x "$HERE/myvlm" ]; then
    echo "install.sh: run me from the unpacked myvlm-desktop folder (myvlm-desktop and myvlm beside me)" >&2
    exit 2
fi

mkdir -p "$APP_DIR" "$BIN_DIR" "$DESKTOP_DIR" "$ICON_DIR"
if [ "$HERE" != "$APP_DIR" ]; then
    rm -rf "$APP_DIR"
    cp -a "$HERE" "$APP_DIR"
fi
ln -sf "$APP_DIR/myvlm-desktop" "$BIN_DIR/myvlm-desktop"
ln -sf "$APP_DIR/myvlm" "$BIN_DIR/myvlm"
cp "$HERE/myvlm-desktop.svg" "$ICON_DIR/myvlm-desktop.svg"
# the menu entry starts the installed executable by its full path: ~/.local/bin is not on every PATH
sed "s|^Exec=myvlm-desktop|Exec=\"$APP_DIR/myvlm-desktop\"|" "$HERE/myvlm-desktop.desktop" \
    > "$DESKTOP_DIR/myvlm-desktop.desktop"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$DESKTOP_DIR" || true
echo "MyVLM Desktop installed in $APP_DIR"
echo "Start it from the applications menu, or run: $BIN_DIR/myvlm-desktop   (command line: $BIN_DIR/myvlm)"
