# The Debian unstable chroot that builds what a guest needs and the host
# cannot: our Type-2 driver (7.x's kbuild tools need unstable's C library)
# and, for arm64 guests, the check program (with unstable's cross
# compiler, so that the host keeps its own packages: bookworm's
# gcc-aarch64-linux-gnu and gcc-multilib conflict).  Made by debootstrap
# from the host's Debian mirror and cached in $VFIO_CXL_CACHE/sid-chroot;
# only Debian packages go into it.  Sourced after env.sh, never run; needs
# root.

SID_CHROOT="$VFIO_CXL_CACHE/sid-chroot"
SID_CHROOT_LOG="$VFIO_CXL_CACHE/sid-chroot.log"
# apt inside the chroot: a mirror snapshot's unstable Release file may be
# past its Valid-Until date.
SID_APT=(apt-get -o Acquire::Check-Valid-Until=false -qq)

# Make the chroot if it is missing.
sid_chroot() {    # WHAT (what it is needed for)
    local mirror
    [ "$(id -u)" = 0 ] || die "building $1 needs root (debootstrap, chroot)"
    [ -f "$SID_CHROOT/.complete" ] && return 0
    ensure_debs sid-chroot debootstrap
    mirror="$(debian_mirror)"
    [ -n "$mirror" ] || die "no Debian mirror in /etc/apt/sources.list{,.d} for debootstrap"
    say "Making a Debian unstable chroot for $1 (debootstrap, $mirror)"
    rm -rf "$SID_CHROOT"
    debootstrap --variant=minbase sid "$SID_CHROOT" "$mirror" > "$SID_CHROOT_LOG" 2>&1 ||
        { tail -n 10 "$SID_CHROOT_LOG"; die "debootstrap sid $SID_CHROOT failed (log: $SID_CHROOT_LOG)"; }
    touch "$SID_CHROOT/.complete"
}

# Install Debian packages in the chroot with its apt.
sid_chroot_install() {    # WHAT PACKAGE...
    local what=$1
    shift
    say "Installing $what in the chroot"
    { chroot "$SID_CHROOT" "${SID_APT[@]}" update &&
      chroot "$SID_CHROOT" env DEBIAN_FRONTEND=noninteractive "${SID_APT[@]}" install -y \
          --no-install-recommends "$@"; } >> "$SID_CHROOT_LOG" 2>&1 ||
        { tail -n 10 "$SID_CHROOT_LOG"; die "installing $* in $SID_CHROOT failed (log: $SID_CHROOT_LOG)"; }
}
