"""Config merging, --set parsing, validation messages and TOML round trips."""

from __future__ import annotations

import tomllib

import pytest
from zoo.core import api
from zoo.core.contract.config import dumps_toml, parse_set
from zoo.core.contract.errors import ZooError


def test_merge_order_defaults_file_set_options(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[optim]\nlr = 0.5\nmomentum = 0.5\n[train]\nepochs = 7\nbatch_size = 3\n')
    _, _, cfg = api.resolve_config("linear")
    assert (cfg.optim.name, cfg.optim.lr, cfg.train.epochs) == ("sgd", 0.03, 3)  # manifest defaults
    _, _, cfg = api.resolve_config("linear", config_file=str(path), sets=("optim.lr=0.25", "train.epochs=9"),
                                   options={"train": {"epochs": 11}})
    assert cfg.optim.momentum == 0.5          # file beats defaults
    assert cfg.optim.lr == 0.25               # --set beats file
    assert cfg.train.epochs == 11             # explicit option beats --set
    assert cfg.train.batch_size == 3


@pytest.mark.parametrize("item, expected", [
    ("optim.lr=0.02", {"optim": {"lr": 0.02}}),
    ("optim.name=adam", {"optim": {"name": "adam"}}),
    ('data.name="digits"', {"data": {"name": "digits"}}),
    ("model.hidden=[8, 4]", {"model": {"hidden": [8, 4]}}),
    ("train.deterministic=true", {"train": {"deterministic": True}}),
    ("train.device=cuda:0", {"train": {"device": "cuda:0"}}),
])
def test_parse_set(item, expected):
    assert parse_set(item) == expected


@pytest.mark.parametrize("item", ["optim.lr", "=3", "optim..lr=1", "model.hidden=[1, 2", "a b=1", "x="])
def test_malformed_set(item):
    with pytest.raises(ZooError, match="malformed --set"):
        parse_set(item)


def test_malformed_toml_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[optim\nlr = 1\n")
    with pytest.raises(ZooError, match="not valid TOML"):
        api.resolve_config("linear", config_file=str(path))
    with pytest.raises(ZooError, match="does not exist"):
        api.resolve_config("linear", config_file=str(tmp_path / "missing.toml"))


def test_config_file_for_another_model_is_rejected(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[model]\nname = "mlp"\n')
    with pytest.raises(ZooError, match="is for model 'mlp'"):
        api.resolve_config("linear", config_file=str(path))


def test_resolved_config_round_trips_through_toml():
    _, _, cfg = api.resolve_config("mlp", sets=("model.hidden=[3, 2]",))
    data = cfg.model_dump(mode="json")
    text = dumps_toml(data)
    again = tomllib.loads(text)
    _, _, cfg2 = api.resolve_config("mlp", options=again)
    assert cfg2 == cfg


def test_schema_has_descriptions_and_bounds():
    schema = api.config_schema("mlp")
    text = str(schema)
    assert "Peak learning rate." in text and "exclusiveMinimum" in text
    assert "Width of each hidden layer" in text


# -- bad or malformed values: one line naming the key and the rule, never a traceback (issue 18, item 10)


@pytest.mark.parametrize("sets, message", [
    (("train.epoch=3",), r"train.epoch: unknown key; valid keys: .*epochs"),
    (("optim.lr=-1",), r"optim.lr: Input should be greater than 0 \(got -1\)"),
    (("train.epochs=\"many\"",), r"train.epochs: Input should be a valid integer"),
    (("optim.name=adamax",), r"optim.name: Input should be 'sgd', 'adagrad'"),
    (("model.init_std=-0.1",), r"model.init_std: Input should be greater than or equal to 0"),
    (("nosuchsection.x=1",), r"nosuchsection: unknown key"),
    (("train.device=tpu",), r"train.device: String should match pattern"),
    (("model=5",), r"malformed --set 'model=5': 'model' is a config section, not a value; set one of its keys"),
    (("optim.betas=[2.0, 3.0]",), r"optim.betas.0: Input should be less than 1 \(got 2.0\); optim.betas.1"),
    (("optim.betas=[-0.1, 0.5]",), r"optim.betas.0: Input should be greater than or equal to 0"),
    (("optim.lr=inf",), r"optim.lr: Input should be a finite number"),
    (("optim.lr=nan",), r"optim.lr: Input should be a finite number"),
    (("train.seed=99999999999999999999999",), r"train.seed: Input should be less than or equal to 4294967295"),
    (("train.batch_size=100000000000",), r"train.batch_size: Input should be less than or equal to"),
    (("data.augment=5",), r"data.augment: Input should be a valid dictionary"),
    (("optim.lr.x=1",), r"optim.lr: Input should be a valid number"),
    (("train.epochs=" + "[" * 5000,), r"malformed --set .*nested too deeply"),
])
def test_bad_values_are_one_line_errors_naming_the_key_and_the_rule(sets, message):
    with pytest.raises(ZooError, match=message) as raised:
        api.resolve_config("linear", sets=sets)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("text, message", [
    ("model = 5\n", r"\[model\] must be a table of options \(e.g. model.KEY = VALUE\), got model = 5"),
    ("optim = [1, 2]\n", r"\[optim\] must be a table of options"),
    ("[optim]\nbetas = [2.0, 3.0]\n", r"optim.betas.0: Input should be less than 1"),
    ("[train]\n\"a\\nb\" = 1\n", r"train.'a\\nb': unknown key"),
    ("[data.options]\n" + "a." * 3000 + "a = 1\n", r"invalid config: nested more than 32 tables or lists deep"),
    ("x = " + "[" * 5000 + "\n", r"not valid TOML: nested too deeply"),
])
def test_malformed_config_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ZooError, match=message) as raised:
        api.resolve_config("linear", config_file=str(path))
    assert "\n" not in str(raised.value)


def test_manifest_defaults_with_a_scalar_section_name_the_model():
    from zoo.core.contract.config import ModelConfig, resolve

    with pytest.raises(ZooError, match=r"the defaults of model 'm': \[train\] must be a table"):
        resolve("m", ModelConfig, {"train": 5}, "iris")


def test_dumps_toml_escapes_every_control_character():
    import datetime

    data = {"a\n": {"s": "tab\there \x00 \x1b \x7f \"q\" \\ \r\n", "when": datetime.date(2024, 1, 2)}}
    assert tomllib.loads(dumps_toml(data)) == data


@pytest.mark.slow
@pytest.mark.parametrize("args", [
    ("--set", "model=5"),
    ("--set", "optim.betas=[2.0,3.0]"),
    ("--config", "MODEL5"),
])
def test_cli_prints_one_error_line_and_exits_2(tmp_path, cli, args):
    (tmp_path / "model5.toml").write_text("model = 5\n")
    args = [str(tmp_path / "model5.toml") if a == "MODEL5" else a for a in args]
    result = cli("config", "linear", *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
