"""Same seed and data: bitwise-identical weights and History with 1 and 2 threads, and in
two separate processes."""

import json
import os
import subprocess
import sys

import pytest

import nncore as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(nn.__file__)))

SCRIPT = r"""
import hashlib, json, sys
import numpy as np
import nncore as nn
nn.set_num_threads(int(sys.argv[1]))
rng = np.random.default_rng(7)
X = rng.standard_normal((1024, 64))
y = (X[:, :10].argmax(1) + (X[:, 10] > 0)) % 10
model = nn.Sequential([nn.Dense(64, 256, activation="relu"), nn.Dropout(0.2),
                       nn.Dense(256, 256, activation="gelu"), nn.Dense(256, 10)],
                      seed=3)
model.compile(nn.Adam(1e-3), "cross_entropy", ["accuracy"])
h = model.fit(X, y, epochs=3, batch_size=256, validation_split=0.25, verbose=0)
print(json.dumps({"params": hashlib.sha256(model.params.tobytes()).hexdigest(),
                  "state": {k: hashlib.sha256(v.tobytes()).hexdigest()
                            for k, v in model.optimizer.state.items()},
                  "history": {k: [float(x).hex() for x in v]
                              for k, v in h.history.items()}}))
"""


def run(threads):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("OMP_NUM_THREADS", None)
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(threads)], capture_output=True,
                       text=True, env=env, check=True)
    return json.loads(r.stdout)


@pytest.mark.skipif(not nn.config()["openmp"],
                    reason="built without OpenMP")
def test_weights_and_history_identical_across_processes_and_thread_counts():
    one_a, one_b, two = run(1), run(1), run(2)
    assert one_a == one_b            # two processes
    assert one_a == two              # 1 thread versus 2
    assert len(one_a["history"]["val_loss"]) == 3
