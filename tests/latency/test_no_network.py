"""No network at run time: importing the latency package and running ONNX Runtime opens no internet
socket (no telemetry, no DNS look-up). Checked with strace where it is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent(
    """
    import numpy as np
    import nas.latency  # noqa: F401  (imports onnxruntime)
    import onnxruntime as ort
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    print(session.run(None, {"x": np.ones(1, np.float32)})[0][0])
    """
)


def internet_syscalls(trace: str) -> list[str]:
    """Lines of an ``strace -e trace=socket,connect,sendto`` log that open or use an IP socket."""
    return [line for line in trace.splitlines() if re.search(r"AF_INET6?\b|sin6?_port", line)]


def test_internet_syscalls_are_recognised():
    trace = ('123 socket(AF_UNIX, SOCK_STREAM, 0) = 3\n'
             '123 socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC|SOCK_NONBLOCK, IPPROTO_IP) = 4\n'
             '123 connect(4, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.0.0.1")}, 16) = 0\n')
    assert len(internet_syscalls(trace)) == 2


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
def test_onnxruntime_opens_no_internet_socket(tmp_path):
    log = tmp_path / "trace.log"
    proc = subprocess.run(["strace", "-f", "-qq", "-e", "trace=socket,connect,sendto,sendmsg,sendmmsg", "-o", str(log),
                           sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and "ptrace" in proc.stderr:
        pytest.skip(f"strace cannot trace here: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1.0"
    assert internet_syscalls(log.read_text()) == []
