"""The committed gRPC stubs match proto/asr/v1/asr.proto (regenerate: scripts/gen-proto.sh)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_stubs_are_fresh(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-Iproto", "--python_out=.", "--pyi_out=.",
         "--grpc_python_out=.", "proto/asr/v1/asr.proto"],
        cwd=tmp_path,
        check=True,
    )  # fmt: skip
    for name in ("asr_pb2.py", "asr_pb2.pyi", "asr_pb2_grpc.py"):
        fresh = (tmp_path / "asr" / "v1" / name).read_text()
        committed = (ROOT / "asr" / "v1" / name).read_text()
        assert fresh == committed, f"asr/v1/{name} is stale: run scripts/gen-proto.sh"


def test_stubs_import() -> None:
    from asr.v1 import asr_pb2, asr_pb2_grpc

    assert asr_pb2.LINEAR16 == 1
    assert hasattr(asr_pb2_grpc, "RecognizerServicer")
