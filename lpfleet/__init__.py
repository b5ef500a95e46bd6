"""lpfleet: provisioning and operations tooling for Livepeer orchestrator fleets."""
