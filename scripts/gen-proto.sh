#!/usr/bin/env bash
# Regenerate the committed gRPC stubs (asr/v1/asr_pb2*.py) from proto/asr/v1/asr.proto.
set -euo pipefail
cd "$(dirname "$0")/.."
${PYTHON:-.venv/bin/python} -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. \
  proto/asr/v1/asr.proto
