"""TensorFlow's native start-up lines stay out of stderr; everything else written meanwhile gets through."""

import os
import subprocess
import sys

FILTERED_WRITES = r"""
import os
from jupyter_tfserve.core.native_logs import filtered_stderr
with filtered_stderr():
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
    os.write(2, b"I0000 00:00:1796518345.642910   19987 cpu_feature_guard.cc:227] This binary is optimized\n")
    os.write(2, b"To enable the following instructions: AVX2 FMA, rebuild\n")
    os.write(2, b"E0000 00:00:1796518348.886164   19987 cuda_platform.cc:52] failed call to cuInit\n")
    os.write(2, b"[I 2026-12-06 00:00:00 ServerApp] a Jupyter line\n")
    os.write(2, b"F0000 00:00:1796518348.886164   19987 x.cc:1] a fatal line\n")
    os.write(2, b"no newline at the end")
os.write(2, b"|after\n")
"""


def run(code: str, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, env=environment, timeout=120
    )


def test_absl_lines_below_the_level_are_dropped_and_the_rest_pass_in_order():
    err = run(FILTERED_WRITES).stderr.decode()
    assert err == (
        "[I 2026-12-06 00:00:00 ServerApp] a Jupyter line\n"
        "F0000 00:00:1796518348.886164   19987 x.cc:1] a fatal line\n"
        "no newline at the end|after\n"
    )


def test_a_lower_level_keeps_the_severities_it_asks_for():
    err = run(FILTERED_WRITES, TF_CPP_MIN_LOG_LEVEL="2").stderr.decode()
    assert "cuInit" in err and "cpu_feature_guard" not in err and "To enable" not in err
    err = run(FILTERED_WRITES, TF_CPP_MIN_LOG_LEVEL="0").stderr.decode()
    assert "cuInit" in err and "cpu_feature_guard" in err and "To enable" in err


def test_importing_the_engine_and_creating_devices_prints_nothing():
    code = "from jupyter_tfserve.core import tensors; from jupyter_tfserve.core.platforms import tensorflow; tensorflow.tensorflow()"
    quiet = run(code)
    assert quiet.returncode == 0, quiet.stderr.decode()
    assert quiet.stderr.decode() == ""
    # The same import with the user's own level shows TensorFlow's lines: the check above can fail.
    loud = run(code, TF_CPP_MIN_LOG_LEVEL="0")
    assert b"] " in loud.stderr and b"I0000" in loud.stderr
