"""TensorFlow's native start-up lines stay out of what users read, unless they ask for them.

Real subprocesses import the package, then TensorFlow the way a notebook cell
or ``tfserve bench`` does; what reaches their stderr is what a user would see.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# absl's banner and the start-up lines every CPU-only TensorFlow prints
START_UP = (
    "All log messages before absl::InitializeLog()",
    "oneDNN custom operations",
    "cuda drivers",
)


def stderr_of(code: str, **env) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    environment.update(PYTHONPATH=REPO, **env)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=180
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.mark.parametrize("user_import", ["import tensorflow", "import keras"])
def test_tensorflow_imported_after_the_package_prints_no_start_up_lines(user_import):
    err = stderr_of(
        f"import jupyter_tfserve\n{user_import}\nimport sys; print('still here', file=sys.stderr)"
    )
    assert not [marker for marker in START_UP if marker in err], err
    assert "still here" in err  # the process's own stderr still reaches the terminal


def test_the_users_tf_cpp_min_log_level_still_wins():
    err = stderr_of("import jupyter_tfserve\nimport tensorflow", TF_CPP_MIN_LOG_LEVEL="0")
    assert "oneDNN custom operations" in err or "cuda drivers" in err, err
