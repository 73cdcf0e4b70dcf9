"""examples/tabular_resnet.py runs: both baselines train on both bundled data sets."""

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "tabular_resnet.py")
pytestmark = pytest.mark.skipif(not os.path.exists(EXAMPLE),
                                reason="examples/tabular_resnet.py is not next to the tests")


def test_quick_run():
    pytest.importorskip("sklearn")
    spec = importlib.util.spec_from_file_location("tabular_resnet", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.main(["--quick"])
    for scores in results.values():
        assert set(scores) == {"MLP", "ResNet"}
    assert all(v > 0.8 for v in results["breast_cancer (test accuracy)"].values())
    assert all(v > 0.0 for v in results["diabetes (test R^2, Huber loss)"].values())
