"""Shared fixtures: a private decode cache and a small synthetic data set."""

import pytest

from fgdiscover.data.synthetic import make_synthetic


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Keep every test's decode cache out of the user's ~/.cache, and default run
    directories (made relative to the working directory) out of the checkout."""
    monkeypatch.setenv("FGDISCOVER_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory):
    """48 images, 2 parents x 2 children, 16 px: enough for the tiny preset."""
    return make_synthetic(tmp_path_factory.mktemp("synth") / "set", n_parent=2,
                          children_per_parent=2, n=48, size=16, seed=0)
