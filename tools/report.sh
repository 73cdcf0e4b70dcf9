# report.sh - what the check scripts of tools/ share (sourced, not run): a work folder that
# is removed on exit unless KEEP=1, and PASS/FAIL lines with a final verdict.
# Set REPORT (the script's name) and WORK_PREFIX before sourcing.
WORK="$(mktemp -d "/tmp/${WORK_PREFIX}.XXXXXX")"
if [ "${KEEP:-0}" = 1 ]; then echo "work folder: $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi
FAILED=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; FAILED=1; }
step() { echo; echo "== $*"; }
finish() {
    echo
    if [ "$FAILED" = 0 ]; then echo "$REPORT: all checks passed"; else echo "$REPORT: FAILED"; fi
    exit "$FAILED"
}
