"""The README's Python examples run as written."""

import os
import re

import pytest

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def blocks():
    if not os.path.exists(README):
        return []
    with open(README) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


@pytest.mark.skipif(not blocks(), reason="README.md not next to the tests")
@pytest.mark.parametrize("i", range(len(blocks())))
def test_readme_example_runs(i, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write model files
    if "distributed=True" in blocks()[i]:  # run alone, it is a communicator of one rank
        pytest.importorskip("mpi4py", reason="the distributed example needs nncore[mpi]")
    exec(compile(blocks()[i], f"README.md example {i}", "exec"), {})
