"""Training under torchrun (gloo, real processes): the same run as one process at the global
batch, exact resume after SIGTERM, evaluation sharded without duplicates or gaps.

The launches are real ``python -m torch.distributed.run --standalone --nproc_per_node 2 -m
alrp_cli train`` subprocesses (about 20-60 s each on a busy 2-core machine): ``slow``. The
pieces they rest on (the sampler's split of the global batch, per-image seeded augmentation)
are checked in one process in the default suite.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from alrp_cli.detection.engine import EpochSampler, SeededSamples
from alrp_cli.detection.train import train
from tests.helpers.tiny_training import TINY_CLI_OPTIONS, tiny_config

ROOT = Path(__file__).resolve().parents[2]


def test_the_ranks_shares_of_each_global_batch_are_one_process_batches() -> None:
    size, seed, b, w = 23, 5, 3, 2
    for start in (0, 6, 12):  # a resumed epoch starts after start global items
        one = list(EpochSampler(size, seed=seed, epoch=4, start=start))
        full = (size - start) // (b * w)  # complete global batches only
        shares = [
            list(
                EpochSampler(
                    size, seed=seed, epoch=4, start=start, rank=r, world_size=w, batch_size=b
                )
            )
            for r in range(w)
        ]
        assert [len(s) for s in shares] == [full * b] * w
        for r in range(w):
            assert len(EpochSampler(size, seed=seed, epoch=4, start=start, rank=r,
                                    world_size=w, batch_size=b)) == full * b  # fmt: skip
        for k in range(full):  # global batch k = rank 0's k-th batch, then rank 1's
            glued = [i for r in range(w) for i in shares[r][k * b : (k + 1) * b]]
            assert glued == one[k * b * w : (k + 1) * b * w]
    assert list(EpochSampler(size, seed=seed, epoch=4)) != list(EpochSampler(size, seed=seed))


def test_augmentation_is_a_function_of_seed_epoch_and_image(tiny_coco: Path) -> None:
    from alrp_cli.detection.data import CocoDataset, coco_layout

    paths = coco_layout(tiny_coco)
    ds = CocoDataset(paths.train_images, paths.train_ann, train=True, image_size=64)
    seeded = SeededSamples(ds, seed=3, epoch=1)
    torch.manual_seed(0)
    forward = [seeded[i][0] for i in range(4)]
    torch.manual_seed(123)  # another global RNG state and another order: same samples
    backward = {i: seeded[i][0] for i in reversed(range(4))}
    for i in range(4):
        assert torch.equal(forward[i], backward[i])
    other_epoch = SeededSamples(ds, seed=3, epoch=2)
    assert any(not torch.equal(forward[i], other_epoch[i][0]) for i in range(4))


def test_one_persistent_loader_serves_every_epoch_as_fresh_in_process_loaders_do(
    tiny_coco: Path,
) -> None:
    """The run keeps one DataLoader (its workers persist); moving its keyed sampler to an
    epoch and position gives the batches a new in-process loader of that epoch gives."""
    from alrp_cli.detection.data import CocoDataset, coco_layout, collate

    paths = coco_layout(tiny_coco)
    ds = CocoDataset(paths.train_images, paths.train_ann, train=True, image_size=64)

    def batches(loader: torch.utils.data.DataLoader) -> list[torch.Tensor]:
        return [images for images, _ in loader]

    keyed = EpochSampler(len(ds), seed=3, epoch=0, keyed=True)
    persistent = torch.utils.data.DataLoader(
        SeededSamples(ds, seed=3, epoch=0), batch_size=2, sampler=keyed, collate_fn=collate,
        num_workers=1, persistent_workers=True,
    )  # fmt: skip
    firsts = []
    for epoch, start in ((0, 0), (1, 0), (2, 4)):  # epoch 2 resumed after 4 items
        keyed.set_epoch(epoch, start=start)
        fresh = torch.utils.data.DataLoader(
            SeededSamples(ds, seed=3, epoch=epoch), batch_size=2, collate_fn=collate,
            sampler=EpochSampler(len(ds), seed=3, epoch=epoch, start=start),
        )  # fmt: skip
        got, expected = batches(persistent), batches(fresh)
        assert len(got) == len(expected) == (len(ds) - start) // 2
        assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
        firsts.append(got[0])
    assert not torch.equal(firsts[0], firsts[1])  # another epoch, other samples


def test_one_process_trains_batch_norm_as_several_do_bit_for_bit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a CPU a run resumed alone after several processes trains a from-scratch BatchNorm
    with the ranks' arithmetic: its output for a batch of 4 is, bit for bit, what 2 ranks
    give for 2 + 2 (torch's own BatchNorm rounds otherwise, and a run resumed on 1 process
    left its 2-process run). A fresh process alone keeps torch's BatchNorm. The 2 ranks:
    copies of the layer whose all-reduce sums the 2 halves' partial sums."""
    import copy

    from torch import nn

    from alrp_cli.detection import distributed
    from alrp_cli.detection.build import _wrap_model
    from alrp_cli.detection.distributed import CpuSyncBatchNorm, Dist
    from alrp_cli.detection.model import Detector

    torch.manual_seed(0)
    model = Detector(2, backbone="resnet18", head_channels=32)
    fresh = copy.deepcopy(model)
    assert _wrap_model(fresh, Dist(), torch.device("cpu")) is fresh  # alone: no DDP
    assert all(type(m) is not CpuSyncBatchNorm for m in fresh.modules())
    assert _wrap_model(model, Dist(), torch.device("cpu"), ran_on_several=True) is model
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 20 and all(type(m) is CpuSyncBatchNorm for m in norms)

    one = model.backbone.body.layer1[0].bn1.train()
    with torch.no_grad():
        one.weight.uniform_(0.5, 1.5)
        one.bias.uniform_(-0.5, 0.5)
    ranks = [copy.deepcopy(one) for _ in range(2)]
    x = torch.randn(4, 64, 16, 16) * 3 + 1
    alone = one(x)

    sent: list[torch.Tensor] = []
    monkeypatch.setattr(distributed.tdist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.tdist, "get_world_size", lambda group=None: 2)
    monkeypatch.setattr(distributed._AllReduceSum, "apply", lambda t: sent.append(t) or t)
    for rank, half in zip(ranks, x.chunk(2), strict=True):  # what each rank sends
        copy.deepcopy(rank)(half)
    total = sent[0] + sent[1]
    monkeypatch.setattr(distributed._AllReduceSum, "apply", lambda t: total.clone())
    together = torch.cat([rank(half) for rank, half in zip(ranks, x.chunk(2), strict=True)])
    assert torch.equal(alone, together)
    for name, buffer in one.named_buffers():
        assert torch.equal(buffer, dict(ranks[1].named_buffers())[name]), name


