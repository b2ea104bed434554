"""Every registered backbone: builds, forward (and backward for the tiny ones), heads,
pretrained loading from local files, the offline hub error."""

from __future__ import annotations

import pytest
import torch

import extract.backbones.pretrained as pretrained_module
from extract.backbones import (
    BACKBONES,
    InputSpec,
    PretrainedWeightsError,
    VideoBackbone,
    build_backbone,
    weights_sha256,
)
from extract.backbones.resnet_i3d import NonLocal3d

TINY = ("x3d-tiny", "mvit-tiny")
FIXED_SIZE = ("mvit-b-16x4", "mvit-b-32x3")  # positional embeddings fix T x H x W


def tiny_input(model: VideoBackbone, batch: int) -> torch.Tensor:
    spec = model.input_spec
    return torch.randn(batch, 3, spec.num_frames, spec.crop_size, spec.crop_size,
                       generator=torch.Generator().manual_seed(0))


def test_registry_has_the_contract_names():
    assert set(BACKBONES) >= {"x3d-tiny", "mvit-tiny", "x3d-xs", "x3d-s", "x3d-m", "x3d-l",
                              "i3d-r50", "i3d-nonlocal-r50", "slowfast-r50", "mvit-b-16x4",
                              "mvit-b-32x3", "i3d-inception"}


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown backbone 'x4d'.*i3d-inception.*x3d-tiny"):
        build_backbone("x4d", num_classes=3)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_builds_and_runs_forward(name):
    torch.manual_seed(0)
    model = build_backbone(name, num_classes=7)
    assert isinstance(model, VideoBackbone) and isinstance(model.input_spec, InputSpec)
    assert model.head.in_features == model.feature_dim and model.num_classes == 7
    if name in TINY:
        return  # forward and backward below
    if name in FIXED_SIZE:
        with pytest.raises(ValueError, match="exactly T, H, W = "):
            model.forward_features(torch.zeros(1, 3, 8, 64, 64))
        return
    model.eval()
    clips = torch.randn(1, 3, 8, 64, 64)
    with torch.inference_mode():
        features = model.forward_features(clips)
        logits = model.forward_head(features)
    assert features.shape == (1, model.feature_dim) and logits.shape == (1, 7)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", TINY)
def test_tiny_forward_backward_reaches_every_parameter(name):
    torch.manual_seed(0)
    model = build_backbone(name, num_classes=5).train()
    clips = tiny_input(model, batch=4)
    features = model.forward_features(clips)
    logits = model.forward_head(features)
    assert features.shape == (4, model.feature_dim) and logits.shape == (4, 5)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, f"{name}: no gradient for {param_name}"
        assert torch.isfinite(param.grad).all(), f"{name}: non-finite gradient in {param_name}"
    assert any(param.grad.abs().sum() > 0 for param in model.parameters())


@pytest.mark.parametrize("name", TINY)
def test_reset_head_keeps_the_trunk(name):
    model = build_backbone(name, num_classes=5).eval()
    clips = tiny_input(model, batch=2)
    with torch.inference_mode():
        before = model.forward_features(clips)
        model.reset_head(9)
        after = model.forward_features(clips)
        logits = model(clips)
    assert torch.equal(before, after) and logits.shape == (2, 9)


def test_pretrained_local_path_drops_the_mismatched_head(tmp_path):
    torch.manual_seed(1)
    source = build_backbone("x3d-tiny", num_classes=5)
    with torch.no_grad():  # make running stats differ from a fresh model's
        for buffer in source.buffers():
            if buffer.is_floating_point():
                buffer.add_(0.5)
    wrapped, raw = tmp_path / "wrapped.pt", tmp_path / "raw.pt"
    torch.save({"model": source.state_dict(), "step": 3}, wrapped)
    torch.save(source.state_dict(), raw)

    torch.manual_seed(2)
    target = build_backbone("x3d-tiny", num_classes=3, pretrained=wrapped)
    trunk = {k: v for k, v in source.state_dict().items() if not k.startswith("head.")}
    for key, value in trunk.items():
        assert torch.equal(target.state_dict()[key], value), key
    assert target.head.weight.shape == (3, target.feature_dim)

    same = build_backbone("x3d-tiny", num_classes=5, pretrained=raw)
    assert weights_sha256(same) == weights_sha256(source)  # same K: the head loads too


def test_pretrained_from_another_architecture_is_an_error(tmp_path):
    path = tmp_path / "mvit.pt"
    torch.save(build_backbone("mvit-tiny", num_classes=3).state_dict(), path)
    with pytest.raises(PretrainedWeightsError, match=r"mvit.pt do not fit X3D: missing"):
        build_backbone("x3d-tiny", num_classes=3, pretrained=path)
    with pytest.raises(PretrainedWeightsError, match="does not exist"):
        build_backbone("x3d-tiny", num_classes=3, pretrained=tmp_path / "nope.pt")


