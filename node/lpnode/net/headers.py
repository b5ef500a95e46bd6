"""HTTP names on port 8935 that both sides must agree on (go-livepeer's, plus lpnode's own)."""

SEGMENT = "Livepeer-Segment"          # base64 SegData on POST /segment
PAYMENT = "Livepeer-Payment"          # base64 Payment on POST /segment
TRANSCODER_AUTH = "Livepeer-Transcoder-1.0"   # Authorization value on POST /transcodeResults
TRANSCODING_ERROR_TYPE = "livepeer/transcoding-error"
# lpnode extension, ignored by go-livepeer gateways: how long the transcoder had the segment,
# so a gateway can tell the orchestrator's own share of the latency.
TRANSCODER_TIME = "Lpnode-Transcoder-Seconds"