def test_global_batch_norm_alone_is_torch_s_batch_norm_to_rounding() -> None:
    from torch import nn

    from alrp_cli.detection.distributed import CpuSyncBatchNorm

    torch.manual_seed(0)
    reference = nn.BatchNorm2d(8)
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5)
        reference.bias.uniform_(-0.5, 0.5)
    ours = CpuSyncBatchNorm(8)
    ours.load_state_dict(reference.state_dict())
    x, upstream = torch.randn(4, 8, 6, 5) * 3 + 1, torch.randn(4, 8, 6, 5)
    results = []
    for norm in (reference, ours):
        xx = x.clone().requires_grad_()
        y = norm.train()(xx)
        (y * upstream).sum().backward()
        assert norm.weight.grad is not None and norm.bias.grad is not None
        results.append((y, xx.grad, norm.weight.grad, norm.bias.grad, *norm.buffers()))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.eval()(x), reference.eval()(x))  # running statistics


# ---------------------------------------------------------------- real processes (slow)


def _torchrun(args: list[str], *, nproc: int = 2, **popen: object) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc_per_node={nproc}", "-m", "alrp_cli", "train", *args]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )


def _finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out + err


@pytest.fixture(scope="module")
def ddp_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 training images and 7 validation images: the 2 ranks' shards are 4 and 3 images."""
    from alrp_cli.detection.data import make_synthetic_coco

    return make_synthetic_coco(
        tmp_path_factory.mktemp("ddp") / "coco", num_train=8, num_val=7, image_size=64
    )


# 2 epochs of 2 iterations at global batch 4 (2 per process); every detection kept. The
# learning rate is a tenth of the tiny runs' (at 0.02 one process with 1 or 2 threads, only
# the rounding different, ends 5e-4 apart after 4 steps). The backbone starts from
# generated ImageNet-like weights, its BatchNorm in eval mode as the COCO preset trains it:
# BatchNorm that learns batch statistics normalises the synthetic images' flat backgrounds
# to 0 up to rounding, so that a ReLU there takes a side by rounding and a from-scratch run
# of 2 x 2 images parts from 1 x 4 images by 6e-4 in epoch 2 (the same arithmetic for
# global-batch BatchNorm is checked layer by layer in the tests above).
LR = 0.002


