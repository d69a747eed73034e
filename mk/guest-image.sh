#!/usr/bin/env bash
# Build the Linux guests that the functional test and the demo boot, one
# per kernel series (default: all of them) and architecture (default
# amd64, for q35; arm64 for virt):
#
#   $VFIO_CXL_CACHE/guest/linux-6.1/   Debian bookworm's kernel 6.1
#   $VFIO_CXL_CACHE/guest/linux-7.2/   Debian unstable's kernel 7.2 and our
#                                      Type-2 driver (tests/functional/
#                                      cxl-type2-driver), built against its
#                                      headers
#   $VFIO_CXL_CACHE/guest/arm64/linux-6.1/, .../arm64/linux-7.2/
#                                      the same for arm64
#
# each with vmlinuz, initramfs.cpio.gz (busybox, the CXL modules, /init,
# /bin/vfio-cxl-guest) and kernel-version ("<package> <uname -r>").
#
# An arm64 guest is cross-built: Debian's arm64 packages come through a
# private apt state for that architecture (the host's dpkg architectures
# are never changed); the check program and our driver are built in the
# unstable chroot of mk/sid-chroot.sh with its gcc-aarch64-linux-gnu (not
# the host's: bookworm's conflicts with gcc-multilib, which the host may
# need), the driver against the arm64 headers package; and the firmware
# that boots the guest comes from Debian's qemu-efi-aarch64
# (/usr/share/AAVMF), installed on the host.
#
# Everything comes from Debian packages fetched with apt-get download and
# unpacked with dpkg -x (nothing is installed on the host except, when
# missing, the build tools).  Packages of a suite the host does not list
# (unstable) come through a private apt state derived from the host's
# Debian mirror, as mk/qemu-source.sh does; the host's apt sources are
# never changed.  Idempotent: a second run only checks, and an initramfs
# is rebuilt only when its inputs change.
#
# Two package layouts are handled: 6.1's linux-image-V holds /boot/vmlinuz-V
# and /lib/modules/V; 7.x's linux-image-V is empty and depends on
# linux-binary-V (vmlinuz), linux-modules-V (modules) and linux-base-V
# (config, modules.builtin), all under /usr/lib/modules/V/.
#
# /init loads the CXL modules, then the driver modules once the CXL core
# has settled, and either runs the report program and powers off (kernel
# command line vfio_cxl_run=report, what the functional test does) or
# starts a shell on the console (the demo).
#
# Usage: mk/guest-image.sh [--arch ARCH] [SERIES...]
#        ARCH: amd64 (default), arm64; SERIES: 6.1, 7.2
# Environment: VFIO_CXL_GUEST_KERNEL_<SERIES>=linux-image-... (dots as
# underscores, e.g. VFIO_CXL_GUEST_KERNEL_6_1) pins a kernel package
# instead of the newest of that series apt knows.
set -euo pipefail
source "$(dirname "$0")/env.sh"
SELF="$PROJECT_ROOT/mk/guest-image.sh"

