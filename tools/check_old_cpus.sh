#!/usr/bin/env bash
# The wheel on older x86-64 CPUs: runs the installed wheel under qemu-user (qemu-x86_64), which
# emulates a given CPU and raises SIGILL on any instruction that CPU lacks.
#   -cpu Haswell  (AVX2 + FMA, no AVX-512): nncore must pick the avx2 path;
#   -cpu Nehalem  (SSE4.2, no AVX at all):  nncore must pick the portable generic path.
# For each: nncore.show_config(), the kernel tests, a short training run (the CLI, and a
# float64 Adam fit whose loss must match a native run on the same path), and a forced path the
# CPU lacks must be a clean error. Before that: the static objdump check
# (tools/check_baseline_isa.py) and a control that the emulator really traps an AVX2 / AVX-512
# instruction on these CPUs (otherwise the runs would prove nothing).
#
# Usage: tools/check_old_cpus.sh [--quick] [WHEEL]
#   WHEEL: default the newest dist/nncore-*manylinux*_x86_64.whl (tools/build_wheel.sh makes
#   it; built here with --no-test if there is none). --quick: fewer kernel tests (for CI).
# Env: PYTHON (default python3), KEEP=1 keeps the work folder.
# Needs qemu-x86_64 (Debian: apt-get install qemu-user; installed here when missing and root).
# Prints PASS/FAIL lines; exits non-zero on any failure.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
QUICK=0
WHEEL=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) WHEEL="$1" ;;
    esac
    shift
done
if [ "$QUICK" = 1 ]; then
    KERNEL_TESTS="tests/test_gemm.py tests/test_dense.py tests/test_bf16.py"
else
    KERNEL_TESTS="tests/test_gemm.py tests/test_dense.py tests/test_bf16.py tests/test_activations.py
                  tests/test_losses.py tests/test_optim.py tests/test_dropout.py tests/test_plan.py"
fi
REPORT=check_old_cpus WORK_PREFIX=nncore_oldcpu
. "$ROOT/tools/report.sh"

if [ "$(uname -m)" != x86_64 ]; then echo "FAIL this check runs on x86-64 Linux"; exit 1; fi

step "qemu-user"
if ! command -v qemu-x86_64 >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing qemu-user (Debian)"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user) \
            > "$WORK/apt.log" 2>&1 || { tail "$WORK/apt.log"; }
    fi
fi
command -v qemu-x86_64 >/dev/null || { fail "qemu-x86_64 not found (apt-get install qemu-user)"; finish; }
qemu-x86_64 --version | head -1

step "the wheel"
if [ -z "$WHEEL" ]; then
    WHEEL="$(ls -t "$ROOT"/dist/nncore-*manylinux*_x86_64.whl 2>/dev/null | head -1)"
    if [ -z "$WHEEL" ]; then
        echo "no repaired wheel in dist/: building one (tools/build_wheel.sh --no-test)"
        bash "$ROOT/tools/build_wheel.sh" --no-test || { fail "building the wheel"; finish; }
        WHEEL="$(ls -t "$ROOT"/dist/nncore-*manylinux*_x86_64.whl | head -1)"
    fi
fi
echo "$WHEEL"
"$PYTHON" -m venv "$WORK/venv" || { fail "venv"; finish; }
VENV="$WORK/venv/bin"
"$VENV/python" -m pip install -q --upgrade pip >/dev/null 2>&1
if "$VENV/python" -m pip install -q --only-binary :all: "$WHEEL" pytest > "$WORK/install.log" 2>&1; then
    pass "installed $(basename "$WHEEL") in a fresh venv"
else
    grep -v "^WARNING: Location" "$WORK/install.log" | tail; fail "installing the wheel"; finish
fi
# The tests from a copy, away from the source package (they must import the installed one).
mkdir -p "$WORK/t" && cp -r "$ROOT/tests" "$ROOT/tools" "$WORK/t/"
cd "$WORK/t"

step "static check: objdump of the installed extension and its bundled libraries"
if "$VENV/python" "$ROOT/tools/check_baseline_isa.py"; then :; else fail "baseline ISA check"; fi

# A float64 Adam fit and a float32 SGD fit on the digits: prints the CPU path, the final
# losses (to compare with a native run on the same path) and the test accuracies.
cat > "$WORK/train.py" <<'EOF'
import json
import nncore as nn
from nncore.datasets import load_digits, train_test_split

X, y = load_digits()
X = X / 16.0
Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, seed=0)
out = {"path": nn.get_cpu_path()}
for dtype, opt in (("float64", nn.Adam(lr=1e-3)), ("float32", nn.SGD(lr=0.05, momentum=0.9))):
    m = nn.Sequential([nn.Dense(64, 64, activation="relu"), nn.Dense(64, 10)], dtype=dtype,
                      seed=0)
    m.compile(opt, "cross_entropy", ["accuracy"])
    h = m.fit(Xtr, ytr, epochs=3, batch_size=32, verbose=0)
    out[dtype] = {"loss": h.history["loss"][-1], "accuracy": m.evaluate(Xte, yte)["accuracy"]}
print(json.dumps(out))
EOF
cat > "$WORK/sigill.py" <<'EOF'
# Run one instruction from a code buffer: exits by SIGILL when the CPU lacks it.
import ctypes, mmap, sys
code = {"avx2": b"\xc5\xfd\xef\xc0\xc3",                  # vpxor %ymm0,%ymm0,%ymm0; ret
        "avx512": b"\x62\xf1\x7d\x48\xef\xc0\xc3"}[sys.argv[1]]  # vpxord %zmm0,%zmm0,%zmm0; ret
buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
buf.write(code)
ctypes.CFUNCTYPE(None)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))()
print("ran")
EOF

check_cpu() {  # CPU QEMU_CPU_SPEC EXPECTED_PATH MISSING_INSTRUCTION_SET PYTEST_SELECTION
    local cpu="$1" spec="$2" want="$3" missing="$4" select="$5"
    # qemu-user emulates this process only: a child it execs runs natively, so the
    # environment goes before qemu, and Python is started directly (not through a #! script).
    # numpy's OpenBLAS (the tests' reference) uses its SSE kernels: qemu runs AVX code about
    # ten times slower than SSE code, and OpenBLAS is not what is being checked.
    local Q=(env OPENBLAS_CORETYPE=Nehalem qemu-x86_64 -cpu "$spec")
    step "qemu-x86_64 -cpu $cpu (expect the $want path)"
    local t0=$SECONDS out rc
    # the emulator traps what this CPU lacks (the control)
    out="$("${Q[@]}" "$VENV/python" "$WORK/sigill.py" "$missing" 2>&1)"; rc=$?
    if [ "$rc" = 132 ] || [ "$rc" = 4 ]; then
        pass "$cpu: an $missing instruction is SIGILL under the emulator (the runs below are meaningful)"
    else
        fail "$cpu: an $missing instruction did not trap (exit $rc: $out)"
    fi
    # show_config
    "${Q[@]}" "$VENV/python" -c "import nncore; nncore.show_config()" > "$WORK/config_$cpu.txt" 2>&1
    cat "$WORK/config_$cpu.txt"
    if grep -q "CPU path in use:  $want " "$WORK/config_$cpu.txt"; then
        pass "$cpu: show_config selects the $want path"
    else
        fail "$cpu: show_config does not say 'CPU path in use:  $want'"
    fi
    # a forced path this CPU lacks is a clean error, not a crash
    out="$(NNCORE_CPU="$missing" "${Q[@]}" "$VENV/python" -c "import nncore" 2>&1)"; rc=$?
    if [ "$rc" = 1 ] && echo "$out" | grep -q "cannot run"; then
        pass "$cpu: NNCORE_CPU=$missing is refused cleanly ($(echo "$out" | tail -1))"
    else
        fail "$cpu: NNCORE_CPU=$missing gave exit $rc: $(echo "$out" | tail -2)"
    fi
    # kernel tests
    NNCORE_EXPECT_INSTALLED=1 "${Q[@]}" "$VENV/python" -m pytest -q -p no:cacheprovider \
        -k "$select" $KERNEL_TESTS > "$WORK/pytest_$cpu.log" 2>&1; rc=$?
    local summary; summary="$(tail -1 "$WORK/pytest_$cpu.log")"
    if [ "$rc" = 0 ]; then
        pass "$cpu: kernel tests ($(echo $KERNEL_TESTS | wc -w) files, -k '$select'): $summary"
    else
        tail -30 "$WORK/pytest_$cpu.log"; fail "$cpu: kernel tests: $summary"
    fi
    # training: the CLI, then the two fits compared with a native run on the same path
    "${Q[@]}" "$VENV/python" -m nncore train --epochs 5 --out "$WORK/digits_$cpu.safetensors" \
        > "$WORK/cli_$cpu.log" 2>&1; rc=$?
    local acc; acc="$(grep -o 'test accuracy: [0-9.]*%' "$WORK/cli_$cpu.log")"
    if [ "$rc" = 0 ] && [ -n "$acc" ]; then
        pass "$cpu: nncore train --epochs 5: $acc, $(grep -o 'training time: .*' "$WORK/cli_$cpu.log")"
    else
        tail "$WORK/cli_$cpu.log"; fail "$cpu: nncore train"
    fi
    local emu nat
    emu="$("${Q[@]}" "$VENV/python" "$WORK/train.py" 2>&1 | tail -1)"
    nat="$(env NNCORE_CPU="$want" "$VENV/python" "$WORK/train.py" 2>&1 | tail -1)"
    echo "emulated $cpu: $emu"
    echo "native, NNCORE_CPU=$want: $nat"
    if "$VENV/python" - "$emu" "$nat" "$want" <<'EOF'
import json, sys
emu, nat = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert emu["path"] == nat["path"] == sys.argv[3], (emu["path"], nat["path"])
for dt in ("float64", "float32"):
    assert emu[dt]["accuracy"] > 0.85, (dt, emu[dt])
    # same kernels, same order: only libm's variants (picked per CPU) may differ in the last bits
    assert abs(emu[dt]["loss"] - nat[dt]["loss"]) <= 1e-4 * abs(nat[dt]["loss"]), (dt, emu, nat)
EOF
    then
        pass "$cpu: fits (float64 Adam, float32 SGD) learn and match the native $want run"
    else
        fail "$cpu: the fits under the emulator"
    fi
    echo "($cpu: $((SECONDS - t0)) s)"
}

# Haswell less the features qemu's TCG cannot emulate (system-level ones, and TSX), which it
# would only warn about. The kernel tests: under Haswell the avx2 path (the default path, and
# the tests parametrised over paths, less their generic cases, which run under Nehalem);
# thread-count determinism is left to the native suite (not an ISA question, and slow here).
check_cpu Haswell "Haswell,-pcid,-x2apic,-tsc-deadline,-hle,-rtm,-invpcid" avx2 avx512 \
    "not generic and not thread_count"
check_cpu Nehalem Nehalem generic avx2 "not thread_count"
finish
