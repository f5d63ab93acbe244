"""ImageNet backbone weights: torch's cache, a local file, the errors; the official
``frozen_stages=1`` / ``norm_eval=True`` training; the official FPN initialisation.

No test touches the network: the weights are generated here (a random torchvision ResNet-18
state dict) and placed in a temporary ``TORCH_HOME`` or a local file; torch.hub's download
raises (tests/conftest.py).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from alrp_cli.detection.build import trains_batch_norm
from alrp_cli.detection.model import Detector
from alrp_cli.detection.pretrained import backbone_state_dict, imagenet_weights, weights_path
from alrp_cli.errors import UserError
from tests.helpers.weights import imagenet_like

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def test_the_cache_is_torchvision_s(torch_home: Path) -> None:
    weights = imagenet_weights("resnet50")
    assert weights is torchvision.models.ResNet50_Weights.IMAGENET1K_V1
    assert weights_path(weights) == torch_home / "hub" / "checkpoints" / "resnet50-0676ba61.pth"


def test_weights_come_from_the_cache_and_land_in_the_backbone(torch_home: Path) -> None:
    state = imagenet_like()
    path = weights_path(imagenet_weights("resnet18"))
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    got = backbone_state_dict("resnet18")
    assert "fc.weight" not in got and set(got) == {k for k in state if not k.startswith("fc.")}
    model = Detector(
        2, backbone="resnet18", head_channels=32, pretrained=True, backbone_weights=got
    )
    body = model.backbone.body.state_dict()
    for key, value in got.items():
        assert torch.equal(body[key], value), key


def test_a_local_file_needs_no_cache(torch_home: Path, tmp_path: Path) -> None:
    state = imagenet_like(seed=1)
    local = tmp_path / "r18.pth"
    torch.save(state, local)
    got = backbone_state_dict("resnet18", weights_file=local)
    assert torch.equal(got["layer4.1.conv2.weight"], state["layer4.1.conv2.weight"])
    assert not (torch_home / "hub").exists()  # nothing downloaded, nothing cached


def test_offline_without_cache_names_the_url_the_cache_and_the_option(torch_home: Path) -> None:
    # torch.hub.download_url_to_file raises URLError in every test (tests/conftest.py)
    path = weights_path(imagenet_weights("resnet50"))
    with pytest.raises(UserError) as err:
        backbone_state_dict("resnet50")
    text = str(err.value)
    assert "\n" not in text
    assert "https://download.pytorch.org/models/resnet50-0676ba61.pth" in text
    assert str(path) in text and "--backbone-weights" in text and "--no-pretrained" in text
    assert not path.exists()


def test_the_download_is_torch_hub_s_with_the_hash_checked(
    torch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def fake_download(url: str, dst: str, hash_prefix: str | None, progress: bool) -> None:
        calls.append((url, dst, hash_prefix, progress))
        torch.save(imagenet_like(), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    path = weights_path(imagenet_weights("resnet18"))
    backbone_state_dict("resnet18")
    backbone_state_dict("resnet18")  # reused: no second download
    assert calls == [("https://download.pytorch.org/models/resnet18-f37072fd.pth",
                      str(path), "f37072fd", True)]  # fmt: skip


@pytest.mark.parametrize("problem", ["another backbone", "damaged", "not a state dict"])
def test_wrong_files_are_one_line_errors(tmp_path: Path, problem: str) -> None:
    local = tmp_path / "w.pth"
    if problem == "another backbone":
        torch.save(imagenet_like("resnet34"), local)
        expected = r"not torchvision.s resnet18 weights: \d+ unknown: layer1\.2\."
    elif problem == "damaged":
        torch.save(imagenet_like(), local)
        local.write_bytes(local.read_bytes()[:5000])
        expected = "damaged or truncated"
    else:
        torch.save({"model": [1, 2, 3]}, local)
        expected = "not a state dict"
    with pytest.raises(UserError) as err:
        backbone_state_dict("resnet18", weights_file=local)
    assert "\n" not in str(err.value) and str(local) in str(err.value)
    assert re.search(expected, str(err.value)), str(err.value)


def test_a_damaged_cache_file_says_to_delete_it(torch_home: Path) -> None:
    path = weights_path(imagenet_weights("resnet18"))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 half a download")
    with pytest.raises(UserError, match="delete it to download it again"):
        backbone_state_dict("resnet18")


# mmdetection's ResNet with frozen_stages=1 and norm_eval=True (mmdet/models/backbones/
# resnet.py:569-645), written out: _freeze_stages sets requires_grad=False on conv1, norm1
# and layer1; train(mode) puts every _BatchNorm in eval mode.
def _mmdet_frozen(name: str) -> bool:
    return name.split(".")[0] in ("conv1", "bn1", "layer1")


def test_pretrained_backbone_trains_as_mmdetection_s() -> None:
    torch.manual_seed(0)
    model = Detector(2, backbone="resnet18", head_channels=32, pretrained=True)
    body = model.backbone.body
    for name, param in body.named_parameters():
        assert param.requires_grad is not _mmdet_frozen(name), name
    assert all(p.requires_grad for n, p in model.named_parameters() if "body" not in n)
    assert body.layer3[0].bn2.weight.requires_grad  # stage 3's affine parameters train
    model.train()
    norms = [m for m in body.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 20 and not any(m.training for m in norms)
    assert model.training and model.cls_head.training and model.backbone.fpn.training
    assert not trains_batch_norm(model)  # under DDP: no SyncBatchNorm needed
    before = {k: v.clone() for k, v in body.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    out = model(torch.rand(2, 3, 64, 64))
    (out.cls.square().mean() + out.reg.square().mean()).backward()
    optimizer.step()
    after = body.state_dict()
    for key in before:
        changed = not torch.equal(before[key], after[key])
        if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert not changed, key  # statistics fixed (eval mode)
        elif _mmdet_frozen(key):
            assert not changed, key
        elif key.startswith("layer4") and key.endswith(("bn1.weight", "bn1.bias")):
            assert changed, key  # affine parameters of the later stages learn


def test_from_scratch_batchnorm_learns_its_statistics() -> None:
    torch.manual_seed(0)
    model = Detector(2, backbone="resnet18", head_channels=32).train()
    assert all(p.requires_grad for p in model.parameters())
    bn = model.backbone.body.layer1[0].bn1
    assert bn.training and trains_batch_norm(model)  # DDP: SyncBatchNorm
    before = bn.running_mean.clone()
    model(torch.rand(2, 3, 64, 64))
    assert not torch.equal(before, bn.running_mean)


def test_fpn_convs_are_xavier_uniform_with_zero_bias() -> None:
    # mmdet/models/necks/fpn.py:159-163: xavier_init(m, distribution='uniform') on every
    # conv of the neck: U(-b, b), b = sqrt(6 / (fan_in + fan_out)), bias 0.
    torch.manual_seed(0)
    model = Detector(2, backbone="resnet18", head_channels=64)
    fpn = model.backbone.fpn
    convs = [m for m in fpn.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3 + 3 + 2  # laterals, outputs, P6 and P7
    for conv in convs:
        w = conv.weight
        field = w.shape[2] * w.shape[3]
        bound = math.sqrt(6 / (w.shape[1] * field + w.shape[0] * field))
        assert float(w.abs().max()) <= bound
        # Kaiming-uniform (a=1, torchvision) stays below wherever fan_in > fan_out
        assert float(w.abs().max()) > 0.95 * bound
        assert float(w.std()) == pytest.approx(bound / math.sqrt(3), rel=0.1)
        assert torch.count_nonzero(conv.bias) == 0
