#!/usr/bin/env bash
# The README's test command: every lint and test of the project, in order
# from the fastest to the slowest, each step timed.  Ends with one line
# "check: N passed, N failed" that counts the steps.
set -uo pipefail
source "$(dirname "$0")/env.sh"
cd "$PROJECT_ROOT"

passed=0
failed=0
failures=()
step() {    # name command...
    local name=$1 start rc
    shift
    say "$name"
    start=$(date +%s)
    "$@"
    rc=$?
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
        echo "--- $name: ok ($(( $(date +%s) - start )) s)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "--- $name: FAILED (exit $rc, $(( $(date +%s) - start )) s)"
    fi
}

# Tools first: cargo steps need nothing else, QEMU steps need the build.
bash mk/tools.sh || die "installing the tools failed"

step "docs (rST, libvirt XML)" bash mk/check-docs.sh
# Every overlay file in one patch of the QEMU series (make check-patches
# builds the series itself).
step "patch series plan" python3 mk/test_patches.py
step "rustfmt (workspace)" cargo fmt --all --check
step "clippy (workspace)" cargo clippy --workspace --all-targets --quiet -- -D warnings
step "cargo test (workspace)" cargo test --workspace --quiet
step "rustdoc (workspace)" env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

if bash mk/build.sh; then
    step "rustfmt and clippy (crates built inside QEMU)" bash mk/lint-device.sh
    step "qtests" bash mk/qtests.sh
    step "simulator against QEMU" env QEMU_BIN="$QEMU_BUILD/qemu-system-x86_64" \
        VFIO_CXL_REQUIRE_QEMU=1 cargo test --quiet -p vfio-user-cxl-sim --test qemu_interop
    step "hostile host against QEMU" env QEMU_BIN="$QEMU_BUILD/qemu-system-x86_64" \
        VFIO_CXL_REQUIRE_QEMU=1 cargo test --quiet -p vfio-user-cxl-sim --test hostile
    step "functional test (Linux guest)" bash mk/functional.sh
    step "libvirt" bash mk/libvirt.sh
    step "validation kit (simulator, every mode)" bash mk/validate.sh
else
    failed=$((failed + 1))
    failures+=("QEMU build")
fi

echo
[ ${#failures[@]} -eq 0 ] || echo "failed steps: ${failures[*]}"
echo "check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
