"""Shared fixtures. Tests run on the CPU with few threads: the CI machine has 2 cores and 2 workers."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config):
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# --------------------------------------------------------------------------- a tiny prepared recipe

@pytest.fixture(scope="session")
def mini_recipe(tmp_path_factory):
    """An eSpeak mini corpus of 24 utterances, prepared and featurised once per test session.

    Built under a lock in the session's shared temporary root, so pytest-xdist workers reuse one copy.
    Tests must not modify it (copy what they change).
    """
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by the workers of this run only
    root = base / "mini_recipe"
    with FileLock(str(root) + ".lock"):
        if not (root / "dump" / "manifest.json").exists():
            from holdtts.data.features import extract_features
            from holdtts.data.minicorpus import make_mini_corpus
            from holdtts.data.splits import prepare_data_dir

            make_mini_corpus(root / "corpus", num_utts=24, seed=7, nj=2, overwrite=True)
            prepare_data_dir(root / "corpus", root / "data", seed=7, num_valid=2, overwrite=True)
            extract_features(root / "data", root / "dump", device="cpu", nj=2)
    return root
