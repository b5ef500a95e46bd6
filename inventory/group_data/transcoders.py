"""Data for transcoders (lpnode -transcoder). Each transcoder also needs
`orchestrator = "<a host in the orchestrators group>"` in its own data."""

# This transcoder's capacity, reported to its orchestrator (-maxSessions). With the NVENC cap
# of a consumer card (8 sessions from driver 550, without the patch) keep it at or below that.
lpnode_max_sessions = 8

# lpnode log verbosity (-v).
lpnode_verbosity = 3
