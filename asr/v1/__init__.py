"""Generated gRPC stubs of proto/asr/v1/asr.proto (regenerate: scripts/gen-proto.sh).

tests/test_proto.py fails when these files are stale.
"""
