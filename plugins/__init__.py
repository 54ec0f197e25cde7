"""Built-in model families. Each subpackage is an ordinary pluggy plugin declared in registry.toml."""
