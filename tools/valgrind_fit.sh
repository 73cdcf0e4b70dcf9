#!/bin/sh
# Memcheck on a small fit/predict/evaluate/save (plus predict from threads that then exit):
# reports the bytes "definitely lost" in loss records whose stack passes through nncore's
# compiled extension (nncore/_core*.so). Python itself leaks by design, so records without
# an nncore frame are counted separately and do not fail the run.
#
#   tools/valgrind_fit.sh            (needs valgrind; about a minute)
#
# Exit status 0 when nncore's definitely-lost bytes are 0.
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
LOG=$(mktemp /tmp/nncore-valgrind.XXXXXX)
KEEP=${KEEP_LOG:-}
[ -n "$KEEP" ] || trap 'rm -f "$LOG"' EXIT
cat > "$LOG.py" <<'PY'
import os, tempfile, threading
import numpy as np
import nncore as nn
rng = np.random.default_rng(0)
X = rng.standard_normal((512, 20)); y = rng.integers(0, 3, 512)
for cls in (nn.SGD, nn.Adam):
    model = nn.Sequential([nn.Dense(20, 64, activation="relu"), nn.Dropout(0.1),
                           nn.Dense(64, 3)], seed=0)
    model.compile(cls(1e-2), "cross_entropy", ["accuracy"])
    model.fit(X, y, epochs=2, batch_size=32, verbose=0, validation_split=0.1,
              callbacks=[nn.TerminateOnNaN()])
    model.predict(X); model.predict(X[:1]); model.evaluate(X, y)
    threads = [threading.Thread(target=model.predict, args=(X,)) for _ in range(3)]
    [t.start() for t in threads]; [t.join() for t in threads]
    with tempfile.TemporaryDirectory() as d:
        model.save(os.path.join(d, "m.safetensors"))
        nn.load_model(os.path.join(d, "m.safetensors")).predict(X)
nn._core.gemm(np.ones((300, 300), np.float32), np.ones((300, 300), np.float32))
print("fit done")
PY
PYTHONMALLOC=malloc PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" valgrind --tool=memcheck \
    --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=none \
    --num-callers=40 --log-file="$LOG" "$PY" "$LOG.py"
rm -f "$LOG.py"
"$PY" - "$LOG" $(find src_c -name '*.[ch]') <<'PY'
import os, re, sys
text = open(sys.argv[1]).read()
# a frame in nncore: the extension's file name, or one of its C sources (with debug info)
ours_re = re.compile(r"nncore/_core\.|\((?:_core\.c|%s):\d+\)" % "|".join(
    re.escape(os.path.basename(f)) for f in sys.argv[2:]))
records = re.split(r"\n==\d+== \n", text)
ours = other = our_errors = 0
for r in records:
    mine = bool(ours_re.search(r))
    if re.search(r"== (Invalid (read|write|free)|Conditional jump|Use of uninitialised|"
                 r"Mismatched free|Syscall param)", r) and mine:
        our_errors += 1
        print(r)
    m = re.search(r"([\d,]+) (?:\(([\d,]+) direct, [\d,]+ indirect\) )?bytes in [\d,]+ "
                  r"blocks are definitely lost", r)
    if not m:
        continue
    n = int(m.group(1).replace(",", ""))
    if mine:
        ours += n
        print(r)
    else:
        other += n
errors = re.search(r"ERROR SUMMARY: ([\d,]+) errors", text)
print(f"valgrind memcheck: {ours} bytes definitely lost in nncore's code ({other} elsewhere: "
      f"Python, NumPy); {our_errors} memory errors with an nncore frame "
      f"({errors.group(1) if errors else '?'} in all, Python's own without suppressions)")
sys.exit(0 if ours == 0 and our_errors == 0 else 1)
PY
