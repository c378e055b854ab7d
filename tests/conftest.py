import os

import pytest
import torch

THREADS = min(2, os.cpu_count() or 1)
torch.set_num_threads(THREADS)


@pytest.fixture(autouse=True)
def torch_threads():
    """Every test starts with the same torch thread count, whatever an earlier test left (an AppTest of the
    lab sets the server's 1 thread in this process)."""
    torch.set_num_threads(THREADS)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """The engine's cache (teacher references) in the test session's temporary folder, not the user's;
    processes the tests start inherit it."""
    os.environ["HARD_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def mnist_teacher(tmp_path_factory):
    """A CNN teacher for mnist5k at canvas 28, pretrained by the CLI once per test session."""
    from hard_core.cli import main

    out = tmp_path_factory.mktemp("teacher") / "T"
    code = main(["pretrain", "--dataset", "mnist5k", "--model", "cnn", "--augment", "shift",
                 "--max-shift", "3", "--steps", "150", "--eval-every", "150", "--suites", "shift:3",
                 "--lr", "3e-3", "--seed", "0", "--out", str(out)])
    assert code == 0
    return out


@pytest.fixture
def lab_runs(tmp_path, monkeypatch):
    """The lab on a private runs folder with a fresh scheduler; every process it started is stopped after."""
    monkeypatch.setenv("HARD_LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("HARD_LAB_MAX_RUNS", "1")
    from lab import runs

    runs.shutdown()
    yield tmp_path / "runs"
    runs.shutdown()


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    """A runs folder with two tiny finished HARD-affine runs, on digits and on MNIST-1D (the lab's pages)."""
    from hard_core.config import RunConfig
    from hard_core.runs import run_to_dir

    root = tmp_path_factory.mktemp("runs")
    run_to_dir(RunConfig(dataset="mnist5k", canvas=40, teacher="default", student="mlp", hard="affine", steps=20,
                         eval_every=20, suites="shift:6"), root / "hard-affine-20")
    run_to_dir(RunConfig(dataset="mnist1d", teacher="default", student="mlp", hard="affine", steps=20,
                         eval_every=20, suites="shift:8"), root / "hard-1d-20")
    return root
