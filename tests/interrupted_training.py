"""``tintin train`` in a child process, interrupted with Ctrl-C once its first checkpoint exists."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import tintin

SRC = str(Path(tintin.__file__).parent.parent)


#: the child: ``tintin train`` whose first checkpoint save is followed by a pause, so that a Ctrl-C
#: sent when the file appears lands while the run is still going, however fast the rest of it is (a
#: short run on the native backend can finish within the parent's polling interval); the handler
#: only sets a flag, the pause resumes and the next step stops the run with exit status 130
CHILD = """import sys, time
import tintin.train.checkpoint as checkpoint
_save = checkpoint.FitCheckpointer.save
def save(self, position):
    path = _save(self, position)
    if self.saves == 1:
        time.sleep(%r)
    return path
checkpoint.FitCheckpointer.save = save
from tintin.cli import main
sys.exit(main())
"""


def train_then_interrupt(args: list[str], run_dir: Path, checkpoint_every: int,
                         pause_s: float = 2.0) -> tuple[int, str, str]:
    """Start ``tintin train ARGS --checkpoint-every N --out RUN_DIR --json -q`` (pausing ``pause_s``
    after its first checkpoint), send SIGINT when ``RUN_DIR/checkpoint.safetensors`` appears;
    ``(exit code, stdout, stderr)``."""
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", CHILD % pause_s,
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
