"""The float32 reference of a training step in C, for measuring what integer training saves.

* :func:`render_reference`: C of the same network and SGD update in ``float`` (soft float on
  Cortex-M0/M3/M4 and AVR, hard float on ``cortex-m4f``).
* :func:`run_reference_on_target`: build it with the same embedded data and order as the integer
  run, run it in the target's emulator, count instructions (cycles on AVR) per step.
"""

from .emit import ReferenceSources, render_reference, render_reference_driver
from .runner import ReferenceReport, effective_lr, run_reference_on_target

__all__ = ["ReferenceSources", "render_reference", "render_reference_driver", "ReferenceReport", "effective_lr",
           "run_reference_on_target"]
