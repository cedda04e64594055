"""Training loops, evaluation and progress reporting for the integer simulator."""

from .finetune import finetune_lr_schedule, finetune_wide_layers, widen_finetuned_layers
from .loop import EpochRecord, TrainConfig, TrainResult, batches, epoch_order, fit
from .progress import LineProgress, RichProgress, SilentProgress, auto_progress
from .step import Evaluation, StepResult, evaluate, predict, predict_argmax, train_step

__all__ = ["EpochRecord", "TrainConfig", "TrainResult", "batches", "epoch_order", "finetune_lr_schedule", "finetune_wide_layers", "fit",
           "widen_finetuned_layers", "LineProgress",
           "RichProgress", "SilentProgress", "auto_progress", "Evaluation", "StepResult", "evaluate", "predict",
           "predict_argmax", "train_step"]
