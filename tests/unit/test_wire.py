"""The wire format must stay go-livepeer's: field numbers and gRPC method paths."""

import subprocess
import sys
from pathlib import Path

import pytest

from lpnode.core import capabilities as caps
from lpnode.net import lp_rpc_pb2 as pb
from lpnode.net import multipart
from lpnode.server import grpc_asgi

NET = Path(__file__).resolve().parents[2] / "node" / "lpnode" / "net"

# Field numbers from go-livepeer's net/lp_rpc.proto (0.9.x).
GO_LIVEPEER_FIELDS = {
    "RegisterRequest": {"secret": 1, "capacity": 2, "capabilities": 3},
    "NotifySegment": {"url": 1, "segData": 3, "taskId": 16, "profiles": 17, "orchId": 18},
    "Capabilities": {"bitstring": 1, "mandatories": 2, "capacities": 3, "version": 4, "constraints": 5},
    "SegData": {"manifestId": 1, "seq": 2, "hash": 3, "profiles": 4, "sig": 5, "duration": 6,
                "capabilities": 7, "auth_token": 8, "calc_perceptual_hash": 10, "storage": 32,
                "fullProfiles": 33, "fullProfiles2": 34, "fullProfiles3": 35,
                "segment_parameters": 37, "ForceSessionReinit": 38},
    "AuthToken": {"token": 1, "session_id": 2, "expiration": 3},
    "VideoProfile": {"name": 16, "width": 17, "height": 18, "bitrate": 19, "fps": 20, "format": 21,
                     "fpsDen": 22, "profile": 23, "gop": 24, "encoder": 25, "colorDepth": 26,
                     "chromaFormat": 27, "quality": 28},
    "OrchestratorRequest": {"address": 1, "sig": 2, "capabilities": 3, "ignoreCapacityCheck": 4},
    "OrchestratorInfo": {"transcoder": 1, "ticket_params": 2, "price_info": 3, "address": 4,
                         "capabilities": 5, "auth_token": 6, "hardware": 7, "storage": 32,
                         "capabilities_prices": 33, "nodes": 34},
    "PriceInfo": {"pricePerUnit": 1, "pixelsPerUnit": 2, "capability": 3, "constraint": 4},
    "TranscodeResult": {"seq": 1, "error": 2, "data": 3, "info": 16},
    "TranscodeData": {"segments": 1, "sig": 2},
    "TranscodedSegmentData": {"url": 1, "pixels": 2, "perceptual_hash_url": 3},
    "TicketParams": {"recipient": 1, "face_value": 2, "win_prob": 3, "recipient_rand_hash": 4,
                     "seed": 5, "expiration_block": 6, "expiration_params": 7},
    "Payment": {"ticket_params": 1, "sender": 2, "expiration_params": 3,
                "ticket_sender_params": 4, "expected_price": 5},
}


@pytest.mark.parametrize("message", sorted(GO_LIVEPEER_FIELDS))
def test_field_numbers_match_go_livepeer(message):
    fields = {f.name: f.number for f in pb.DESCRIPTOR.message_types_by_name[message].fields}
    assert fields == GO_LIVEPEER_FIELDS[message]


def test_service_paths_match_go_livepeer():
    methods = {f"/net.{s.name}/{m.name}" for s in pb.DESCRIPTOR.services_by_name.values()
               for m in s.methods}
    assert {"/net.Transcoder/RegisterTranscoder", "/net.Orchestrator/GetOrchestrator",
            "/net.Orchestrator/EndTranscodingSession", "/net.Orchestrator/Ping"} <= methods
    register = pb.DESCRIPTOR.services_by_name["Transcoder"].methods_by_name["RegisterTranscoder"]
    assert register.server_streaming and not register.client_streaming


def test_generated_code_is_current(tmp_path):
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{NET}", f"--python_out={tmp_path}",
                    str(NET / "lp_rpc.proto")], check=True)
    assert (tmp_path / "lp_rpc_pb2.py").read_text() == (NET / "lp_rpc_pb2.py").read_text(), \
        "run node/proto/generate.sh and commit the result"


def test_capability_bitstring_round_trip():
    wanted = {0, 1, 12, 63, 64, 130}
    words = caps.to_bitstring(wanted)
    assert words[0] == (1 | 2 | 1 << 12 | 1 << 63) and words[1] == 1
    assert caps.from_bitstring(words) == wanted


def test_capabilities_compatibility_follows_go_livepeer():
    orch = caps.to_net(caps.TRANSCODER, caps.MANDATORY)
    assert caps.compatible(caps.to_net({caps.H264, caps.MPEGTS, caps.AUTH_TOKEN}), orch)
    # a gateway without auth tokens is refused: AuthToken is mandatory
    assert not caps.compatible(caps.to_net({caps.H264, caps.MPEGTS}), orch)
    # asking for something not offered (HEVC encode, 16)
    assert not caps.compatible(caps.to_net({caps.H264, caps.AUTH_TOKEN, 16}), orch)


def test_multipart_round_trip_keeps_binary_exact():
    parts = [({"Content-Type": "video/mp2t", "Pixels": "123"}, bytes(range(256)) * 100),
             ({"Content-Type": "video/mp4", "Pixels": "7"}, b"\r\n--x\r\n" * 10)]
    content_type, body = multipart.encode(parts)
    boundary = content_type.split("boundary=")[1]
    decoded = multipart.decode(boundary, body)
    assert [(p.headers["pixels"], p.body) for p in decoded] == [("123", parts[0][1]), ("7", parts[1][1])]


def test_multipart_truncated_body_is_an_error():
    content_type, body = multipart.encode([({"Pixels": "1"}, b"x" * 100)])
    with pytest.raises(multipart.MultipartError):
        multipart.decode(content_type.split("boundary=")[1], body[:60])


def test_grpc_frame_round_trip_and_bad_prefix():
    msg = pb.RegisterRequest(secret="s", capacity=3)
    framed = grpc_asgi.frame(msg)
    assert pb.RegisterRequest.FromString(grpc_asgi.unframe(framed)) == msg
    with pytest.raises(grpc_asgi.GrpcError):
        grpc_asgi.unframe(framed[:-1])
