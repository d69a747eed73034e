#!/usr/bin/env bash
# Build the Linux guest that the functional test and the demo boot:
#
#   $VFIO_CXL_CACHE/guest/vmlinuz            Debian bookworm's kernel 6.1
#   $VFIO_CXL_CACHE/guest/initramfs.cpio.gz  busybox, the CXL modules,
#                                            /init, /bin/vfio-cxl-guest
#
# Everything comes from Debian packages fetched with apt-get download and
# unpacked with dpkg -x (nothing is installed on the host except, when
# missing, the build tools cpio and libc6-dev).  Idempotent: a second run
# only checks, and the initramfs is rebuilt only when its inputs change
# (this script, the guest program's source, the kernel or busybox).
#
# /init loads the CXL modules and then either runs the report program and
# powers off (kernel command line vfio_cxl_run=report, what the functional
# test does) or starts a shell on the console (the demo).
#
# Environment: VFIO_CXL_GUEST_KERNEL=linux-image-6.1.0-N-amd64 pins the
# kernel package instead of taking the newest 6.1 one apt knows.
set -euo pipefail
source "$(dirname "$0")/env.sh"
SELF="$PROJECT_ROOT/mk/guest-image.sh"

GUEST="$VFIO_CXL_CACHE/guest"
DEBS="$GUEST/debs"
GUEST_SRC="$PROJECT_ROOT/tests/functional/vfio-cxl-guest.c"
# The CXL modules the guest loads (those built into the kernel are skipped;
# their dependencies are added from each module's own depends= list).
CXL_MODULES=(cxl_core cxl_port cxl_acpi cxl_pci cxl_mem)

mkdir -p "$GUEST" "$DEBS"
cd "$GUEST"

apt_download() {
    # As root apt cannot drop privileges to _apt for a root-owned
    # directory; download unsandboxed there instead of warning about it.
    local sandbox=()
    [ "$(id -u)" = 0 ] && sandbox=(-o APT::Sandbox::User=root)
    (cd "$DEBS" && apt-get download "${sandbox[@]}" "$@")
}

# --------------------------------------------------------------------------
# Host tools
# --------------------------------------------------------------------------
for tool in apt-get apt-cache dpkg dpkg-deb gzip; do
    command -v "$tool" >/dev/null || die "$tool is missing: this script needs a Debian host"
done
# cpio packs the initramfs; gcc and libc6-dev's libc.a build the static
# check program.
ensure_debs guest cpio gcc libc6-dev

# --------------------------------------------------------------------------
# Kernel: newest linux-image-6.1.*-amd64 that apt can actually fetch
# --------------------------------------------------------------------------
if [ -n "${VFIO_CXL_GUEST_KERNEL:-}" ]; then
    candidates=("$VFIO_CXL_GUEST_KERNEL")
else
    mapfile -t candidates < <(apt-cache search --names-only '^linux-image-6\.1\.[0-9]+-[0-9]+-amd64$' |
        awk '{print $1}' | grep -E '^linux-image-6\.1\.[0-9]+-[0-9]+-amd64$' | sort -rV)
    # A kernel unpacked by an earlier run is the fallback when apt has
    # nothing (e.g. no index yet and no network).
    for d in "$GUEST"/kernel/linux-image-*; do
        [ -f "$d/.complete" ] && candidates+=("$(basename "$d")")
    done
