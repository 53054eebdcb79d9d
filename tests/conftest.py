"""Shared fixtures: a private decode cache and a small synthetic data set."""

import pytest

from fgdiscover.data.synthetic import make_synthetic


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Keep every test's decode cache out of the user's ~/.cache, and default run
    directories (made relative to the working directory) out of the checkout."""
    monkeypatch.setenv("FGDISCOVER_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture()
def one_thread():
    """torch on one thread for the test: tiny models train several times faster than on
    two threads contending with other work for 2 cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory):
    """48 images, 2 parents x 2 children, 16 px: enough for the tiny preset."""
    return make_synthetic(tmp_path_factory.mktemp("synth") / "set", n_parent=2,
                          children_per_parent=2, n=48, size=16, seed=0)


@pytest.fixture(scope="session")
def tiny_cluster_run(tmp_path_factory, synth_small):
    """A `fgdiscover cluster` run (tiny preset, k=4 under 2 parents, scored against the
    labels) with its pictures and report.html, made once through the CLI."""
    from click.testing import CliRunner

    from fgdiscover.cli import cli

    base = tmp_path_factory.mktemp("tiny-run")
    # the autouse private_cache fixture is per test; a session fixture names its own cache
    args = ["cluster", synth_small.root, "--k", 4, "--k-parent", 2, "--preset", "tiny",
            "--labels", synth_small.root / "labels.csv", "--out", base / "run",
            "--cache-dir", tmp_path_factory.getbasetemp() / "cache"]
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return base / "run"
