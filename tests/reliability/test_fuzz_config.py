"""Property-based fuzzing (hypothesis) of what users and plugin authors hand to zoo as TOML.

Config files, ``--set`` values and third-party manifests, valid TOML with wrong types and keys as
well as text that is not TOML at all, go through the same functions ``zoo train``, ``zoo config``
and ``zoo list`` use, in-process. The property: the outcome is a valid config or a one-line
:class:`ZooError` (exit 2), never another exception (a traceback), and ``zoo list`` always works.
"""

from __future__ import annotations

import json
import os
import math
import sys
import textwrap
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zoo.core import api
from zoo.core.contract import discovery
from zoo.core.contract.catalogue import _MODEL_KEYS, Catalogue, load_catalogue
from zoo.core.contract.config import RunConfig
from zoo.core.contract.errors import ZooError
from zoo.core.contract.toml_io import dumps_toml

# Property-based fuzzing runs hundreds of examples a test: left out of the quick loop.
pytestmark = pytest.mark.slow

# ZOO_FUZZ_SCALE=20: twenty times the examples (the measured runs of docs/results.md).
SCALE = float(os.environ.get("ZOO_FUZZ_SCALE", "1"))
FUZZ = settings(max_examples=int(150 * SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow])

def _toml_value(value) -> str:
    """One TOML value as written on the right of ``key = ``, on one line (for ``--set``)."""
    text = dumps_toml({"v": value}).partition("=")[2].strip()
    return " ".join(line.strip() for line in text.splitlines())  # a trailing comma is valid TOML


# -- strategies ------------------------------------------------------------------------------------


def _section_keys() -> dict[str, list[str]]:
    """The real keys of every config section (the model's: mlp's), so the fuzz reaches validation."""
    _, spec, _ = api.resolve_config("mlp")
    sections = {name: sorted(getattr(field.annotation, "model_fields", {}))
                for name, field in RunConfig.model_fields.items()}
    sections["model"] = sorted(spec.config_class.model_fields)
    return sections


SECTIONS = _section_keys()
KNOWN_KEYS = sorted({key for keys in SECTIONS.values() for key in keys} | set(SECTIONS) | _MODEL_KEYS)

keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=8))
scalars = st.one_of(
    st.booleans(), st.integers(), st.integers(-2, 2), st.floats(), st.floats(0, 1),
    st.text(max_size=12), st.sampled_from(["adam", "sgd", "cpu", "cosine", "iris", "mlp"]),
    st.dates(), st.times(), st.datetimes(),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=10)
tables = st.dictionaries(keys, values, max_size=6)
#: TOML documents shaped like a config: known and unknown sections holding tables or plain values.
config_docs = st.dictionaries(st.one_of(st.sampled_from(sorted(SECTIONS)), st.text(max_size=8)),
                              st.one_of(tables, values), max_size=6)


set_items = st.one_of(
    st.text(max_size=30),  # anything at all
    st.builds(lambda section, key, value: f"{section}.{key}={value}",
              st.sampled_from(sorted(SECTIONS)), st.sampled_from(KNOWN_KEYS),
              st.one_of(values.map(_toml_value), st.text(max_size=12))),
    st.builds(lambda section, value: f"{section}={value}", st.sampled_from(sorted(SECTIONS)),
              values.map(_toml_value)),
)


def _one_line_zoo_error_or_success(call) -> None:
    try:
        call()
    except ZooError as err:
        assert "\n" not in str(err), str(err)


# -- config files and --set ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(doc=config_docs)
def test_config_files_of_any_shape_end_in_a_config_or_a_zoo_error(scratch, doc):
    path = scratch / "config.toml"
    path.write_text(dumps_toml(doc), encoding="utf-8")
    _one_line_zoo_error_or_success(lambda: api.resolve_config("mlp", config_file=str(path)))


