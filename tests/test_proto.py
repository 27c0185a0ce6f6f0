"""The committed gRPC stubs match proto/asr/v1/asr.proto (regenerate: scripts/gen-proto.sh)."""

from __future__ import annotations

import re
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
        fresh = _without_version_stamps((tmp_path / "asr" / "v1" / name).read_text())
        committed = _without_version_stamps((ROOT / "asr" / "v1" / name).read_text())
        assert fresh == committed, f"asr/v1/{name} is stale: run scripts/gen-proto.sh"


# The generators stamp their own release into the stubs: a minimum the runtime must meet
# (grpcio >= GRPC_GENERATED_VERSION, protobuf >= the validated version), not part of the
# contract. A patch release of grpcio-tools (1.85.1 -> 1.85.4 on a fresh CI machine) changes
# only these lines, so they are compared without their numbers.
def _without_version_stamps(text: str) -> str:
    text = re.sub(
        r"^(GRPC_GENERATED_VERSION = |# Protobuf Python Version: ).*$", r"\1<version>", text, flags=re.M
    )
    # ValidateProtobufRuntimeVersion(_runtime_version.Domain.PUBLIC, MAJOR, MINOR, PATCH, '', 'file')
    return re.sub(
        r"ValidateProtobufRuntimeVersion\((\s*_runtime_version\.Domain\.PUBLIC,)\s*\d+,\s*\d+,\s*\d+,",
        r"ValidateProtobufRuntimeVersion(\1 <version>,",
        text,
    )


def test_stubs_import() -> None:
    from asr.v1 import asr_pb2, asr_pb2_grpc

    assert asr_pb2.LINEAR16 == 1
    assert hasattr(asr_pb2_grpc, "RecognizerServicer")
