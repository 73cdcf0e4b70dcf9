"""Build configuration, CPU path selection (NNCORE_CPU), thread control."""

import os
import subprocess
import sys

import pytest

import nncore
from nncore import _core


def run(code, **env):
    e = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e)


def test_show_config_lists_everything(capsys):
    nncore.show_config()
    out = capsys.readouterr().out
    for word in ("nncore " + nncore.__version__, "compiler", "flags", "OpenMP", "threads",
                 "CPU paths built", "CPU path in use"):
        assert word in out
    assert "-march=native" not in out and "fast-math" not in out
    assert nncore.get_cpu_path() in out


def test_paths():
    assert "generic" in _core.available_cpu_paths()
    assert set(_core.available_cpu_paths()) <= set(_core.compiled_cpu_paths())
    assert _core.best_cpu_path() == _core.available_cpu_paths()[-1]


@pytest.mark.parametrize("path", _core.available_cpu_paths())
def test_env_forces_path(path):
    r = run("import nncore; print(nncore.get_cpu_path())", NNCORE_CPU=path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == path


def test_env_unknown_path_is_a_clear_error():
    r = run("import nncore", NNCORE_CPU="sse9")
    assert r.returncode != 0
    assert "NNCORE_CPU='sse9' is not a CPU path" in r.stderr


@pytest.mark.skipif(len(_core.available_cpu_paths()) == len(_core.CPU_PATHS),
                    reason="this CPU runs every path")
def test_env_missing_path_is_a_clear_error():
    missing = [p for p in _core.CPU_PATHS if p not in _core.available_cpu_paths()][-1]
    r = run("import nncore", NNCORE_CPU=missing)
    assert r.returncode != 0 and "cannot run" in r.stderr


def test_set_cpu_path_errors():
    with pytest.raises(ValueError, match="unknown CPU path"):
        nncore.set_cpu_path("mmx")


def test_threads():
    old = nncore.get_num_threads()
    try:
        nncore.set_num_threads(1)
        assert nncore.get_num_threads() == 1
        nncore.set_num_threads(3)
        assert nncore.get_num_threads() == 3
    finally:
        nncore.set_num_threads(None)
    assert nncore.get_num_threads() == old
    with pytest.raises(ValueError, match="n_threads"):
        nncore.set_num_threads(-2)


def test_omp_num_threads_is_the_default():
    r = run("import nncore; print(nncore.get_num_threads())", OMP_NUM_THREADS="1")
    assert r.stdout.strip() == "1", r.stderr
