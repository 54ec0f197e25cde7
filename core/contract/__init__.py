"""The plugin contract: hook specifications, the plugin manager and discovery, the catalogue,
configs, errors, the run context, plugin commands and the model protocols.

Imports nothing from ``zoo.core.train`` or ``zoo.core.deploy``.
"""
