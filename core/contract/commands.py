"""Plugin commands: ``zoo NAME`` for the commands that plugins add through ``register_commands``.

A command is declared in its plugin's manifest (``[commands.NAME]``, with a one-line summary), so
``zoo --help`` lists it from the catalogue without importing any plugin or torch. Only when the
user runs ``zoo NAME ...`` (or asks for its ``--help``) are the plugins loaded and the declaring
plugin's ``register_commands(cli)`` hook called, with a group of its own: what it adds is checked
against its declarations and against the core commands before anything runs.
"""

from __future__ import annotations

import click
from zoo.core.contract.catalogue import NamedEntry, load_catalogue
from zoo.core.contract.errors import ZooError


def declared() -> dict[str, NamedEntry]:
    """The commands declared by the manifests of enabled plugins (no plugin is imported)."""
    from zoo.core.contract.discovery import disabled_plugins

    disabled = disabled_plugins()
    return {n: e for n, e in load_catalogue().commands.items() if e.plugin not in disabled}


def help_stub(entry: NamedEntry) -> click.Command:
    """What ``zoo --help`` shows for a plugin command: its declared summary (nothing imported)."""
    return click.Command(entry.name, help=f"({entry.plugin} plugin) {entry.summary}")


def load(name: str, core: set[str]) -> click.Command:
    """The plugin command ``name``: loads the plugins and calls its declarer's hook.

    :param name: a command name declared under ``[commands.NAME]``
    :param core: the names of zoo's own commands, which no plugin may take
    """
    from zoo.core.contract.plugins import get_zoo

    entry = declared()[name]
    zoo = get_zoo()
    status = zoo.status.get(entry.plugin)
    if status is None or status.status != "loaded":
        reason = f"{status.status}: {status.error}" if status else "not installed"
        raise ZooError(f"command {name!r} comes from plugin {entry.plugin!r}, which is {reason}")
    commands = plugin_commands(zoo, entry.plugin, core)
    if name not in commands:
        raise ZooError(f"plugin {entry.plugin!r} declares command {name!r} ([commands.{name}]) but its "
                       f"register_commands hook does not add it (it adds: {', '.join(commands) or 'nothing'})")
    return commands[name]


def plugin_commands(zoo, plugin: str, core: set[str]) -> dict[str, click.Command]:
    """The commands that ``plugin``'s ``register_commands`` hook adds, checked: each must be
    declared for that plugin in the catalogue and must not shadow a core command."""
    group = click.Group(plugin)
    for impl in zoo.pm.hook.register_commands.get_hookimpls():
        if impl.plugin_name == plugin:
            impl.function(cli=group)  # wrapped by the manager: a failure names the plugin
    ours = {n for n, e in declared().items() if e.plugin == plugin}
    for name in group.commands:
        if name in core:
            raise ZooError(f"plugin {plugin!r} (register_commands) adds command {name!r}, which is a "
                           f"zoo command; rename it")
        if name not in ours:
            raise ZooError(f"plugin {plugin!r} (register_commands) adds command {name!r} that its "
                           f"manifest does not declare; add [commands.{name}] with a summary")
    return dict(group.commands)
