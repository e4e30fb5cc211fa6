"""The Durable Entities sample: the counter entity, its orchestrator and shared settings."""