GUEST="$VFIO_CXL_CACHE/guest"
DEBS="$GUEST/debs"
ARCH=amd64
if [ "${1:-}" = --arch ]; then
    [ $# -ge 2 ] || die "--arch needs an architecture (amd64, arm64)"
    ARCH=$2
    shift 2
fi
HOST_ARCH="$(dpkg --print-architecture)"
GUEST_SRC="$PROJECT_ROOT/tests/functional/vfio-cxl-guest.c"
DRIVER_BUILD="$PROJECT_ROOT/tests/functional/cxl-type2-driver/build.sh"
ALL_SERIES=(6.1 7.2)

# Per series: the suite that carries it, the CXL modules the guest loads
# (those built into the kernel are skipped; dependencies are added from
# each module's own depends= list) and our driver modules, loaded last.
declare -A SUITE=([6.1]=bookworm [7.2]=sid)
declare -A CXL_MODULES=([6.1]="cxl_core cxl_port cxl_acpi cxl_pci cxl_mem"
                        [7.2]="cxl_core cxl_port cxl_acpi cxl_pci cxl_mem")
declare -A DRIVERS=([6.1]="" [7.2]="cxl_type2")

# Per architecture: where its guests go (the kernels, unpacked under
# $GUEST/kernels/, carry the architecture in their package names), the C
# compiler for the check program (a cross compiler runs in the chroot),
# the host's Debian packages, and the kernel options the guest needs
# beside the common ones (its console UART, how PCI configuration space
# is reached under ACPI).
case "$ARCH" in
    amd64)
        OUT_ROOT="$GUEST"
        CC=gcc
        TOOL_DEBS=(gcc libc6-dev)
        ARCH_CONFIG=(CONFIG_SERIAL_8250_CONSOLE CONFIG_PCI_MMCONFIG)
        ;;
    arm64)
        OUT_ROOT="$GUEST/arm64"
        CC=aarch64-linux-gnu-gcc
        TOOL_DEBS=(qemu-efi-aarch64)
        ARCH_CONFIG=(CONFIG_SERIAL_AMBA_PL011_CONSOLE CONFIG_ACPI_MCFG CONFIG_EFI_STUB)
        ;;
    *) die "unknown architecture '$ARCH' (known: amd64, arm64)" ;;
esac
[ "$HOST_ARCH" = amd64 ] || die "the guests are built on an amd64 host, this one is $HOST_ARCH"

mkdir -p "$GUEST" "$DEBS" "$OUT_ROOT"
cd "$GUEST"

# --------------------------------------------------------------------------
# Host tools
# --------------------------------------------------------------------------
for tool in apt-get apt-cache dpkg dpkg-deb gzip; do
    command -v "$tool" >/dev/null || die "$tool is missing: this script needs a Debian host"
done
# cpio packs the initramfs; the compiler and its libc.a build the static
# check program; xz unpacks 7.x's modules.
ensure_debs "guest-$ARCH" cpio xz-utils "${TOOL_DEBS[@]}"

# --------------------------------------------------------------------------
# apt: the host's own sources, or a private state for another suite
# --------------------------------------------------------------------------
# apt_opts SUITE: fills APT_OPTS with the options that make apt-get and
# apt-cache use SUITE for $ARCH.  The host's suites (or "") on the host's
# architecture need none; another suite gets a private source list and
# state under $VFIO_CXL_CACHE/apt-SUITE, another architecture one under
# apt-SUITE-ARCH (that architecture only; suite "" is then bookworm, the
# host's), each updated once per run.  (Unstable's Release file may be
# past its Valid-Until date on a mirror snapshot, hence
# Check-Valid-Until=false there.)
declare -A APT_UPDATED=()
apt_opts() {
    local suite=$1 dir mirror
    APT_OPTS=()
    if [ "$ARCH" = "$HOST_ARCH" ]; then
        [ -n "$suite" ] || return 0
        grep -rqsE "^(Suites:.*[[:space:]]|deb .*[[:space:]])$suite([[:space:]]|$)" \
            /etc/apt/sources.list /etc/apt/sources.list.d/ && return 0
        dir="$VFIO_CXL_CACHE/apt-$suite"
    else
        suite="${suite:-bookworm}"
        dir="$VFIO_CXL_CACHE/apt-$suite-$ARCH"
    fi
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    APT_OPTS=(-o "Dir::Etc::SourceList=/dev/null"
              -o "Dir::Etc::SourceParts=/dev/null"
              -o "Dir::Etc::sourcelist=$dir/$suite.sources"
              -o "Dir::State::Lists=$dir/lists"
              -o "Dir::State::status=/dev/null"
              -o "Dir::Cache=$dir/cache"
              -o "Acquire::Check-Valid-Until=false")
    [ "$ARCH" = "$HOST_ARCH" ] ||
        APT_OPTS+=(-o "APT::Architecture=$ARCH" -o "APT::Architectures=$ARCH")
    [ -n "${APT_UPDATED[$dir]:-}" ] && return 0
    mirror="$(debian_mirror)"
    [ -n "$mirror" ] ||
        die "no Debian mirror in /etc/apt/sources.list{,.d}: cannot derive a '$suite' source"
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$mirror" "$suite" > "$dir/$suite.sources"
    say "Updating the package index of '$suite' (private apt state in $dir)" >&2
    apt-get "${APT_OPTS[@]}" -o APT::Sandbox::User=root -qq update > "$dir/update.log" 2>&1 ||
        { tail -n 5 "$dir/update.log"; die "apt-get update of '$suite' from $mirror failed"; }
    APT_UPDATED[$dir]=1
}

