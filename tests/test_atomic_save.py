"""Atomic writes: a process killed with SIGKILL in the middle of model.save leaves the
previous file intact and loadable (save writes a temporary file in the same folder, flushes
and fsyncs it, then os.replace-s it over the target)."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import nncore as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(nn.__file__)))

# Saves a 64 MB model (every weight 0), then saves it again with every weight 1 via the ordinary
# model.save / ModelCheckpoint path, except that the file's write is split in two: after the
# first half is on disk the child says "half" and blocks on stdin, where the parent kills it.
CHILD = r"""
import os, sys
import numpy as np
import nncore as nn
path, how = sys.argv[1], sys.argv[2]
model = nn.Sequential([nn.Dense(4000, 4000)], seed=0)
model.compile(nn.SGD(0.0), "mse")
model.params[...] = 0
model.save(path)

real_fdopen = os.fdopen
class HalfWay:
    def __init__(self, f): self.f = f
    def __enter__(self): return self
    def __exit__(self, *exc): return self.f.__exit__(*exc)
    def __getattr__(self, name): return getattr(self.f, name)
    def write(self, data):
        half = len(data) // 2
        self.f.write(data[:half]); self.f.flush()
        print("half", len(data), flush=True)
        sys.stdin.readline()            # killed here
        return self.f.write(data[half:])
os.fdopen = lambda *a, **k: HalfWay(real_fdopen(*a, **k))
model.params[...] = 1
if how == "save":
    model.save(path)
else:
    X = np.zeros((2, 4000))
    model.fit(X, X, epochs=1, verbose=0, callbacks=[nn.ModelCheckpoint(path)])
print("finished", flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("how", ["save", "checkpoint"])
def test_sigkill_during_save_leaves_the_previous_file_loadable(tmp_path, how):
    path = tmp_path / "model.safetensors"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path), how], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        word, total = proc.stdout.readline().split()
        assert word == "half"
        tmp = [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
        assert len(tmp) == 1 and tmp[0].startswith(".model.safetensors.")
        assert os.path.getsize(tmp_path / tmp[0]) == int(total) // 2  # mid-write
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()
    model = nn.load_model(path)            # the previous, complete file
    assert np.all(model[0].W == 0) and np.all(model[0].b == 0)
