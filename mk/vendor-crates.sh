#!/usr/bin/env bash
# Supply the Rust crates that QEMU's meson build expects as subprojects.
#
# Debian's source package keeps QEMU's subprojects/*-rs.wrap files but strips
# subprojects/packagefiles (the meson.build of each crate). The wraps still
# name each crate, its exact version (in "directory =") and the SHA-256 of
# its .crate file, so they are the list we work from: each crate is fetched
# through cargo, checked against the wrap's hash, unpacked where meson looks
# for it, and given a meson.build of our own (mk/subprojects/<crate>/).
# Crates our own Rust code needs inside QEMU (mk/subprojects/extra-wraps/)
# are handled the same way.
set -euo pipefail
source "$(dirname "$0")/env.sh"

subprojects="$QEMU_SRC/subprojects"
[ -d "$subprojects" ] || die "QEMU source not found at $QEMU_SRC (run mk/qemu-source.sh)"

# Our extra wraps live beside QEMU's so that meson finds them by name.
for wrap in "$PROJECT_ROOT"/mk/subprojects/extra-wraps/*.wrap; do
    cmp -s "$wrap" "$subprojects/$(basename "$wrap")" ||
        cp "$wrap" "$subprojects/"
done

wrap_value() { sed -n "s/^$2[[:space:]]*=[[:space:]]*//p" "$1" | head -n 1; }

fetch_crate() {    # name version -> path of the .crate file in cargo's cache
    local name=$1 version=$2 scratch
    scratch=$(mktemp -d)
    mkdir -p "$scratch/src"
    : > "$scratch/src/lib.rs"
    cat > "$scratch/Cargo.toml" <<TOML
[package]
name = "fetch-one-crate"
version = "0.0.0"
edition = "2021"
[dependencies]
$name = "=$version"
TOML
    # One crate per scratch project, so that no two pins can conflict.
    cargo fetch --quiet --manifest-path "$scratch/Cargo.toml" >&2 ||
        die "cargo could not fetch crate $name $version"
    rm -rf "$scratch"
    local cargo_home=${CARGO_HOME:-$HOME/.cargo}
    ls "$cargo_home"/registry/cache/*/"$name-$version.crate" 2>/dev/null | head -n 1
}

count=0
for wrap in "$subprojects"/*-rs.wrap; do
    subproject=$(basename "$wrap" .wrap)
    directory=$(wrap_value "$wrap" directory)
    hash=$(wrap_value "$wrap" source_hash)
    name=${directory%-*}
    version=${directory##*-}
    overlay="$PROJECT_ROOT/mk/subprojects/$subproject/meson.build"
    [ -f "$overlay" ] || die "no meson.build of ours for $subproject ($overlay)"
    dest="$subprojects/$directory"
    stamp="$dest/.vfio-cxl-crate-hash"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$hash" ]; then
        crate=$(fetch_crate "$name" "$version")
        [ -n "$crate" ] || die "crate $name-$version.crate not in cargo's cache after fetch"
        actual=$(sha256sum "$crate" | cut -d' ' -f1)
        [ "$actual" = "$hash" ] ||
            die "$name-$version.crate has SHA-256 $actual, $wrap expects $hash"
        rm -rf "$dest"
        tar -xzf "$crate" -C "$subprojects"
        echo "$hash" > "$stamp"
    fi
    cmp -s "$overlay" "$dest/meson.build" || cp "$overlay" "$dest/meson.build"
    count=$((count + 1))
done
echo "vendor-crates: $count crate subprojects ready in $subprojects"