apt_download() {    # SUITE PACKAGE...
    local suite=$1 sandbox=()
    shift
    apt_opts "$suite"
    # As root apt cannot drop privileges to _apt for a root-owned
    # directory; download unsandboxed there instead of warning about it.
    [ "$(id -u)" = 0 ] && sandbox=(-o APT::Sandbox::User=root)
    (cd "$DEBS" && apt-get "${APT_OPTS[@]}" download "${sandbox[@]}" "$@")
}

# --------------------------------------------------------------------------
# Kernel: the newest linux-image-SERIES.*-ARCH that apt can actually fetch
# --------------------------------------------------------------------------
# kernel_candidates SERIES: package names, newest first, then kernels an
# earlier run unpacked (the fallback when apt has nothing).
kernel_candidates() {
    local series=$1 pin re
    pin="VFIO_CXL_GUEST_KERNEL_${series//./_}"
    if [ -n "${!pin:-}" ]; then
        echo "${!pin}"
        return 0
    fi
    # 6.1.0-31-amd64 (bookworm) or 7.2.13+deb14-arm64 (unstable).
    re="^linux-image-${series//./\\.}\\.[0-9]+(-[0-9]+|\\+deb[0-9]+)-$ARCH\$"
    apt_opts "${SUITE[$series]}"
    apt-cache "${APT_OPTS[@]}" search --names-only "$re" | awk '{print $1}' |
        grep -E "$re" | sort -rV || true
    for d in "$GUEST"/kernels/linux-image-"$series".*-"$ARCH"; do
        [ -f "$d/.complete" ] && basename "$d"
    done
    return 0
}