@FUZZ
@given(content=st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_config_files_that_are_not_toml_end_in_a_zoo_error(scratch, content):
    path = scratch / "raw.toml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    _one_line_zoo_error_or_success(lambda: api.resolve_config("mlp", config_file=str(path)))


@FUZZ
@given(sets=st.lists(set_items, min_size=1, max_size=3))
def test_set_values_end_in_a_config_or_a_zoo_error(sets):
    _one_line_zoo_error_or_success(lambda: api.resolve_config("mlp", sets=tuple(sets)))


def _without_nan(value) -> bool:
    if isinstance(value, float):
        return not math.isnan(value)
    if isinstance(value, dict):
        return all(_without_nan(v) for v in value.values())
    if isinstance(value, list):
        return all(_without_nan(v) for v in value)
    return True


@FUZZ
@given(doc=st.dictionaries(keys, st.one_of(tables, values), max_size=6).filter(_without_nan))
def test_dumps_toml_reads_back_as_written(doc):
    # Every config.toml zoo writes must read back: quoted keys, escaped control characters, dates.
    assert tomllib.loads(dumps_toml(doc)) == doc


# -- third-party manifests -------------------------------------------------------------------------

manifest_tables = st.dictionaries(
    st.one_of(st.sampled_from(["m", "fuzz-model", "fuzzed"]), st.text(max_size=6)),
    st.one_of(st.dictionaries(st.one_of(st.sampled_from(sorted(_MODEL_KEYS | {"module"})), st.text(max_size=6)),
                              st.one_of(values, st.sampled_from(["fuzzed", "classification", "iris"])),
                              max_size=8),
              values),
    max_size=3)
manifest_docs = st.dictionaries(st.one_of(st.sampled_from(["plugins", "models", "datasets"]), st.text(max_size=6)),
                                st.one_of(manifest_tables, values), max_size=3)


def _render(catalogue: Catalogue) -> None:
    """What `zoo list --json` and `zoo info` do with an accepted manifest."""
    for model in catalogue.models.values():
        json.dumps(model.as_dict(), default=str)
        dumps_toml(model.defaults)
        catalogue.filter(pattern=model.name[:3], tag="x", task="classification")


@FUZZ
@given(doc=manifest_docs)
def test_manifests_of_any_shape_are_accepted_whole_or_rejected_in_one_line(doc):
    catalogue = Catalogue()
    try:
        catalogue.add_manifest(doc, "zoo.toml", source="fuzzed 0.1")
    except ZooError as err:
        assert "\n" not in str(err), str(err)
        assert not (catalogue.plugins or catalogue.models or catalogue.datasets)  # all or nothing
        return
    _render(catalogue)


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    """A third-party distribution ``fuzzed`` on sys.path, whose zoo.toml each example rewrites."""
    site = tmp_path_factory.mktemp("site")
    (site / "fuzzed").mkdir()
    (site / "fuzzed" / "__init__.py").write_text("")
    info = site / "fuzzed-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fuzzed\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[zoo]\nfuzzed = fuzzed\n")
    (info / "RECORD").write_text(textwrap.dedent("""\
        fuzzed/__init__.py,,
        fuzzed/zoo.toml,,
    """))
    sys.path.insert(0, str(site))
    yield site / "fuzzed" / "zoo.toml"
    sys.path.remove(str(site))
    load_catalogue.cache_clear()
    discovery.MANIFEST_ERRORS.clear()


@FUZZ
@given(manifest=st.one_of(manifest_docs.map(dumps_toml), st.text(max_size=120)))
def test_zoo_list_survives_any_third_party_manifest(installed_plugin, manifest):
    from click.testing import CliRunner
    from zoo.cli import main

    installed_plugin.write_text(manifest, encoding="utf-8")
    load_catalogue.cache_clear()
    discovery.MANIFEST_ERRORS.clear()
    listed = CliRunner().invoke(main, ["list", "--json"])
    assert listed.exit_code == 0 and listed.exception is None, listed.output
    names = {m["name"] for m in json.loads(listed.stdout)}
    assert "linear" in names  # the built-ins are unaffected
    if "fuzzed" in discovery.MANIFEST_ERRORS:
        assert "\n" not in discovery.MANIFEST_ERRORS["fuzzed"]
    third_party = [m for m in load_catalogue().models.values() if m.source == "fuzzed 0.1"]
    for model in third_party[:2]:
        shown = CliRunner().invoke(main, ["info", model.name])
        assert shown.exception is None or isinstance(shown.exception, SystemExit), shown.output
        assert shown.exit_code == 0 or (shown.exit_code == 2 and shown.stderr.count("\n") == 1), shown.output
