"""Data for orchestrators (lpnode -orchestrator)."""

# Sessions this orchestrator takes at once (-maxSessions); an integer, or "auto" for the sum
# of the connected transcoders' capacities.
lpnode_max_sessions = 20

# Price in wei per lpnode_pixels_per_unit pixels (-pricePerUnit, -pixelsPerUnit).
lpnode_price_per_unit = 0
lpnode_pixels_per_unit = 1

# lpnode log verbosity (-v): 3 normal, 6 debug.
lpnode_verbosity = 3
