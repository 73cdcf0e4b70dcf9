#!/bin/sh
# AddressSanitizer + UndefinedBehaviorSanitizer run of the kernel tests.
#
#   tools/sanitize.sh [extra pytest args]
#
# Copies the tracked tree to a temporary folder (the in-place build here is left alone),
# builds it with NNCORE_SANITIZE=1 (-fsanitize=address,undefined -O1 -g), and runs the kernel
# tests under the ASan runtime (preloaded: the Python binary is not instrumented; leak
# detection is off because Python leaks by design). Any ASan report or UBSan "runtime error"
# fails the run. Needs gcc (or clang) with the sanitizer runtimes; about 2-3 minutes on two
# cores.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python}
WORK=$(mktemp -d /tmp/nncore-sanitize.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$WORK"
cd "$WORK"
echo "building with NNCORE_SANITIZE=1 in $WORK ..."
NNCORE_SANITIZE=1 "$PY" setup.py build_ext --inplace -q > build.log 2>&1 || {
    cat build.log; exit 1; }
SO=$(ls nncore/_core*.so)
nm -D "$SO" | grep -q __asan_init || { echo "$SO is not instrumented"; exit 1; }
nm -D "$SO" | grep -q __ubsan_handle || { echo "$SO has no UBSan checks"; exit 1; }
ASAN_LIB=$(${CC:-gcc} -print-file-name=libasan.so)
UBSAN_LIB=$(${CC:-gcc} -print-file-name=libubsan.so)
set +e
LD_PRELOAD="$ASAN_LIB $UBSAN_LIB" \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
PYTHONPATH="$WORK" \
    "$PY" -m pytest -q -p no:cacheprovider tests/test_gemm.py tests/test_dense.py \
    tests/test_activations.py tests/test_losses.py tests/test_optim.py tests/test_dropout.py \
    tests/test_plan.py tests/test_core_errors.py "$@" > pytest.log 2>&1
status=$?
set -e
tail -n 3 pytest.log
reports=$(grep -c -E "ERROR: AddressSanitizer|runtime error:" pytest.log || true)
echo "sanitizers: $reports ASan/UBSan reports; pytest exit status $status"
if [ "$status" -ne 0 ] || [ "$reports" -ne 0 ]; then
    grep -E -A30 "ERROR: AddressSanitizer|runtime error:" pytest.log | head -80
    exit 1
fi
