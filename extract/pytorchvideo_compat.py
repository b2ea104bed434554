"""Let pytorchvideo 0.1.5 import without torchvision.

pytorchvideo 0.1.5 imports three torchvision names at module level, although none of the
parts weakfeat uses needs them:

- ``pytorchvideo.models.head``            -> ``torchvision.ops.RoIAlign`` (detection heads only)
- ``pytorchvideo.data.labeled_video_paths`` -> ``torchvision.datasets.folder.make_dataset``
- ``pytorchvideo.transforms``             -> ``torchvision.transforms.functional_tensor``

No CPU torchvision wheel matches the CPU torch of this project, so when (and only when)
``import torchvision`` fails, :func:`install` puts minimal stand-in modules for those names
into ``sys.modules``. Calling any stand-in raises :class:`TorchvisionUnavailableError`, so
nothing silently computes a wrong result. ``pytorchvideo.transforms`` is not supported
(weakfeat has its own pure transforms in ``extract/transforms.py``).

Importing this module installs the stand-ins; :func:`install` is idempotent.
"""

from __future__ import annotations

import importlib.util
import sys
import types

from data_manifests.errors import UserError

STUB_MARKER = "__weakfeat_torchvision_stub__"


class TorchvisionUnavailableError(UserError, RuntimeError):
    """A torchvision-only feature of pytorchvideo was called while torchvision is absent."""


def _unavailable(name: str):
    def fail(*args, **kwargs):
        raise TorchvisionUnavailableError(
            f"{name} needs torchvision, which is not installed here; weakfeat only stubs it "
            "so that pytorchvideo imports (see extract/pytorchvideo_compat.py)"
        )

    fail.__name__ = name.rsplit(".", 1)[-1]
    return fail


class _RoIAlignUnavailable:
    """Stand-in for ``torchvision.ops.RoIAlign``: constructing it raises."""

    def __init__(self, *args, **kwargs):
        _unavailable("torchvision.ops.RoIAlign")()


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    setattr(module, STUB_MARKER, True)
    return module


def torchvision_importable() -> bool:
    """True when a torchvision (real or already installed stub) is available."""
    if "torchvision" in sys.modules:
        return True
    return importlib.util.find_spec("torchvision") is not None


def install() -> bool:
    """Install the stand-ins if torchvision is absent. Returns True if it installed them.

    Leaves everything alone when a ``torchvision`` module is importable or already imported.
    """
    if torchvision_importable():
        return False
    root = _module("torchvision", __path__=[])
    ops = _module("torchvision.ops", RoIAlign=_RoIAlignUnavailable,
                  roi_align=_unavailable("torchvision.ops.roi_align"))
    datasets = _module("torchvision.datasets", __path__=[])
    folder = _module("torchvision.datasets.folder",
                     make_dataset=_unavailable("torchvision.datasets.folder.make_dataset"))
    transforms = _module("torchvision.transforms", __path__=[])
    # pytorchvideo.transforms is unsupported; the stub only keeps its import from crashing.
    functional_tensor = _module("torchvision.transforms.functional_tensor")
    root.ops, root.datasets, root.transforms = ops, datasets, transforms
    datasets.folder = folder
    transforms.functional_tensor = functional_tensor
    sys.modules.update({
        "torchvision": root,
        "torchvision.ops": ops,
        "torchvision.datasets": datasets,
        "torchvision.datasets.folder": folder,
        "torchvision.transforms": transforms,
        "torchvision.transforms.functional_tensor": functional_tensor,
    })
    return True


install()
