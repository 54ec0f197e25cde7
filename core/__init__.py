"""The contract and the machinery every family shares. Never imports a plugin by name."""
