"""The shared stage-2 ground: run config, one training loop, checkpoints, prediction."""

from downstream.training.loop import result_line, train_run
from downstream.training.predict import evaluate_run, predict_run

__all__ = ["evaluate_run", "predict_run", "result_line", "train_run"]
