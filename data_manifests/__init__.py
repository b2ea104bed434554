"""Dataset manifests: schema, converters from official annotation files, the synthetic benchmark."""

from data_manifests.schema import (  # noqa: F401  (the public API of this package)
    Manifest,
    ManifestError,
    ManifestMeta,
    Point,
    Segment,
    Sentence,
    VideoRecord,
    frame_labels,
    labels_at_times,
    load_manifest,
    write_manifest,
)
