"""The field's official metrics as pure functions, and their file-level evaluators.

``EVALUATORS`` maps a task name of ``weakfeat downstream evaluate`` to the function that reads
the standard files and returns one dict of fractions in [0, 1]. The pure functions that other
stages call are re-exported here.
"""

from downstream.metrics import classification, detection, grounding, segmentation
from downstream.metrics.classification import multilabel_map
from downstream.metrics.detection import TIOU_PRESETS, evaluate_detection
from downstream.metrics.errors import MetricInputError
from downstream.metrics.grounding import recall_at_iou
from downstream.metrics.segmentation import evaluate_segmentation

EVALUATORS = {
    "tal": detection.evaluate_files,  # ActivityNet eval_detection.py
    "cls": classification.evaluate_files,  # Charades_v1_classify.m
    "seg": segmentation.evaluate_files,  # MS-TCN eval.py
    "tsg": grounding.evaluate_files,  # MMN evaluation.py
}

__all__ = ["EVALUATORS", "TIOU_PRESETS", "MetricInputError", "evaluate_detection",
           "evaluate_segmentation", "multilabel_map", "recall_at_iou"]
