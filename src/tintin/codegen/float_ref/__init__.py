"""The float32 reference of a training step in C, for measuring what integer training saves.

* :func:`render_reference`: C of the same network and SGD update in ``float`` (soft float on
  Cortex-M0/M3/M4 and AVR, hard float on ``cortex-m4f``).
* :func:`render_reference_driver`: the ``main()`` that trains it on embedded samples.

Building and running it on a target is :func:`tintin.targets.float_reference.run_reference_on_target`.
"""

from .emit import ReferenceSources, render_reference, render_reference_driver

__all__ = ["ReferenceSources", "render_reference", "render_reference_driver"]
