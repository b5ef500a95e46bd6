#!/bin/sh
# Regenerates the Python modules for lp_rpc.proto. Run after editing the .proto; the generated
# files are committed so that fleet hosts need no grpcio-tools. tests/unit/test_wire.py fails when
# they are stale.
set -eu
cd "$(dirname "$0")/../lpnode/net"
python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. lp_rpc.proto
# protoc writes an absolute import for the sibling module; make it package-relative.
sed -i 's/^import lp_rpc_pb2 as/from . import lp_rpc_pb2 as/' lp_rpc_pb2_grpc.py
