#!/usr/bin/env bash
# Install what the build and the tests need: Debian packages, meson from
# PyPI (QEMU's Rust support needs meson >= 1.9, newer than Debian's),
# bindgen-cli from crates.io.  Each step is skipped when already done.
set -euo pipefail
source "$(dirname "$0")/env.sh"

ensure_debs build \
    build-essential ninja-build pkg-config python3-venv flex bison \
    libglib2.0-dev libpixman-1-dev zlib1g-dev libslirp-dev libfdt-dev \
    clang libclang-dev ccache dpkg-dev xz-utils \
    gcc-multilib \
    seabios ipxe-qemu

if ! "$TOOLS_VENV/bin/meson" --version 2>/dev/null | grep -qx "$MESON_VERSION"; then
    say "Installing meson $MESON_VERSION into $TOOLS_VENV"
    python3 -m venv "$TOOLS_VENV"
    "$TOOLS_VENV/bin/pip" install -q "meson==$MESON_VERSION"
fi

# Into cargo's own bin directory, on PATH like cargo itself: meson looks
# bindgen up again whenever ninja regenerates the build.
if ! bindgen --version 2>/dev/null | grep -q "$BINDGEN_VERSION"; then
    say "Installing bindgen-cli $BINDGEN_VERSION with cargo"
    cargo install --quiet --locked bindgen-cli --version "$BINDGEN_VERSION"
fi