# unpack_kernel SERIES PACKAGE: vmlinuz, config and the CXL modules (with
# their dependencies, uncompressed) into $GUEST/kernels/PACKAGE.
unpack_kernel() {
    local series=$1 kpkg=$2 abi deb deps p tmp kver modroot kdir
    kdir="$GUEST/kernels/$kpkg"
    abi="${kpkg#linux-image-}"
    say "Fetching $kpkg (apt-get download, suite ${SUITE[$series]})"
    rm -f "$DEBS"/linux-*"$abi"_*.deb
    apt_download "${SUITE[$series]}" "$kpkg" > "$GUEST/apt-download.log" 2>&1 ||
        { tail -n 3 "$GUEST/apt-download.log" | sed 's/^/    /'; return 1; }
    deb="$(ls "$DEBS/${kpkg}"_*.deb 2>/dev/null | head -n 1)"
    [ -n "$deb" ] || die "apt-get download $kpkg left no .deb in $DEBS"
    # 7.x: the image package only depends on the parts of the same ABI.
    deps="$(dpkg-deb -f "$deb" Depends | tr ',|' '\n\n' | awk '{print $1}' |
        grep -E "^linux-(binary|modules|base)-${abi//+/\\+}\$" || true)"
    if [ -n "$deps" ]; then
        say "Fetching its parts: $(echo $deps)"
        # shellcheck disable=SC2086
        apt_download "${SUITE[$series]}" $deps > "$GUEST/apt-download.log" 2>&1 ||
            { tail -n 5 "$GUEST/apt-download.log"; die "apt-get download $deps failed"; }
    fi
    tmp="$GUEST/kernels/.unpack"
    rm -rf "$tmp" "$kdir"
    mkdir -p "$tmp" "$kdir/modules"
    for p in "$kpkg" $deps; do
        deb="$(ls "$DEBS/${p}"_*.deb 2>/dev/null | head -n 1)"
        [ -n "$deb" ] || die "apt-get download $p left no .deb in $DEBS"
        say "Unpacking $(basename "$deb") (dpkg -x, not installed)"
        dpkg -x "$deb" "$tmp" || die "dpkg -x $deb failed"
    done
    for modroot in "$tmp"/lib/modules/* "$tmp"/usr/lib/modules/*; do
        [ -d "$modroot/kernel" ] && break
    done
    [ -d "$modroot/kernel" ] ||
        die "$kpkg${deps:+ and $(echo $deps)}: no modules in /lib/modules/<version>/kernel nor /usr/lib/modules/<version>/kernel"
    kver="$(basename "$modroot")"
    for p in "$tmp/boot/vmlinuz-$kver" "$modroot/vmlinuz" ""; do
        [ -f "$p" ] && break
    done
    [ -n "$p" ] || die "$kpkg: no /boot/vmlinuz-$kver nor $modroot/vmlinuz (looked in $(echo $kpkg $deps))"
    cp "$p" "$kdir/vmlinuz"
    for p in "$tmp/boot/config-$kver" "$modroot/config" ""; do
        [ -f "$p" ] && break
    done
    [ -n "$p" ] || die "$kpkg: no /boot/config-$kver nor $modroot/config"
    cp "$p" "$kdir/config"
    [ -f "$modroot/modules.builtin" ] || die "$kpkg: no $modroot/modules.builtin"
    echo "$kver" > "$kdir/version"

    # Modules: the CXL ones and their dependencies, dependencies first.
    # The packages ship no modules.dep (depmod runs in a postinst), so the
    # dependencies come from where depmod reads them: each module's
    # depends= field.
    mod_path() {
        find "$modroot/kernel" \( -name "$1.ko" -o -name "$1.ko.xz" -o -name "$1.ko.zst" \
            -o -name "$1.ko.gz" \) | head -n 1
    }
    mod_cat() {
        case "$1" in
            *.ko.xz) xz -dc "$1" ;;
            *.ko.zst) zstd -dcq "$1" ;;
            *.ko.gz) gzip -dc "$1" ;;
            *) cat "$1" ;;
        esac
    }
    local builtins name
    builtins="$(sed 's#.*/##; s#\.ko$##; s#-#_#g' "$modroot/modules.builtin")"
    declare -A seen=()
    add_module() {
        local name="${1//-/_}" path dep deps
        [ -z "${seen[$name]:-}" ] || return 0
        seen[$name]=1
        if grep -qx "$name" <<<"$builtins"; then
            echo "$name" >> "$kdir/builtin"
            return 0
        fi
        # A module file may spell '_' as '-'.
        path="$(mod_path "$name")"
        [ -n "$path" ] || path="$(mod_path "${name//_/-}")"
        [ -n "$path" ] || die "module $name is neither built into $kver nor in $kpkg${deps:+ $deps}"
        deps="$(mod_cat "$path" | tr '\0' '\n' | grep -a '^depends=' | head -n 1 | cut -d= -f2)"
        for dep in ${deps//,/ }; do
            add_module "$dep"
        done
        mod_cat "$path" > "$kdir/modules/$name.ko"
        echo "$name" >> "$kdir/load-order"
    }
    : > "$kdir/builtin"
    : > "$kdir/load-order"
    for name in ${CXL_MODULES[$series]}; do
        add_module "$name"
    done
    rm -rf "$tmp"
    for p in "$kpkg" $deps; do
        rm -f "$DEBS/${p}"_*.deb
    done
    echo "${CXL_MODULES[$series]}" > "$kdir/.complete"
}

# kernel_for SERIES: sets KPKG and KDIR to an unpacked kernel of SERIES.
kernel_for() {
    local series=$1 pkg
    local -a candidates
    mapfile -t candidates < <(kernel_candidates "$series")
    [ ${#candidates[@]} -gt 0 ] ||
        die "apt knows no linux-image-$series.*-$ARCH package in '${SUITE[$series]}' (and none was unpacked before)"
    KPKG=""
    for pkg in "${candidates[@]}"; do
        KDIR="$GUEST/kernels/$pkg"
        if [ "$(cat "$KDIR/.complete" 2>/dev/null)" = "${CXL_MODULES[$series]}" ] ||
            unpack_kernel "$series" "$pkg"; then
            KPKG="$pkg"
            return 0
        fi
        echo "  $pkg is listed but could not be downloaded"
    done
    die "none of the kernel packages could be fetched: ${candidates[*]}"
}

# --------------------------------------------------------------------------
# busybox (static)
# --------------------------------------------------------------------------
BB_DIR="$OUT_ROOT/busybox"
if [ ! -x "$BB_DIR/busybox" ]; then
    say "Fetching busybox-static (apt-get download)"
    rm -f "$DEBS"/busybox-static_*.deb
    apt_download "" busybox-static >"$GUEST/apt-download.log" 2>&1 ||
        { tail -n 5 "$GUEST/apt-download.log"; die "apt-get download busybox-static failed"; }
    tmp="$OUT_ROOT/.busybox-unpack"
    rm -rf "$tmp"
    dpkg -x "$DEBS"/busybox-static_*.deb "$tmp"
    mkdir -p "$BB_DIR"
    cp "$tmp/bin/busybox" "$BB_DIR/busybox.new"
    dpkg-deb -f "$DEBS"/busybox-static_*.deb Version > "$BB_DIR/version"
    mv "$BB_DIR/busybox.new" "$BB_DIR/busybox"
    rm -rf "$tmp" "$DEBS"/busybox-static_*.deb
fi
echo "  busybox:  $(cat "$BB_DIR/version")"

# --------------------------------------------------------------------------
# /init
# --------------------------------------------------------------------------
INIT_TEXT='#!/bin/busybox sh
# /init of the vfio-cxl guest (written by mk/guest-image.sh).
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "vfio-cxl-guest: Linux $(uname -r)"

load() {
    while read -r m; do
        if insmod "/lib/modules/$m.ko"; then
            echo "vfio-cxl-guest: loaded $m"
        else
            echo "vfio-cxl-guest: insmod $m failed"
        fi
    done < "$1"
}

# The CXL core probes ports asynchronously: wait until the device list
# has been the same for a second (at most 15 s; not at all without a CXL
# root, ACPI0017, i.e. on a machine without cxl=on).
settle() {
    prev=""; same=0; i=0
    [ -e /sys/bus/acpi/devices/ACPI0017:00 ] || i=75
    while [ $i -lt 75 ] && [ $same -lt 5 ]; do
        now="$(ls /sys/bus/cxl/devices 2>/dev/null | tr "\n" " ")"
        if [ -n "$now" ] && [ "$now" = "$prev" ]; then same=$((same + 1)); else same=0; fi
        prev="$now"; i=$((i + 1)); sleep 0.2
    done
    echo "vfio-cxl-guest: cxl devices: ${prev:-none}"
}

load /lib/modules/load-order
settle
# Our driver asks the CXL core for the device memory: only once the core
# has found the CXL root and host bridges.
if [ -s /lib/modules/driver-order ]; then
    load /lib/modules/driver-order
    settle
fi

run=shell
for arg in $(cat /proc/cmdline); do
    case "$arg" in vfio_cxl_run=*) run="${arg#vfio_cxl_run=}" ;; esac
done
if [ "$run" = report ]; then
    # Keep kernel messages off the console while the report is printed
    # (the report quotes the CXL ones from the log buffer).
    dmesg -n 1
    /bin/vfio-cxl-guest
    echo "vfio-cxl-guest: report program exit status $?"
else
    echo "vfio-cxl-guest: /bin/vfio-cxl-guest prints the report; exit the shell to power off"
    setsid cttyhack sh
fi
sync
# poweroff -f stops the machine at once, and with it a UART that still has
# the end of the report in its buffers: the report program waits for its
# output to be sent (tcdrain), this covers the lines printed after it.
sleep 1
poweroff -f
'

# --------------------------------------------------------------------------
# The guest program
# --------------------------------------------------------------------------
[ -f "$GUEST_SRC" ] || die "missing $GUEST_SRC"
CFLAGS=(-static -O2 -Wall -Wextra)
bin="$OUT_ROOT/vfio-cxl-guest"
# The compiler runs on the host or, for another architecture, in the
# chroot, on a copy of the source in its /tmp.
if [ "$ARCH" = "$HOST_ARCH" ]; then
    run_cc() { "$CC" "$@"; }
    src="$GUEST_SRC" out="$bin.new"
else
    source "$PROJECT_ROOT/mk/sid-chroot.sh"
    sid_chroot "the $ARCH check program"
    chroot "$SID_CHROOT" sh -c "command -v $CC" >/dev/null ||
        sid_chroot_install "the $ARCH cross compiler" "gcc-${CC%-gcc}" "libc6-dev-$ARCH-cross"
    run_cc() { chroot "$SID_CHROOT" "$CC" "$@"; }
    src="/tmp/vfio-cxl-guest-$ARCH/$(basename "$GUEST_SRC")" out="/tmp/vfio-cxl-guest-$ARCH/out"
fi
prog_key="$(sha256sum "$GUEST_SRC" | cut -c1-64) ${CFLAGS[*]} $CC $(run_cc -dumpfullversion)"
if [ ! -x "$bin" ] || [ "$(cat "$bin.stamp" 2>/dev/null)" != "$prog_key" ]; then
    say "Compiling $(basename "$GUEST_SRC") ($CC ${CFLAGS[*]})"
    if [ "$ARCH" != "$HOST_ARCH" ]; then
        rm -rf "$SID_CHROOT$(dirname "$src")"
        mkdir -p "$SID_CHROOT$(dirname "$src")"
        cp "$GUEST_SRC" "$SID_CHROOT$src"
    fi
    run_cc "${CFLAGS[@]}" -o "$out" "$src" || die "compiling $GUEST_SRC failed"
    [ "$ARCH" = "$HOST_ARCH" ] || { mv "$SID_CHROOT$out" "$bin.new"; rm -rf "$SID_CHROOT$(dirname "$src")"; }
    mv "$bin.new" "$bin"
    echo "$prog_key" > "$bin.stamp"
fi

# --------------------------------------------------------------------------
# One guest per series: kernel, driver modules, initramfs
# --------------------------------------------------------------------------
build_image() {
    local series=$1 out="$OUT_ROOT/linux-$1" kver drv initrd initrd_key root name
    kernel_for "$series"
    kver="$(cat "$KDIR/version")"
    say "Linux $series: $KPKG ($kver)"
    echo "  CXL modules built in: $(tr '\n' ' ' < "$KDIR/builtin")"
    echo "  modules to load:      $(tr '\n' ' ' < "$KDIR/load-order")"
    for opt in CONFIG_BLK_DEV_INITRD CONFIG_RD_GZIP CONFIG_DEVTMPFS CONFIG_DEVMEM CONFIG_ACPI \
               "${ARCH_CONFIG[@]}"; do
        grep -q "^$opt=y" "$KDIR/config" || die "$KPKG lacks $opt=y, which the guest needs"
    done

    # Our driver modules, built against this kernel's Debian headers (for
    # another architecture than the host's: its headers package, fetched
    # once and kept beside the kernel, which the driver build unpacks).
    drv="$KDIR/drivers"
    mkdir -p "$drv" "$out"
    : > "$out/driver-order.new"
    local -a headers=()
    if [ -n "${DRIVERS[$series]}" ] && [ "$ARCH" != "$HOST_ARCH" ]; then
        headers=("$(ls "$KDIR"/linux-headers-"$kver"_*.deb 2>/dev/null | head -n 1 || true)")
        if [ -z "${headers[0]}" ]; then
            say "Fetching linux-headers-$kver (apt-get download, suite ${SUITE[$series]})"
            rm -f "$DEBS"/linux-headers-"$kver"_*.deb
            apt_download "${SUITE[$series]}" "linux-headers-$kver" > "$GUEST/apt-download.log" 2>&1 ||
                { tail -n 5 "$GUEST/apt-download.log"; die "apt-get download linux-headers-$kver failed"; }
            mv "$DEBS"/linux-headers-"$kver"_*.deb "$KDIR/"
            headers=("$(ls "$KDIR"/linux-headers-"$kver"_*.deb | head -n 1)")
        fi
    fi
    for name in ${DRIVERS[$series]}; do
        "$DRIVER_BUILD" "$kver" "$drv" "${headers[@]}" ||
            die "building the $name module for $kver failed"
        [ -f "$drv/$name.ko" ] || die "$DRIVER_BUILD left no $drv/$name.ko"
        echo "$name" >> "$out/driver-order.new"
    done
    mv "$out/driver-order.new" "$out/driver-order"
    [ -s "$out/driver-order" ] && echo "  driver modules:       $(tr '\n' ' ' < "$out/driver-order")"

    if ! cmp -s "$KDIR/vmlinuz" "$out/vmlinuz"; then
        cp "$KDIR/vmlinuz" "$out/vmlinuz.new"
        mv "$out/vmlinuz.new" "$out/vmlinuz"
    fi
    echo "$KPKG $kver" > "$out/kernel-version"

    initrd="$out/initramfs.cpio.gz"
    initrd_key="$( {
        sha256sum "$SELF" "$bin" "$BB_DIR/busybox"
        printf '%s\n' "$INIT_TEXT" "$KPKG"
        cat "$KDIR/load-order" "$out/driver-order"
        sha256sum "$KDIR"/modules/*.ko
        while read -r name; do sha256sum "$drv/$name.ko"; done < "$out/driver-order"
    } | sha256sum | cut -c1-64)"
    if [ -f "$initrd" ] && [ "$(cat "$initrd.stamp" 2>/dev/null)" = "$initrd_key" ]; then
        say "Initramfs for $series up to date"
    else
        say "Building the initramfs for $series"
        root="$out/.initramfs-root"
        rm -rf "$root"
        mkdir -p "$root/bin" "$root/lib/modules" "$root/proc" "$root/sys" "$root/dev" "$root/tmp"
        cp "$BB_DIR/busybox" "$root/bin/busybox"
        cp "$bin" "$root/bin/vfio-cxl-guest"
        printf '%s' "$INIT_TEXT" > "$root/init"
        chmod 755 "$root/init" "$root/bin/busybox" "$root/bin/vfio-cxl-guest"
        cp "$KDIR/load-order" "$root/lib/modules/load-order"
        cp "$out/driver-order" "$root/lib/modules/driver-order"
        while read -r name; do
            cp "$KDIR/modules/$name.ko" "$root/lib/modules/"
        done < "$KDIR/load-order"
        while read -r name; do
            cp "$drv/$name.ko" "$root/lib/modules/"
        done < "$out/driver-order"
        # The kernel opens /dev/console for /init before devtmpfs is mounted;
        # its built-in initramfs has one too, this is belt and braces.
        [ "$(id -u)" = 0 ] && mknod -m 600 "$root/dev/console" c 5 1
        (cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
            cpio --quiet -o -H newc -R 0:0 --reproducible) > "$out/initramfs.cpio" ||
            die "cpio failed"
        gzip -9n < "$out/initramfs.cpio" > "$initrd.new"
        rm -f "$out/initramfs.cpio"
        mv "$initrd.new" "$initrd"
        echo "$initrd_key" > "$initrd.stamp"
        rm -rf "$root"
    fi
    echo "  kernel:    $out/vmlinuz"
    echo "  initramfs: $initrd ($(du -k "$initrd" | cut -f1) KiB)"
}

series_list=("$@")
[ ${#series_list[@]} -gt 0 ] || series_list=("${ALL_SERIES[@]}")
for series in "${series_list[@]}"; do
    [ -n "${SUITE[$series]:-}" ] || die "unknown kernel series '$series' (known: ${ALL_SERIES[*]})"
    build_image "$series"
done
say "Guest images ready ($ARCH): ${series_list[*]}"
