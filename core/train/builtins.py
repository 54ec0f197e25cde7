"""The core's own plugin: the generic tasks every family can use.

Registered through the same hooks as any plugin, under the name ``core``.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.core.train.tasks import Classification, Regression


@hookimpl
def register_tasks(register):
    register(Regression())
    register(Classification())
