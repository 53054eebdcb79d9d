"""Scale-out under torchrun: 2 CPU processes on the gloo backend.

Each test launches ``python -m torch.distributed.run --standalone --nproc_per_node 2`` (what
the ``torchrun`` command runs) with one OpenMP thread per process.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from fgdiscover.embed import embed_images
from fgdiscover.models.encoder import InverseEncoder
from fgdiscover.train.gan import CHECKPOINT, load_finegan

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason="torch built without torch.distributed")


def torchrun(args, cwd, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_torchrun_train_stays_in_sync_resumes_and_loads(tmp_path, synth_small):
    run = tmp_path / "run"
    common = ["-m", "fgdiscover.cli", "train", synth_small.root, "--out", run,
              "--preset", "tiny", "--device", "cpu"]
    r = torchrun([*common, "--iters", 4], tmp_path)
    # train_gan compares a digest of every rank's weights at each checkpoint (every 2 steps
    # in the tiny preset) and fails the run if they differ: exit 0 means they agreed
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("checkpoint: ") == 1  # rank 0 alone prints
    r = torchrun([*common, "--resume", "--iters", 6], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # one writer, resumed where it stopped
    m, cfg, ckpt = load_finegan(run)
    assert ckpt["step"] == 6 and ckpt["rng"]["world_size"] == 2
    assert len(ckpt["rng"]["codes_by_rank"]) == 2
    assert not torch.equal(*ckpt["rng"]["codes_by_rank"])  # each rank its own codes
    assert cfg.batch_size == 4  # per process: 8 images per step in all
    # a 2-process run resumed by one process is refused, in one line
    from click.testing import CliRunner

    from fgdiscover.cli import cli

    res = CliRunner().invoke(cli, [str(a) for a in common[2:]] + ["--resume", "--iters", "8"])
    assert res.exit_code == 2 and "trained by 2 process(es)" in res.output
    assert (run / CHECKPOINT).is_file()


def test_torchrun_cluster_writes_one_run(tmp_path, synth_small):
    r = torchrun(["-m", "fgdiscover.cli", "cluster", synth_small.root, "--k", 4, "--k-parent", 2,
                  "--preset", "tiny", "--out", tmp_path / "run", "--device", "cpu",
                  "--no-report"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("clustered 48 images") == 1  # rank 0 alone clusters and reports
    rows = (tmp_path / "run" / "assignments.csv").read_text().splitlines()
    assert len(rows) == 49 and rows[1].startswith("images/00.png,")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["processes"] == 2


WORKER = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    import numpy as np, torch
    from fgdiscover import distributed
    from fgdiscover.embed import embed_images
    from fgdiscover.errors import FGDError
    from fgdiscover.models.encoder import InverseEncoder

    out = Path(sys.argv[1])
    world, dev = distributed.setup("cpu")
    r = world.rank
    res = {}

    # gradients are averaged: SGD with lr 1 moves the weight by minus the mean gradient
    lin = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.constant_(lin.weight, float(r))  # differs: the broadcast makes it rank 0's
    opt = torch.optim.SGD(lin.parameters(), lr=1.0)
    distributed.broadcast_parameters(lin)
    distributed.average_gradients(opt)
    lin(torch.full((1, 2), r + 1.0)).sum().backward()  # gradient r + 1 on rank r
    opt.step()
    res["weight"] = lin.weight.flatten().tolist()

    # a BatchNorm network on different data stays identical, buffers included
    torch.manual_seed(r)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4),
                              torch.nn.Linear(4, 1))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    distributed.broadcast_parameters(net)
    distributed.average_gradients(opt)
    x = torch.randn(8, 3)
    for _ in range(3):
        opt.zero_grad()
        net(x).pow(2).mean().backward()
        opt.step()
        distributed.broadcast_buffers(net)
    res["digest"] = distributed.check_in_sync(net)
    (out / f"digest_{r}.txt").write_text(distributed.state_digest(net))

    # drift is detected on every rank
    with torch.no_grad():
        net[0].weight[0, 0] += r
    try:
        distributed.check_in_sync(net)
        res["drift"] = None
    except FGDError as e:
        res["drift"] = str(e)

    # sharded encoding, gathered in order by rank 0
    torch.manual_seed(0)
    enc = InverseEncoder(resolution=16, n_parent=2, n_child=4, width=4, feature_dim=8)
    images = np.random.default_rng(0).integers(0, 256, (11, 16, 16, 3), dtype=np.uint8)
    e = embed_images(enc, images, [f"f{i}.png" for i in range(11)], out / "emb",
                     batch_size=2, device=dev, progress=False)
    res["embed_returned"] = e is not None
    (out / f"result_{r}.json").write_text(json.dumps(res))
''')


def test_gradients_buffers_drift_and_sharded_embedding(tmp_path):
    (tmp_path / "worker.py").write_text(WORKER)
    r = torchrun([tmp_path / "worker.py", tmp_path], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    res = [json.loads((tmp_path / f"result_{k}.json").read_text()) for k in (0, 1)]
    for k in (0, 1):
        # 0 - mean(1, 2); without averaging rank 0 would hold -1 and rank 1 -2
        assert res[k]["weight"] == [-1.5, -1.5]
        assert "rank(s) 1 differ from rank 0" in res[k]["drift"]
    assert res[0]["digest"] == res[1]["digest"]
    assert (tmp_path / "digest_0.txt").read_text() == (tmp_path / "digest_1.txt").read_text()
    assert res[0]["embed_returned"] and not res[1]["embed_returned"]

    torch.manual_seed(0)
    enc = InverseEncoder(resolution=16, n_parent=2, n_child=4, width=4, feature_dim=8)
    images = np.random.default_rng(0).integers(0, 256, (11, 16, 16, 3), dtype=np.uint8)
    one = embed_images(enc, images, [f"f{i}.png" for i in range(11)], tmp_path / "one",
                       batch_size=2, progress=False)
    for key in ("features", "parent_probs", "child_probs"):
        np.testing.assert_allclose(np.load(tmp_path / "emb" / f"{key}.npy"),
                                   getattr(one, key), rtol=1e-5, atol=1e-6)
    assert ((tmp_path / "emb" / "embeddings.csv").read_text()
            == (tmp_path / "one" / "embeddings.csv").read_text())


def test_batch_sampler_shards_one_global_batch_between_ranks():
    """As DistributedSampler: the ranks split the global batch of one shared order; one
    process with a batch of 2 x 3 draws exactly their union, with the same flips."""
    from fgdiscover.train.gan import BatchSampler

    images = np.arange(10 * 2 * 2 * 3, dtype=np.uint8).reshape(10, 2, 2, 3)
    boxes = np.zeros((10, 4), np.float32)
    ranks = [BatchSampler(images, boxes, 3, seed=5, rank=r, world_size=2) for r in (0, 1)]
    single = BatchSampler(images, boxes, 6, seed=5)
    for _ in range(4):  # crosses an epoch boundary
        parts = [s.next() for s in ranks]
        whole, _ = single.next()
        assert len(parts[0][0]) == len(parts[1][0]) == 3
        np.testing.assert_array_equal(whole[0::2], parts[0][0])
        np.testing.assert_array_equal(whole[1::2], parts[1][0])
    assert ranks[0].state()["pos"] == ranks[1].state()["pos"] == single.state()["pos"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_torchrun_cuda_without_cuda_is_a_one_line_error_per_process(tmp_path, synth_small):
    r = torchrun(["-m", "fgdiscover.cli", "train", synth_small.root, "--out", tmp_path / "run",
                  "--preset", "tiny", "--device", "cuda"], tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert out.count("Error: --device cuda asked for CUDA but torch sees no CUDA GPU") >= 1
    assert "fgdiscover/" not in out  # no traceback through fgdiscover (torchrun adds its own)
    assert not (tmp_path / "run").exists()
