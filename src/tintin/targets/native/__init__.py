"""tintin.targets.native: train on the host CPU with the generated C program (the ``native`` backend)."""
