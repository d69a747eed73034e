#!/usr/bin/env bash
# The hardware validation kit against the simulator, as make check runs
# it: the kit's own tests (every simulator fault switch caught by the
# right check, the no-hardware refusal), then contrib/vfio-cxl-validate/run
# against the simulator in every mode (uAPI v2, v3, v4, v4 with the earlier
# region type), with --yes, where every check must pass (v3 and v4 also
# with --guest: the functional test's Linux guest under TCG), on q35 and on
# arm64 virt; guest-view against broken simulators, whose guest-side checks
# must fail (the reset failure on both machines); a read-only run that must
# not write or reset anything; then the kit's one command on this machine's
# missing hardware, which must stop at once and say why.
# QEMU must already be built (mk/build.sh).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$PROJECT_ROOT"

start=$(date +%s)
say "Building the kit and the simulator"
cargo build -q -p vfio-cxl-validate -p vfio-user-cxl-sim || die "build failed"
kit="$CARGO_TARGET_DIR/debug/vfio-cxl-validate"
sim="$CARGO_TARGET_DIR/debug/vfio-user-cxl-sim"
need_built_qemu aarch64
qemu_virt=$QEMU_BIN
need_built_qemu
"$PROJECT_ROOT/mk/guest-image.sh"
"$PROJECT_ROOT/mk/guest-image.sh" --arch arm64
export VFIO_CXL_VALIDATE="$kit"

say "The kit's tests (fault switches, no-hardware refusal)"
cargo test -q -p vfio-cxl-validate || die "cargo test -p vfio-cxl-validate failed"

work=$(mktemp -d "${TMPDIR:-/tmp}/vfio-cxl-validate.XXXXXX")
sim_pid=""
stop_sim() {
    if [ -n "$sim_pid" ]; then
        kill "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
        sim_pid=""
    fi
}
trap 'stop_sim; rm -rf "$work"' EXIT

start_sim() {    # NAME ARGS...
    local name=$1
    shift
    rm -f "$work/$name.sock" "$work/$name.ctl"
    "$sim" --socket "$work/$name.sock" --control "$work/$name.ctl" "$@" \
        > "$work/$name.sim.out" 2> "$work/$name.sim.err" &
    sim_pid=$!
    local i
    for i in $(seq 100); do
        grep -q "listening on" "$work/$name.sim.out" 2>/dev/null && return 0
        sleep 0.1
    done
    die "the simulator ($*) did not start: $(cat "$work/$name.sim.err")"
}

# A control-socket counter of the running simulator.
sim_stat() {    # NAME COUNTER
    python3 - "$work/$1.ctl" "$2" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b'stats\n')
print(json.loads(s.makefile().readline())[sys.argv[2]])
PY
}

failed=0
declare -A qemu_of=([q35]="$QEMU_BIN" [virt]="$qemu_virt")
for machine in q35 virt; do
    for mode in "v2" "v3" "v4" "v4 --v4-region-type early"; do
        name=${machine}_${mode// /_}
        name=${name//-/}
        say "run --machine $machine --socket (simulator --uapi $mode) --yes"
        # shellcheck disable=SC2086
        start_sim "$name" --uapi $mode
        guest=()
        case "$mode" in v3|v4) guest=(--guest) ;; esac
        if contrib/vfio-cxl-validate/run --socket "$work/$name.sock" --yes "${guest[@]}" \
            --expect "${mode%% *}" --machine "$machine" --qemu "${qemu_of[$machine]}" \
            --report "$work/$name.txt" > "$work/$name.out" 2>&1 &&
            grep -q "^contract: .* 0 fail" "$work/$name.out" &&
            grep -q "^guest-view: .* 0 fail" "$work/$name.out" &&
            ! grep -q "^FAIL" "$work/$name.out"; then
            grep -E "^(contract|guest-view|result):|guest_boot" "$work/$name.out"
        else
            cat "$work/$name.out"
            echo "--- the kit failed against the simulator ($machine, $mode)"
            failed=$((failed + 1))
        fi
        stop_sim
    done
done

# The guest-side checks can fail: a host whose resets fail leaves the
# memory unmapped after QEMU's reset at start and after the guest's FLR
# (on both machines); a function without FLR cannot be reset by the guest.
for case in "q35 reset-fails:qemu_cxl_status guest_window_round_trip guest_flr qemu_cxl_status_after_flr" \
            "q35 no-flr:guest_flr" \
            "virt reset-fails:qemu_cxl_status guest_window_round_trip guest_flr qemu_cxl_status_after_flr"; do
    machine=${case%% *}
    checks=${case#* }
    fault=${checks%%:*}
    name=gv-$machine-$fault
    say "guest-view --machine $machine against a simulator with --fault $fault: its checks fail"
    start_sim "$name" --uapi v4 --fault "$fault"
    set +e
    "$kit" guest-view --socket "$work/$name.sock" --yes --machine "$machine" \
        --qemu "${qemu_of[$machine]}" > "$work/$name.out" 2>&1
    rc=$?
    set -e
    stop_sim
    want=$(tr ' ' '\n' <<< "${checks#*:}" | sort)
    got=$(sed -n 's/^FAIL \([a-z0-9_]*\) .*/\1/p' "$work/$name.out" | sort)
    echo "failing checks: $(echo $got)"
    if [ $rc -ne 1 ] || [ "$got" != "$want" ]; then
        cat "$work/$name.out"
        echo "--- want exactly: $(echo $want) (exit 1), got exit $rc"
        failed=$((failed + 1))
    fi
done

say "Read-only contract run (no --yes): nothing written, nothing reset"
start_sim ro --uapi v3
"$kit" contract --socket "$work/ro.sock" > "$work/ro.out" 2>&1 || { cat "$work/ro.out"; failed=$((failed + 1)); }
for counter in config_writes comp_regs_writes resets; do
    n=$(sim_stat ro "$counter")
    echo "$counter after a read-only run: $n"
    [ "$n" = 0 ] || { echo "--- the read-only run changed $counter"; failed=$((failed + 1)); }
done
grep -q "^N/A  memory_mmap_4k .*would write" "$work/ro.out" ||
    { echo "--- the read-only run does not say what it would write"; failed=$((failed + 1)); }
stop_sim

# The issue's example function, unless this machine has one there.
bdf=0000:3b:00.0
[ ! -e "/sys/bus/pci/devices/$bdf" ] || bdf=ffff:ff:1f.7
say "run --host $bdf (no such function here): stops at once"
set +e
out=$(contrib/vfio-cxl-validate/run --host "$bdf" --yes --qemu "$QEMU_BIN" \
      --report "$work/nohw.txt" 2>&1)
rc=$?
set -e
echo "$out" | grep -E "vfio-cxl-validate:|stopped"
if [ $rc -ne 2 ] || ! echo "$out" | grep -q "no PCI function at /sys/bus/pci/devices/$bdf" ||
    ! echo "$out" | grep -q "^stopped: the device cannot be used"; then
    echo "$out"
    echo "--- run --host did not stop with the no-hardware message (exit $rc)"
    failed=$((failed + 1))
fi

echo "elapsed: $(( $(date +%s) - start )) s"
[ $failed -eq 0 ] || die "$failed validation-kit step(s) failed"
say "Validation kit passed against the simulator in every mode"
