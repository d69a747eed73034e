# Shared settings for the build scripts; sourced, never run.
# Everything large or slow to make lives outside the work tree, under
# $VFIO_CXL_CACHE, so that a later session on the same machine reuses it.

: "${VFIO_CXL_CACHE:=$HOME/.cache/vfio-cxl}"
QEMU_DEB_VERSION="1:10.2.2+ds-1"
QEMU_UPSTREAM_VERSION="10.2.2"
# No '+' or other regex metacharacters in this path: QEMU passes source
# paths to bindgen's --allowlist-file, which treats them as regexes.
# mk/check-patches.sh sets it to a tree the patch series made.
: "${QEMU_SRC:=$VFIO_CXL_CACHE/qemu-$QEMU_UPSTREAM_VERSION}"
: "${QEMU_BUILD:=$VFIO_CXL_CACHE/build}"
TOOLS_VENV="$VFIO_CXL_CACHE/venv"
# The QEMU targets the build makes, each with the device: x86_64 (q35) and
# aarch64 (virt).  The sanitizer build (mk/check-sanitizers.sh) makes only
# x86_64.
: "${VFIO_CXL_TARGETS:=x86_64 aarch64}"
MESON_VERSION="1.9.0"
# Not 0.72 or 0.73: they pad before 16-aligned fields (Int128) with
# 8-aligned opaque arrays, which moves fields of MemoryRegion and of every
# C struct that embeds one (see check_layout in rust/hw/vfio/cxl).
BINDGEN_VERSION="0.71.1"
: "${CARGO_TARGET_DIR:=$VFIO_CXL_CACHE/target}"
export CARGO_TARGET_DIR
: "${CCACHE_DIR:=$VFIO_CXL_CACHE/ccache}"
export CCACHE_DIR
PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$TOOLS_VENV/bin:$PATH"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Install those of the named Debian packages that are missing; apt's
# output goes to $VFIO_CXL_CACHE/apt-WHAT.log.
ensure_debs() {    # WHAT PACKAGE...
    local what=$1 p missing=()
    shift
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "Installing Debian packages for $what: ${missing[*]}"
    [ "$(id -u)" = 0 ] || die "need root to install: ${missing[*]}"
    mkdir -p "$VFIO_CXL_CACHE"
    local log="$VFIO_CXL_CACHE/apt-$what.log"
    { apt-get -qq update &&
      DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends \
          "${missing[@]}"; } > "$log" 2>&1 ||
        { tail -n 20 "$log"; die "apt-get install ${missing[*]} failed (log: $log)"; }
}

# Build the simulator from this tree; sets SIM to its path.
build_simulator() {
    say "Building the simulator"
    (cd "$PROJECT_ROOT" && cargo build -q -p vfio-user-cxl-sim) || die "building vfio-user-cxl-sim failed"
    SIM="$CARGO_TARGET_DIR/debug/vfio-user-cxl-sim"
    [ -x "$SIM" ] || die "no simulator at $SIM"
}

# Check that QEMU is built for TARGET (default x86_64) and wait for a
# running ninja (it may be relinking it); sets QEMU_BIN to the binary.
need_built_qemu() {    # [TARGET]
    QEMU_BIN="$QEMU_BUILD/qemu-system-${1:-x86_64}"
    [ -x "$QEMU_BIN" ] || die "no QEMU at $QEMU_BIN: run mk/build.sh first"
    # Only a ninja in this build directory can relink it.
    if pgrep -f "ninja -C $QEMU_BUILD( |$)" >/dev/null; then
        say "Waiting for a running ninja to finish (it may be relinking QEMU)"
        while pgrep -f "ninja -C $QEMU_BUILD( |$)" >/dev/null; do sleep 2; done
    fi
}

# The Debian architecture of a QEMU target's Linux guests (what
# mk/guest-image.sh --arch takes) and the directory they are built in.
guest_arch() {    # TARGET
    case "$1" in
        x86_64) echo amd64 ;;
        aarch64) echo arm64 ;;
        *) die "no Linux guest for target '$1' (known: x86_64, aarch64)" ;;
    esac
}
guest_dir() {    # TARGET SERIES
    local arch
    arch=$(guest_arch "$1")
    if [ "$arch" = amd64 ]; then
        echo "$VFIO_CXL_CACHE/guest/linux-$2"
    else
        echo "$VFIO_CXL_CACHE/guest/$arch/linux-$2"
    fi
}

# The first Debian mirror the host's apt sources name (empty if none):
# where packages of a suite the host does not list are derived from.
debian_mirror() {
    local f m=""
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        m=$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ {print $2; exit}' "$f")
        [ -n "$m" ] && break
    done
    if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
        m=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list)
    fi
    echo "$m"
}
