"""The GPU path's decisions (precision, pinned non-blocking copies, device checks), tested
on the CPU: no CUDA kernel runs here, the branches are chosen from a torch.device."""

import numpy as np
import pytest
import torch

from fgdiscover.accel import Accel, resolve_precision
from fgdiscover.distributed import World, process_device
from fgdiscover.errors import FGDError
from fgdiscover.models.codes import sample_codes
from fgdiscover.train.config import preset
from fgdiscover.train.gan import (build_finegan, fill_missing_boxes, make_optimizers, to_tensor,
                                  train_step)


def test_bf16_and_pinned_copies_on_cuda_fp32_and_plain_copies_on_the_cpu():
    gpu = Accel.for_device(torch.device("cuda", 1))
    assert (gpu.precision, gpu.autocast_dtype, gpu.pin_memory, gpu.non_blocking) == (
        "bf16", torch.bfloat16, True, True)
    assert Accel.for_device("cuda", "fp32").autocast_dtype is None
    cpu = Accel.for_device("cpu")
    assert (cpu.precision, cpu.autocast_dtype, cpu.pin_memory, cpu.non_blocking) == (
        "fp32", None, False, False)
    assert Accel.for_device("cpu", "bf16").autocast_dtype == torch.bfloat16  # only if asked
    assert resolve_precision("cuda:0") == "bf16" and resolve_precision("cpu", "auto") == "fp32"
    with pytest.raises(FGDError, match="unknown precision 'fp16'"):
        resolve_precision("cuda", "fp16")


def test_cuda_copies_go_through_pinned_memory_non_blocking(monkeypatch):
    calls = []

    def fake_pin(self):
        calls.append("pin")
        return self

    original_to = torch.Tensor.to

    def spy_to(self, *args, **kwargs):
        calls.append(("to", kwargs.get("non_blocking")))
        return original_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    monkeypatch.setattr(torch.Tensor, "to", spy_to)
    # the CUDA decisions applied to a CPU device: the branch runs without a GPU
    cuda_like = Accel(torch.device("cpu"), "fp32", None, pin_memory=True, non_blocking=True)
    images = np.zeros((2, 4, 4, 3), np.uint8)
    to_tensor(images, "cpu", cuda_like)
    assert calls[:2] == ["pin", ("to", True)]
    calls.clear()
    to_tensor(images, "cpu")  # the CPU: no pinning, a blocking (no-op) move
    assert "pin" not in calls and ("to", False) in calls


def test_cpu_result_is_unchanged_by_the_accel_path():
    images = np.random.default_rng(0).integers(0, 256, (3, 4, 4, 3), dtype=np.uint8)
    want = torch.from_numpy(images.copy()).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    assert torch.equal(to_tensor(images, "cpu"), want)


def test_train_step_under_bf16_autocast_keeps_float32_weights_and_losses():
    """The autocast branch (bf16 on the CPU here): forward in bf16, losses and weights in
    float32, every loss finite."""
    cfg = preset("tiny")
    torch.manual_seed(0)
    m = build_finegan(cfg)
    opt = make_optimizers(m, cfg)
    accel = Accel.for_device("cpu", "bf16")
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    boxes = fill_missing_boxes(torch.tensor([[4.0, 4, 8, 8]] * 4), 16, cfg.border_band)
    c = sample_codes(4, n_parent=2, n_child=4, z_dim=cfg.z_dim)
    with accel.autocast():
        assert m.generator(c.z, c.b, c.p, c.c)["child"].dtype == torch.bfloat16
    losses = train_step(m, opt, real, boxes, sample_codes(4, n_parent=2, n_child=4,
                                                          z_dim=cfg.z_dim), cfg,
                        autocast=accel.autocast)
    assert all(np.isfinite(v) for v in losses.values())
    assert all(p.dtype == torch.float32 for p in m.parameters())


def test_device_requests_are_checked_with_one_line_errors(monkeypatch):
    assert process_device("cpu", World()) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(FGDError, match="torch sees no CUDA GPU"):
        process_device("cuda", World())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    # under torchrun each process takes the GPU of its LOCAL_RANK
    assert process_device("cuda", World(rank=3, world_size=4, local_rank=1)) == \
        torch.device("cuda", 1)
    with pytest.raises(FGDError, match="more processes per node than GPUs"):
        process_device("cuda", World(rank=2, world_size=4, local_rank=2))
    with pytest.raises(FGDError, match="give --device cuda, not cuda:1"):
        process_device("cuda:1", World(rank=0, world_size=2))
    with pytest.raises(FGDError, match="cuda:5 does not exist"):
        process_device("cuda:5", World())
    with pytest.raises(FGDError, match="unknown device 'gpu'"):
        process_device("gpu", World())


def test_cli_cuda_on_a_machine_without_cuda_is_a_one_line_error(tmp_path, synth_small,
                                                                 monkeypatch):
    from click.testing import CliRunner

    from fgdiscover.cli import cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    r = CliRunner().invoke(cli, ["train", str(synth_small.root), "--out", str(tmp_path / "r"),
                                 "--preset", "tiny", "--device", "cuda"])
    assert r.exit_code == 2
    assert "torch sees no CUDA GPU" in r.output and "Traceback" not in r.output


def test_faiss_kmeans_uses_every_gpu_faiss_sees(monkeypatch):
    """FaissKMeans(device="auto") passes gpu=True to faiss.Kmeans when faiss sees a GPU,
    which faiss reads as "all of them" (index_cpu_to_all_gpus)."""
    import fgdiscover.cluster as cluster

    km = cluster.FaissKMeans(2)
    monkeypatch.setattr(cluster, "_faiss_num_gpus", lambda: 0)
    assert km._check_settings(10, 3) is False
    monkeypatch.setattr(cluster, "_faiss_num_gpus", lambda: 2)
    assert km._check_settings(10, 3) is True
    assert cluster.FaissKMeans(2, device="cpu")._check_settings(10, 3) is False
