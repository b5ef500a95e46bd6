"""HTTP names on port 8935 that both sides must agree on (go-livepeer's, plus lpnode's own)."""

SEGMENT = "Livepeer-Segment"          # base64 SegData on POST /segment
PAYMENT = "Livepeer-Payment"          # base64 Payment on POST /segment
TRANSCODER_AUTH = "Livepeer-Transcoder-1.0"   # Authorization value on POST /transcodeResults
TRANSCODING_ERROR_TYPE = "livepeer/transcoding-error"
# lpnode extension, ignored by go-livepeer gateways: how long the transcoder had the segment,
# so a gateway can tell the orchestrator's own share of the latency.
TRANSCODER_TIME = "Lpnode-Transcoder-Seconds"

# lpnode extensions to RegisterTranscoder, in gRPC metadata where go-livepeer peers ignore them:
# the transcoder offers heartbeats; the orchestrator answers with the registration's id, which
# the transcoder then names in the two extra RPCs below (both take and return net.PingPong).
HEARTBEAT_MD = "lpnode-heartbeat"
# The transcoder's name for itself (host:admin port), which stays the same across reconnects,
# unlike its address; the orchestrator labels the transcoder's metrics with it.
TRANSCODER_NAME_MD = "lpnode-transcoder-name"
# What a transcoder may call itself: it ends up in Prometheus labels and logs.
TRANSCODER_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:@\[\]-]{0,99}"
TRANSCODER_ID_MD = "lpnode-transcoder-id"
HEARTBEAT_RPC = "/lpnode.Transcoder/Heartbeat"
DRAIN_RPC = "/lpnode.Transcoder/Drain"
