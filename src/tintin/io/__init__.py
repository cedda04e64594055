"""Model and checkpoint files (safetensors + JSON metadata, atomic writes)."""

from .model_file import FORMAT_VERSION, ModelFileError, load_model, save_model

__all__ = ["FORMAT_VERSION", "ModelFileError", "load_model", "save_model"]