fi
[ ${#candidates[@]} -gt 0 ] ||
    die "apt-cache knows no linux-image-6.1.*-amd64 package: run 'apt-get update' (bookworm sources needed)"

kpkg=""
for pkg in "${candidates[@]}"; do
    if [ "$(cat "$GUEST/kernel/$pkg/.complete" 2>/dev/null)" = "${CXL_MODULES[*]}" ]; then
        kpkg="$pkg"
        break
    fi
    say "Fetching $pkg (apt-get download)"
    rm -f "$DEBS/${pkg}"_*.deb
    if apt_download "$pkg" >"$GUEST/apt-download.log" 2>&1; then
        kpkg="$pkg"
        break
    fi
    echo "  $pkg is listed but could not be downloaded:"
    tail -n 3 "$GUEST/apt-download.log" | sed 's/^/    /'
done
[ -n "$kpkg" ] || die "none of the kernel packages could be fetched: ${candidates[*]}"

KDIR="$GUEST/kernel/$kpkg"
if [ "$(cat "$KDIR/.complete" 2>/dev/null)" != "${CXL_MODULES[*]}" ]; then
    deb="$(ls "$DEBS/${kpkg}"_*.deb 2>/dev/null | head -n 1)"
    if [ -z "$deb" ]; then
        say "Fetching $kpkg (apt-get download)"
        apt_download "$kpkg" >"$GUEST/apt-download.log" 2>&1 ||
            { tail -n 5 "$GUEST/apt-download.log"; die "apt-get download $kpkg failed"; }
        deb="$(ls "$DEBS/${kpkg}"_*.deb 2>/dev/null | head -n 1)"
    fi
    [ -n "$deb" ] || die "apt-get download $kpkg left no .deb in $DEBS"
    say "Unpacking $(basename "$deb") (dpkg -x, not installed)"
    tmp="$GUEST/kernel/.unpack"
    rm -rf "$tmp" "$KDIR"
    mkdir -p "$tmp" "$KDIR/modules"
    dpkg -x "$deb" "$tmp" || die "dpkg -x $deb failed"
    kver="$(ls "$tmp/lib/modules" | head -n 1)"
    [ -n "$kver" ] && [ -f "$tmp/boot/vmlinuz-$kver" ] ||
        die "$deb has no /boot/vmlinuz-<version> and /lib/modules/<version>"
    MODROOT="$tmp/lib/modules/$kver"
    cp "$tmp/boot/vmlinuz-$kver" "$KDIR/vmlinuz"
    cp "$tmp/boot/config-$kver" "$KDIR/config"
    echo "$kver" > "$KDIR/version"

    # Modules: the CXL ones and their dependencies, dependencies first.
    # The package ships no modules.dep (depmod runs in its postinst), so
    # the dependencies come from where depmod reads them: each module's
    # depends= field.  Only the selected modules are kept (uncompressed).
    mod_path() {
        find "$MODROOT/kernel" \( -name "$1.ko" -o -name "$1.ko.xz" -o -name "$1.ko.zst" \
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
    builtins="$(sed 's#.*/##; s#\.ko$##; s#-#_#g' "$MODROOT/modules.builtin")"
    declare -A seen=()
    add_module() {
        local name="${1//-/_}" path dep deps
        [ -z "${seen[$name]:-}" ] || return 0
        seen[$name]=1
        if grep -qx "$name" <<<"$builtins"; then
            echo "$name" >> "$KDIR/builtin"
            return 0
        fi
        # A module file may spell '_' as '-'.
        path="$(mod_path "$name")"
        [ -n "$path" ] || path="$(mod_path "${name//_/-}")"
        [ -n "$path" ] || die "module $name is neither built into $kver nor in $kpkg"
        deps="$(mod_cat "$path" | tr '\0' '\n' | grep -a '^depends=' | head -n 1 | cut -d= -f2)"
        for dep in ${deps//,/ }; do
            add_module "$dep"
        done
        mod_cat "$path" > "$KDIR/modules/$name.ko"
        echo "$name" >> "$KDIR/load-order"
    }
    : > "$KDIR/builtin"
    : > "$KDIR/load-order"
    for m in "${CXL_MODULES[@]}"; do
        add_module "$m"
    done
    rm -rf "$tmp"
    echo "${CXL_MODULES[*]}" > "$KDIR/.complete"
    rm -f "$DEBS/${kpkg}"_*.deb
fi
kver="$(cat "$KDIR/version")"
say "Kernel: $kpkg ($kver)"
echo "  CXL modules built in: $(tr '\n' ' ' < "$KDIR/builtin")"
echo "  modules to load:      $(tr '\n' ' ' < "$KDIR/load-order")"

for opt in CONFIG_BLK_DEV_INITRD CONFIG_RD_GZIP CONFIG_DEVTMPFS CONFIG_SERIAL_8250_CONSOLE \
           CONFIG_DEVMEM CONFIG_PCI_MMCONFIG CONFIG_ACPI; do
    grep -q "^$opt=y" "$KDIR/config" || die "$kpkg lacks $opt=y, which the guest needs"
done

# --------------------------------------------------------------------------
# busybox (static)
# --------------------------------------------------------------------------
BB_DIR="$GUEST/busybox"
if [ ! -x "$BB_DIR/busybox" ]; then
    say "Fetching busybox-static (apt-get download)"
    rm -f "$DEBS"/busybox-static_*.deb
    apt_download busybox-static >"$GUEST/apt-download.log" 2>&1 ||
        { tail -n 5 "$GUEST/apt-download.log"; die "apt-get download busybox-static failed"; }
    tmp="$GUEST/.busybox-unpack"
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

while read -r m; do
    if insmod "/lib/modules/$m.ko"; then
        echo "vfio-cxl-guest: loaded $m"
    else
        echo "vfio-cxl-guest: insmod $m failed"
    fi
done < /lib/modules/load-order

# The CXL core probes ports asynchronously: wait until the device list
# has been the same for a second (at most 15 s; not at all without a CXL
# root, ACPI0017, i.e. on a machine without cxl=on).
prev=""; same=0; i=0
[ -e /sys/bus/acpi/devices/ACPI0017:00 ] || i=75
while [ $i -lt 75 ] && [ $same -lt 5 ]; do
    now="$(ls /sys/bus/cxl/devices 2>/dev/null | tr "\n" " ")"
    if [ -n "$now" ] && [ "$now" = "$prev" ]; then same=$((same + 1)); else same=0; fi
    prev="$now"; i=$((i + 1)); sleep 0.2
done
echo "vfio-cxl-guest: cxl devices: ${prev:-none}"

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
poweroff -f
'

# --------------------------------------------------------------------------
# The guest program
# --------------------------------------------------------------------------
[ -f "$GUEST_SRC" ] || die "missing $GUEST_SRC"
CFLAGS=(-static -O2 -Wall -Wextra)
bin="$GUEST/vfio-cxl-guest"
prog_key="$(sha256sum "$GUEST_SRC" | cut -c1-64) ${CFLAGS[*]} $(gcc -dumpfullversion)"
if [ ! -x "$bin" ] || [ "$(cat "$bin.stamp" 2>/dev/null)" != "$prog_key" ]; then
    say "Compiling $(basename "$GUEST_SRC") (gcc ${CFLAGS[*]})"
    gcc "${CFLAGS[@]}" -o "$bin.new" "$GUEST_SRC" || die "compiling $GUEST_SRC failed"
    mv "$bin.new" "$bin"
    echo "$prog_key" > "$bin.stamp"
fi

# --------------------------------------------------------------------------
# vmlinuz and the initramfs
# --------------------------------------------------------------------------
if ! cmp -s "$KDIR/vmlinuz" "$GUEST/vmlinuz"; then
    cp "$KDIR/vmlinuz" "$GUEST/vmlinuz.new"
    mv "$GUEST/vmlinuz.new" "$GUEST/vmlinuz"
fi
echo "$kpkg $kver" > "$GUEST/kernel-version"

initrd="$GUEST/initramfs.cpio.gz"
initrd_key="$( {
    sha256sum "$SELF" "$bin" "$BB_DIR/busybox"
    printf '%s\n' "$INIT_TEXT" "$kpkg"
    cat "$KDIR/load-order"
    sha256sum "$KDIR"/modules/*.ko
} | sha256sum | cut -c1-64)"
if [ -f "$initrd" ] && [ "$(cat "$initrd.stamp" 2>/dev/null)" = "$initrd_key" ]; then
    say "Initramfs up to date"
else
    say "Building the initramfs"
    root="$GUEST/.initramfs-root"
    rm -rf "$root"
    mkdir -p "$root/bin" "$root/lib/modules" "$root/proc" "$root/sys" "$root/dev" "$root/tmp"
    cp "$BB_DIR/busybox" "$root/bin/busybox"
    cp "$bin" "$root/bin/vfio-cxl-guest"
    printf '%s' "$INIT_TEXT" > "$root/init"
    chmod 755 "$root/init" "$root/bin/busybox" "$root/bin/vfio-cxl-guest"
    cp "$KDIR/load-order" "$root/lib/modules/load-order"
    while read -r name; do
        cp "$KDIR/modules/$name.ko" "$root/lib/modules/"
    done < "$KDIR/load-order"
    # The kernel opens /dev/console for /init before devtmpfs is mounted;
    # its built-in initramfs has one too, this is belt and braces.
    [ "$(id -u)" = 0 ] && mknod -m 600 "$root/dev/console" c 5 1
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
        cpio --quiet -o -H newc -R 0:0 --reproducible) > "$GUEST/initramfs.cpio" ||
        die "cpio failed"
    gzip -9n < "$GUEST/initramfs.cpio" > "$initrd.new"
    rm -f "$GUEST/initramfs.cpio"
    mv "$initrd.new" "$initrd"
    echo "$initrd_key" > "$initrd.stamp"
    rm -rf "$root"
fi

say "Guest image ready"
echo "kernel:    $GUEST/vmlinuz ($kpkg)"
echo "initramfs: $initrd ($(du -k "$initrd" | cut -f1) KiB)"
