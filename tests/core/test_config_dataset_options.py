"""``zoo config`` shows, validates and describes the dataset's options (issue 20, point 10)."""

from __future__ import annotations

import json
import tomllib

import pytest
from zoo.core import api
from zoo.core.contract.errors import ZooError
from zoo.core.contract.plugins import get_zoo
from zoo.core.contract.toml_io import dumps_toml


def test_config_shows_the_dataset_option_defaults():
    defaults = get_zoo().registry.dataset("sst2").options_class().model_dump(mode="json")
    shown = api.show_config("lstm")["data"]["options"]
    assert shown == defaults and shown["max_length"] == 128
    assert api.show_config("lstm", sets=("data.options.max_length=64",))["data"]["options"]["max_length"] == 64
    # karate takes only the neighbour-sampling options (graphsage-sampled), off by default
    assert api.show_config("gcn", sets=("data.name=karate",))["data"]["options"] == {"fanouts": None, "sample_seed": 0}


def test_config_validates_option_values_and_keys():
    with pytest.raises(ZooError, match=r"data.options for 'sst2': max_length: Input should be a valid integer"):
        api.show_config("lstm", sets=("data.options.max_length=x",))
    with pytest.raises(ZooError, match=r"bogus .*it takes: dev_fraction, max_length, max_vocab, min_freq, split_seed"):
        api.show_config("lstm", sets=("data.options.bogus=1",))


def test_required_options_are_left_for_train_to_name():
    """A user's table needs `path` and `target`: the config still shows, with the other defaults."""
    options = api.show_config("mlp", sets=("data.name=table",))["data"]["options"]
    assert "path" not in options and options["test_fraction"] == 0.2
    given = api.show_config("mlp", sets=("data.name=table", "data.options.path=a.csv", "data.options.target=y"))
    assert given["data"]["options"]["path"] == "a.csv"


def test_shown_config_is_a_valid_config_file(tmp_path):
    path = tmp_path / "lstm.toml"
    path.write_text(dumps_toml(api.show_config("lstm")))
    _, _, run_config = api.resolve_config("lstm", config_file=str(path))
    assert run_config.data.options["max_length"] == 128


def test_schema_includes_the_dataset_options():
    schema = api.config_schema("lstm")
    options = schema["$defs"]["DataConfig"]["properties"]["options"]
    assert options["$ref"] == "#/$defs/SST2Options"
    assert "max_length" in schema["$defs"]["SST2Options"]["properties"]
    table = api.config_schema("mlp", sets=("data.name=table",))
    assert "path" in table["$defs"]["TableOptions"]["required"]


@pytest.mark.slow
def test_cli_config_options_and_exit_2(cli):
    shown = cli("config", "lstm")
    assert shown.returncode == 0 and tomllib.loads(shown.stdout)["data"]["options"]["min_freq"] == 2
    bogus = cli("config", "lstm", "--set", "data.options.bogus=1")
    assert bogus.returncode == 2 and bogus.stderr.count("\n") == 1
    assert "bogus" in bogus.stderr and "max_length" in bogus.stderr
    schema = json.loads(cli("config", "lstm", "--schema").stdout)
    assert "SST2Options" in schema["$defs"]
