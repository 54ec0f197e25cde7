"""The model hub: ``zoo push`` / ``zoo pull`` of trained runs with model cards and checksums.

A hub is a folder (the default: the user data directory), any fsspec URL (``file://``,
``s3://``, ``gs://``; ``http(s)://`` read-only) or ``hf://USER`` through huggingface_hub. A pushed
model is a folder laid out as a run directory plus a model card and a manifest of SHA-256 sums
(:mod:`.package`); a pull verifies every sum before anything reaches the cache (:mod:`.pull`).
Every command that takes a run directory takes ``hub:NAME[:TAG]`` through :func:`resolve_target`.
"""

from __future__ import annotations

from zoo.core.hub.pull import Pulled, cache_dir, pull, resolve_target, serve_targets
from zoo.core.hub.push import list_models, push, show
from zoo.core.hub.ref import HubRef, default_hub, is_hub_target
from zoo.core.hub.store import HubError

__all__ = ["HubError", "HubRef", "Pulled", "cache_dir", "default_hub", "is_hub_target", "list_models",
           "pull", "push", "resolve_target", "serve_targets", "show"]

