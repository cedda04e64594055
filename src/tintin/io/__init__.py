"""Model and checkpoint files (safetensors + JSON metadata) and atomic writes of any result file."""

from .atomic import OutputWriteError, atomic_write_bytes, atomic_write_json, atomic_write_text, check_writable_dir
from .model_file import (FORMAT_VERSION, ModelFileError, load_model, load_model_bytes, model_file_bytes,
                         read_metadata, save_model)

__all__ = ["FORMAT_VERSION", "ModelFileError", "OutputWriteError", "atomic_write_bytes", "atomic_write_json",
           "atomic_write_text", "check_writable_dir", "load_model", "load_model_bytes", "model_file_bytes",
           "read_metadata", "save_model"]
