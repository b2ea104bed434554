"""Converters from each dataset's official annotation files to a manifest.

Each ``build(annotations_dir, *, videos_root=None, kept_apart=None, ...)`` returns
``(ManifestMeta, list[VideoRecord])``; :func:`build.build_manifest` writes the folder.
"""

from collections.abc import Callable

from data_manifests.converters import (
    activitynet,
    breakfast,
    charades,
    charades_sta,
    multithumos,
    thumos14,
)

CONVERTERS: dict[str, Callable] = {
    "charades": charades.build,
    "charades-sta": charades_sta.build,
    "breakfast": breakfast.build,
    "thumos14": thumos14.build,
    "multithumos": multithumos.build,
    "activitynet": activitynet.build,
}
