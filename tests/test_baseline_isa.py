"""The compiled module uses nothing beyond the x86-64 baseline outside the dispatched kernels
(tools/check_baseline_isa.py, an objdump scan), and the scan does find violations."""

import importlib.util
import os
import platform
import shutil
import subprocess

import pytest

from nncore import _core

TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools",
                    "check_baseline_isa.py")
pytestmark = [
    pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                       reason="x86-64 only"),
    pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) not found"),
    pytest.mark.skipif(not os.path.exists(TOOL),
                       reason="tools/check_baseline_isa.py is not next to the tests"),
    pytest.mark.skipif(not _core.__file__.endswith((".so", ".pyd")) or os.name == "nt",
                       reason="ELF shared objects only"),
]


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("check_baseline_isa", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compiled_module_is_baseline_outside_the_kernels(tool, capsys):
    assert tool.main([_core.__file__]) == 0, capsys.readouterr().out


@pytest.mark.parametrize("insn, beyond", [
    (("movups", "(%rax),%xmm0"), False), (("mulsd", "%xmm1,%xmm0"), False),
    (("pshufd", "$0x0,%xmm0,%xmm0"), False), (("cvttsd2si", "%xmm0,%rax"), False),
    (("vfmadd231ps", "%ymm1,%ymm2,%ymm0"), True), (("vmovss", "(%rax),%xmm0"), True),
    (("movups", "%zmm0,(%rax)"), True), (("popcnt", "%edi,%eax"), True),
    (("pshufb", "%xmm1,%xmm0"), True), (("roundsd", "$0x9,%xmm1,%xmm0"), True),
    (("tzcnt", "%rax,%rax"), True), (("pinsrd", "$0x1,%eax,%xmm0"), True),
])
def test_classifier(tool, insn, beyond):
    assert tool.beyond_baseline(*insn) is beyond


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not found")
def test_a_violation_is_found(tool, tmp_path, capsys):
    src = tmp_path / "bad.c"
    src.write_text("void nn_scale(float *x, int n) { for (int i = 0; i < n; i++) x[i] *= 2; }\n")
    so = tmp_path / "bad.so"
    subprocess.run(["gcc", "-O3", "-mavx2", "-shared", "-fPIC", str(src), "-o", str(so)],
                   check=True)
    assert tool.main([str(so)]) == 1
    out = capsys.readouterr().out
    assert "nn_scale (not a dispatched kernel)" in out and "FAIL" in out