@pytest.fixture(scope="module")
def ddp_options(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The runs' options, with a local ImageNet-like ResNet-18 file."""
    from tests.helpers.weights import imagenet_like

    weights = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(imagenet_like(), weights)
    return [
        *(x if x != "0.02" else str(LR) for x in TINY_CLI_OPTIONS),
        *("--epochs", "2", "--eval-every", "100", "--score-threshold", "0"),
        *("--backbone-weights", str(weights)),
    ]


@pytest.fixture(scope="module")
def ddp_run(
    ddp_data: Path, ddp_options: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """An uninterrupted 2-process run (--ranking global, the default)."""
    out = tmp_path_factory.mktemp("ddp_run") / "run"
    code, text = _finish(_torchrun(["--data", str(ddp_data), *ddp_options, "--out", str(out)]))
    assert code == 0, text
    return out


def _model(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "last.pt", weights_only=True)["model"]


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_two_processes_at_batch_b_train_as_one_process_at_batch_2b(
    ddp_run: Path, ddp_data: Path, ddp_options: list[str], tmp_path: Path
) -> None:
    weights = ddp_options[ddp_options.index("--backbone-weights") + 1]
    one = train(
        tiny_config(ddp_data, tmp_path / "one", lr=LR, epochs=2, score_threshold=0.0,
                    threads=1, backbone_weights=weights)
    )  # fmt: skip
    assert json.loads((ddp_run / "config.json").read_text())["model"]["pretrained"] is True
    assert one.global_iter == 4
    config = json.loads((ddp_run / "config.json").read_text())
    assert config["runtime"]["world_size"] == 2 and config["runtime"]["backend"] == "gloo"
    assert config["optim"]["batch_size"] == 4 and config["optim"]["ranking"] == "global"
    # Same images, augmentation and loss (global ranking); only float32 rounding differs
    # (reduction order of 2 x 2 images vs 4, the all-reduce of gradients): measured 1.5e-8
    # at most over the weights after the 4 steps. 1e-5 leaves room for other CPUs and
    # still fails on any real difference: the same run with --ranking local (each process
    # ranks its own 2 images) ends 4e-4 apart, a batch of other images further still.
    a, b = _model(ddp_run), _model(tmp_path / "one")
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert worst < 1e-5, worst
    # The logged losses are the global batch's, as one process's.
    steps = [
        [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        for run in (ddp_run, tmp_path / "one")
    ]
    for x, y in zip(*steps, strict=True):
        if x["type"] == "step":
            assert x["iter"] == y["iter"]
            assert x["loss"] == pytest.approx(y["loss"], rel=1e-5)
            assert x["sb_weight"] == pytest.approx(y["sb_weight"], rel=1e-5)


@pytest.mark.slow
def test_distributed_evaluation_writes_each_image_once(ddp_run: Path, ddp_data: Path) -> None:
    from alrp_cli.detection.data import coco_layout
    from alrp_cli.detection.predict import predict

    written = json.loads((ddp_run / "eval" / "epoch_002" / "predictions.json").read_text())
    paths = coco_layout(ddp_data)
    alone = ddp_run / "alone.json"
    predict(
        ddp_run / "last.pt", paths.val_images, alone, ann=paths.val_ann, device="cpu",
        batch_size=4, score_threshold=0.0,
    )  # fmt: skip
    expected = json.loads(alone.read_text())
    per_image = Counter(p["image_id"] for p in written)
    assert per_image == Counter(p["image_id"] for p in expected)
    assert len(per_image) == 7  # every validation image, none twice (100 detections each)
    assert set(per_image.values()) == {100}
    for x, y in zip(written, expected, strict=True):  # same order: dataset order, by score
        assert x["image_id"] == y["image_id"] and x["category_id"] == y["category_id"]
        assert x["score"] == pytest.approx(y["score"], abs=1e-5)
        assert x["bbox"] == pytest.approx(y["bbox"], abs=1e-3)


def _worker_pids(launcher: int) -> dict[int, int]:
    """RANK -> pid of the launcher's worker processes (Linux /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid != launcher:
                continue
            env = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        for item in env:
            if item.startswith(b"RANK="):
                found[int(item[5:])] = int(entry.name)
    return found


def _handles_sigterm(pid: int) -> bool:
    """Whether process ``pid`` has a SIGTERM handler (Linux /proc: SigCgt)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # gone
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds workers in /proc")
def test_resume_after_sigterm_on_one_rank_equals_an_uninterrupted_run(
    ddp_run: Path, ddp_data: Path, ddp_options: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    proc = _torchrun(["--data", str(ddp_data), *ddp_options, "--out", str(out)])
    # Stopped after iteration 1, mid-epoch: rank 1 is signalled as soon as it handles
    # SIGTERM (training has begun), so that every process stops after the first iteration
    # (a warm-up step, half a self-balance period, 4 of 8 images of epoch 1 taken).
    deadline = time.monotonic() + 240
    workers: dict[int, int] = {}
    while time.monotonic() < deadline and proc.poll() is None:
        workers = workers if len(workers) == 2 else _worker_pids(proc.pid)
        if 1 in workers and _handles_sigterm(workers[1]):
            break
        time.sleep(0.005)
    os.kill(workers[1], signal.SIGTERM)  # one rank only: every rank must stop with it
    code, text = _finish(proc)
    assert code != 0, text
    assert "interrupted: checkpoint saved" in text
    stopped = torch.load(out / "last.pt", weights_only=True)["train_state"]["global_iter"]
    assert 1 <= stopped < 4

    alone = tmp_path / "alone"
    shutil.copytree(out, alone)

    code, text = _finish(_torchrun(["--resume", str(out)]))
    assert code == 0, text
    a, b = _model(ddp_run), _model(out)
    for name in a:
        assert torch.equal(a[name], b[name]), name

    # Resumed in one process: the global batch (4) stays, and so does the run, to rounding.
    messages: list[str] = []
    train(
        tiny_config(ddp_data, tmp_path / "x", resume=str(alone)),
        on_event=lambda e: messages.append(e["text"]) if e["type"] == "message" else None,
    )
    assert any("resumed on 1 processes (the run started on 2)" in m for m in messages)
    assert any("global batch stays 4 (4 per process)" in m for m in messages)
    # config.json stays as the run wrote it; the checkpoints record the world it runs in now
    assert json.loads((alone / "config.json").read_text())["runtime"]["world_size"] == 2
    last = torch.load(alone / "last.pt", weights_only=True)
    assert last["config"]["runtime"]["world_size"] == 1
    c = _model(alone)
    assert max(float((a[k].float() - c[k].float()).abs().max()) for k in a) < 1e-5


@pytest.mark.slow
def test_a_diverging_run_stops_every_process_with_the_same_message(
    ddp_data: Path, tmp_path: Path
) -> None:
    """--lr 1e4 makes the outputs non-finite in epoch 2: every process stops there (none
    waits in the loss's or the gradients' collectives), rank 0 says where, last.pt stays."""
    out = tmp_path / "run"
    args = ["--data", str(ddp_data), *TINY_CLI_OPTIONS, "--epochs", "2", "--eval-every", "100"]
    code, text = _finish(_torchrun([*args, "--lr", "1e4", "--out", str(out)]), timeout=240)
    assert code != 0
    errors = [line for line in text.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, text  # rank 0 alone prints
    assert errors[0].startswith("Error: non-finite loss at epoch 2, iteration 3: loss=nan")
    # torchrun reports the failed workers with its own traceback; the workers print none
    assert "]: Traceback" not in text and "ValueError" not in text
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["train_state"]["global_iter"] == 2


@pytest.mark.slow
def test_two_processes_start_from_the_imagenet_weights_in_the_cache(
    ddp_data: Path, ddp_options: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The COCO preset under torchrun: rank 0 reads torch's cache first, then the other; the
    frozen stem and the BatchNorm statistics stay the ImageNet ones (eval mode), the
    later BatchNorm scales train. A closed proxy makes any download attempt fail locally."""
    from alrp_cli.detection.data import coco_layout
    from alrp_cli.detection.pretrained import imagenet_weights
    from tests.helpers.weights import imagenet_like

    state = imagenet_like()
    cache = tmp_path / "torch-home" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(state, cache / Path(imagenet_weights("resnet18").url).name)
    paths = coco_layout(ddp_data)
    data = ["--train-ann", str(paths.train_ann), "--train-images", str(paths.train_images),
            "--val-ann", str(paths.val_ann), "--val-images", str(paths.val_images)]  # fmt: skip
    out = tmp_path / "run"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # torchrun's processes
    for proxy in ("https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")
    options = ddp_options[: ddp_options.index("--backbone-weights")]  # the cache's file
    code, text = _finish(_torchrun([*data, *options, "--epochs", "1", "--out", str(out)]))
    assert code == 0, text
    assert json.loads((out / "config.json").read_text())["model"]["pretrained"] is True
    model = torch.load(out / "last.pt", weights_only=True)["model"]
    for key in ("conv1.weight", "layer1.0.conv2.weight", "layer3.1.bn2.running_mean"):
        assert torch.equal(model[f"backbone.body.{key}"], state[key]), key
    assert not torch.equal(model["backbone.body.layer4.1.bn2.bias"], state["layer4.1.bn2.bias"])
