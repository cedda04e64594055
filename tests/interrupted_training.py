"""``tintin train`` in a child process, interrupted with Ctrl-C once its first checkpoint exists."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import tintin

SRC = str(Path(tintin.__file__).parent.parent)


def train_then_interrupt(args: list[str], run_dir: Path, checkpoint_every: int) -> tuple[int, str, str]:
    """Start ``tintin train ARGS --checkpoint-every N --out RUN_DIR --json -q``, send SIGINT when
    ``RUN_DIR/checkpoint.safetensors`` appears; ``(exit code, stdout, stderr)``."""
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from tintin.cli import main; sys.exit(main())",
                             "train", *args, "--checkpoint-every", str(checkpoint_every), "--out", str(run_dir),
                             "--json", "-q"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = run_dir / "checkpoint.safetensors"
    deadline = time.time() + 120
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert state.exists(), (proc.poll(), proc.communicate())
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err
