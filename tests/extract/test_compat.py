"""extract/pytorchvideo_compat.py: pytorchvideo imports and runs without torchvision."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from extract import pytorchvideo_compat as compat

REAL_TORCHVISION = not getattr(sys.modules.get("torchvision"), compat.STUB_MARKER, False)


def test_pytorchvideo_modules_import_in_a_fresh_interpreter():
    code = ("import extract.pytorchvideo_compat\n"
            "import pytorchvideo.models.x3d, pytorchvideo.models.resnet\n"
            "import pytorchvideo.models.slowfast, pytorchvideo.models.vision_transformers\n"
            "import pytorchvideo.models.hub, pytorchvideo.data.encoded_video\n"
            "print('imported')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout


@pytest.mark.skipif(REAL_TORCHVISION, reason="a real torchvision is installed")
def test_stub_is_installed_and_roi_align_fails_clearly():
    from pytorchvideo.models import head

    assert getattr(sys.modules["torchvision"], compat.STUB_MARKER)
    with pytest.raises(compat.TorchvisionUnavailableError, match="RoIAlign needs torchvision"):
        head.RoIAlign(output_size=(7, 7), spatial_scale=1.0, sampling_ratio=0)
    with pytest.raises(compat.TorchvisionUnavailableError, match="make_dataset"):
        sys.modules["torchvision.datasets.folder"].make_dataset("x")


def test_install_is_idempotent():
    before = {name: module for name, module in sys.modules.items()
              if name.startswith("torchvision")}
    assert compat.install() is False  # already present: nothing to do
    after = {name: module for name, module in sys.modules.items()
             if name.startswith("torchvision")}
    assert before == after


def test_an_existing_torchvision_is_left_alone(monkeypatch):
    for name in [name for name in sys.modules if name.startswith("torchvision")]:
        monkeypatch.delitem(sys.modules, name)
    real = types.ModuleType("torchvision")
    monkeypatch.setitem(sys.modules, "torchvision", real)
    assert compat.install() is False
    assert sys.modules["torchvision"] is real
    assert "torchvision.ops" not in sys.modules


def test_install_puts_stubs_when_torchvision_is_missing(monkeypatch):
    for name in [name for name in sys.modules if name.startswith("torchvision")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(compat.importlib.util, "find_spec", lambda name: None)
    assert compat.install() is True
    assert sys.modules["torchvision.ops"].RoIAlign is compat._RoIAlignUnavailable
    assert compat.install() is False  # second call: already there


def test_encoded_video_decodes_a_gif(kinetics_sample):
    from pytorchvideo.data.encoded_video import EncodedVideo

    video = EncodedVideo.from_path(str(kinetics_sample / "v_CricketShot_g04_c01_rgb.gif"),
                                   decoder="pyav")
    clip = video.get_clip(0.0, 0.2)["video"]  # (C, T, H, W) float in [0, 255]
    video.close()
    assert clip.shape[0] == 3 and clip.shape[2:] == (224, 224)
    assert 1 <= clip.shape[1] <= 6