def test_kinetics400_offline_fails_fast_with_instructions(monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained_module.torch.hub, "get_dir", lambda: str(tmp_path))

    def unreachable(address, timeout):
        assert timeout <= 5
        raise OSError("Network is unreachable")

    monkeypatch.setattr(pretrained_module.socket, "create_connection", unreachable)
    with pytest.raises(PretrainedWeightsError, match=r"offline.*X3D_XS.pyth.*--pretrained PATH"):
        build_backbone("x3d-xs", num_classes=4, pretrained="kinetics400")
    with pytest.raises(PretrainedWeightsError, match="no Kinetics-400 checkpoint"):
        build_backbone("x3d-tiny", num_classes=4, pretrained="kinetics400")


def test_kinetics400_uses_the_torch_hub_cache(monkeypatch, tmp_path):
    """A checkpoint already in the hub cache (pytorchvideo's format) loads without network."""
    from pytorchvideo.models.x3d import create_x3d

    net = create_x3d(input_clip_length=4, input_crop_size=160, model_num_class=400,
                     head_activation=None)
    (tmp_path / "checkpoints").mkdir()
    torch.save({"model_state": net.state_dict()}, tmp_path / "checkpoints/X3D_XS.pyth")
    monkeypatch.setattr(pretrained_module.torch.hub, "get_dir", lambda: str(tmp_path))
    model = build_backbone("x3d-xs", num_classes=400, pretrained="kinetics400")
    assert torch.equal(model.head.weight, net.blocks[5].proj.weight)
    assert torch.equal(model.blocks[1].res_blocks[0].branch2.conv_a.weight,
                       net.blocks[1].res_blocks[0].branch2.conv_a.weight)


def test_pytorchvideo_checkpoints_map_onto_the_wrappers():
    """Weights of pytorchvideo's own nets load into ours and give the same logits."""
    from pytorchvideo.models.vision_transformers import create_multiscale_vision_transformers
    from pytorchvideo.models.x3d import create_x3d

    torch.manual_seed(0)
    x3d = create_x3d(input_clip_length=8, input_crop_size=32, model_num_class=5,
                     dropout_rate=0.0, head_activation=None, width_factor=1.0,
                     depth_factor=1.0, stem_dim_in=8, head_dim_out=128).eval()
    mvit = create_multiscale_vision_transformers(
        spatial_size=32, temporal_size=8, depth=4, patch_embed_dim=32, num_heads=1,
        mlp_ratio=2.0, embed_dim_mul=[[1, 2.0], [3, 2.0]], atten_head_mul=[[1, 2.0], [3, 2.0]],
        pool_q_stride_size=[[1, 1, 2, 2], [3, 1, 2, 2]], pool_kv_stride_adaptive=[1, 4, 4],
        pool_kvq_kernel=[3, 3, 3], head_num_classes=5, head_dropout_rate=0.0).eval()
    for name, net in (("x3d-tiny", x3d), ("mvit-tiny", mvit)):
        model = build_backbone(name, num_classes=5)
        pretrained_module.apply_state_dict(model, net.state_dict(), source=name)
        model.eval()
        clips = tiny_input(model, batch=2)
        with torch.inference_mode():
            assert torch.allclose(model(clips), net(clips), atol=1e-5), name


def test_head_keys_of_pytorchvideo_nets_are_renamed():
    assert build_backbone("i3d-r50", num_classes=2).convert_pretrained_key(
        "blocks.6.proj.weight") == "head.weight"
    assert build_backbone("slowfast-r50", num_classes=2).convert_pretrained_key(
        "blocks.6.proj.bias") == "head.bias"
    assert build_backbone("mvit-tiny", num_classes=2).convert_pretrained_key(
        "head.proj.weight") == "head.weight"


def test_weights_sha256_tracks_values():
    torch.manual_seed(0)
    a = build_backbone("x3d-tiny", num_classes=3)
    torch.manual_seed(0)
    b = build_backbone("x3d-tiny", num_classes=3)
    assert weights_sha256(a) == weights_sha256(b) and len(weights_sha256(a)) == 64
    with torch.no_grad():
        b.head.bias[0] += 1e-3
    assert weights_sha256(a) != weights_sha256(b)


def test_nonlocal_block_is_identity_at_init_and_learns():
    block = NonLocal3d(dim=8).eval()
    x = torch.randn(2, 8, 3, 5, 5)
    assert torch.equal(block(x), x)
    with torch.no_grad():
        block.norm.weight.fill_(1.0)
    y = block(x)
    assert y.shape == x.shape and not torch.allclose(y, x)
