"""`--dataset X` replaces the dataset with its options; per-dataset recipes in the catalogue.

Recipes are ``[models.NAME.recipes.DATASET]`` tables, merged over the model's ``defaults`` when
DATASET is chosen: model defaults < recipe < config file < ``--set`` < options.
"""

from __future__ import annotations

import pytest
from pydantic import Field
from zoo.core import api
from zoo.core.contract import config as cfg
from zoo.core.contract.catalogue import Catalogue, load_catalogue
from zoo.core.contract.errors import ZooError

RECIPES = [(m.name, d) for m in load_catalogue().models.values() for d in m.recipes]


# -- switching datasets --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["options", "set", "file"])
def test_switching_dataset_drops_the_default_datasets_options(how, tmp_path):
    # jordan's default dataset is adding-problem with T = 50; sst2 has no T
    path = tmp_path / "c.toml"
    path.write_text('[data]\nname = "sst2"\n')
    kwargs = {"options": {"options": {"data": {"name": "sst2"}}}, "set": {"sets": ("data.name=sst2",)},
              "file": {"config_file": str(path)}}[how]
    _, _, config = api.resolve_config("jordan", **kwargs)
    assert config.data.name == "sst2" and config.data.options == {}
    assert config.model.hidden_size == 64          # the model's own defaults stay


def test_the_default_dataset_keeps_its_recipe_options():
    _, _, config = api.resolve_config("jordan")
    assert (config.data.name, config.data.options) == ("adding-problem", {"T": 50})


def test_options_carry_over_to_a_dataset_with_the_same_options():
    # glove's window/pairs are the model's needs; text-file takes wiki-sample's options class
    _, _, config = api.resolve_config("glove", sets=("data.name=text-file",))
    assert config.data.options["pairs"] == "cooccurrence" and config.data.options["window"] == 10
    # a dataset with other options does not get them
    _, _, config = api.resolve_config("jordan", options={"data": {"name": "copy-sequences"}})
    assert config.data.options == {}


def test_resolve_without_option_classes_keeps_defaults_options_for_the_default_dataset_only():
    defaults = {"data": {"options": {"T": 5}, "val_fraction": 0.2}}
    same = cfg.resolve("m", _Model, defaults, "a")
    other = cfg.resolve("m", _Model, defaults, "a", options={"data": {"name": "b"}})
    assert same.data.options == {"T": 5}
    assert other.data.options == {} and other.data.val_fraction == 0.2   # only the options go


@pytest.mark.parametrize("sets, named", [
    (("data.options.T=5", "data.options.n=3"), "data.options T, n (from --set) do not fit dataset 'sst2'"),
    (("data.options={T = 5}",), "data.options T (from --set) do not fit dataset 'sst2'"),
])
def test_explicit_options_that_do_not_fit_are_an_error_naming_them(sets, named):
    with pytest.raises(ZooError) as err:
        api.resolve_config("jordan", sets=("data.name=sst2", *sets))
    message = str(err.value)
    assert named in message and "it takes: " in message and "max_length" in message and "\n" not in message


def test_explicit_options_from_a_config_file_name_the_file(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[data.options]\nT = 20\n")
    with pytest.raises(ZooError, match=r"data.options T \(from config file '.*run.toml'\) do not fit "
                                       r"dataset 'sst2'"):
        api.resolve_config("jordan", config_file=str(path), options={"data": {"name": "sst2"}})


def test_explicit_options_for_a_dataset_without_options():
    with pytest.raises(ZooError, match=r"data.options T \(from --set\): dataset 'iris' takes no options"):
        api.resolve_config("mlp", sets=("data.name=iris", "data.options.T=5"))


def test_explicit_options_that_fit_pass():
    _, _, config = api.resolve_config("jordan", sets=("data.name=sst2", "data.options.min_freq=2"))
    assert config.data.options == {"min_freq": 2}


@pytest.mark.slow
def test_cli_train_with_wrong_options_exits_2_with_one_line(cli, tmp_path):
    result = cli("train", "jordan", "--dataset", "sst2", "--set", "data.options.T=5",
                 "--out", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "T" in lines[0] and "'sst2'" in lines[0], result.stderr
    assert not (tmp_path / "run").exists()      # nothing written before the config resolved


def test_zoo_config_takes_dataset_as_zoo_train_does():
    """`zoo config MODEL --dataset X` shows what `zoo train MODEL --dataset X` would run: the
    recipe and X's options; a name nothing declares is a did-you-mean, as for `zoo train`."""
    from click.testing import CliRunner
    from zoo.cli import main

    def config(*args):
        return CliRunner().invoke(main, ["config", *args])

    shown = config("lstm", "--dataset", "adding-problem")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout == config("lstm", "--set", "data.name=adding-problem").stdout
    assert 'name = "adding-problem"' in shown.stdout and "T = " in shown.stdout
    wrong = config("lstm", "--dataset", "adding-problem", "--set", "data.options.max_length=3")
    assert wrong.exit_code == 2 and "max_length" in wrong.stderr and "'adding-problem'" in wrong.stderr
    for args in (["--dataset", "adding-problme"], ["--set", "data.name=adding-problme"]):
        unknown = config("lstm", *args)
        assert unknown.exit_code == 2 and "did you mean: adding-problem" in unknown.stderr, unknown.output
    schema = config("lstm", "--dataset", "adding-problem", "--schema")
    assert schema.exit_code == 0 and '"T"' in schema.stdout


# -- recipe precedence ---------------------------------------------------------------------------


class _Model(cfg.ModelConfig):
    width: int = Field(1, ge=1, description="A width.")
    depth: int = Field(1, ge=1, description="A depth.")


def test_recipe_precedence(tmp_path):
    defaults = {"model": {"width": 2, "depth": 2}, "train": {"epochs": 2, "batch_size": 2},
                "optim": {"lr": 0.2}}
    recipes = {"b": {"model": {"width": 3}, "train": {"epochs": 3, "batch_size": 3, "seed": 3},
                     "optim": {"lr": 0.3}}}
    path = tmp_path / "c.toml"
    path.write_text("[train]\nepochs = 4\nbatch_size = 4\n")
    kwargs = {"recipes": recipes}
    assert cfg.resolve("m", _Model, defaults, "a", **kwargs).model.width == 2   # no recipe for a
    config = cfg.resolve("m", _Model, defaults, "a", config_file=path, sets=("train.batch_size=5",),
                         options={"data": {"name": "b"}, "optim": {"lr": 0.6}}, **kwargs)
    assert config.model.depth == 2                    # model defaults
    assert config.model.width == 3                    # recipe beats defaults
    assert config.train.seed == 3                     # recipe beats class defaults
    assert config.train.epochs == 4                   # config file beats recipe
    assert config.train.batch_size == 5               # --set beats config file
    assert config.optim.lr == 0.6                     # options beat all


def test_recipe_of_the_default_dataset_applies_without_dataset_flag():
    _, _, config = api.resolve_config("elman")
    assert config.data.options == {"T": 150, "n": 10000} and config.train.epochs == 16


def test_lstm_adding_problem_recipe_replaces_the_sst2_defaults():
    _, _, config = api.resolve_config("lstm", options={"data": {"name": "adding-problem"}})
    assert (config.model.bidirectional, config.model.pooling, config.model.dropout) == (False, "last", 0.0)
    assert config.data.options == {"T": 100, "n": 10000}
    assert (config.train.epochs, config.optim.lr, config.train.grad_clip) == (16, 0.003, 1.0)
    # the user's own flags still win over the recipe
    _, _, config = api.resolve_config("lstm", sets=("data.name=adding-problem", "data.options.T=20"),
                                      options={"train": {"epochs": 1}})
    assert config.data.options == {"T": 20, "n": 10000} and config.train.epochs == 1


# -- recipes in the catalogue --------------------------------------------------------------------


def _manifest(recipes: dict, task: str = "regression") -> dict:
    return {"datasets": {"toy": {"plugin": "p", "task": task}},
            "models": {"m": {"plugin": "p", "task": "regression", "dataset": "toy", "recipes": recipes}}}


def test_catalogue_parses_recipes():
    catalogue = Catalogue()
    catalogue.add_manifest(_manifest({"toy": {"train": {"epochs": 3}}}), origin="m.toml")
    assert catalogue.models["m"].recipes == {"toy": {"train": {"epochs": 3}}}
    assert catalogue.models["m"].as_dict()["recipes"] == {"toy": {"train": {"epochs": 3}}}


@pytest.mark.parametrize("recipes, message", [
    ({"nope": {"train": {"epochs": 3}}}, r"m.toml: \[models.m.recipes.nope\]: unknown dataset 'nope'"),
    ({"toy": {"trian": {"epochs": 3}}}, r"m.toml: \[models.m.recipes.toy\] has unknown key\(s\) \['trian'\]"),
    ({"toy": {"train": 3}}, r"\[models.m.recipes.toy\] train must be a table, got 3"),
    ({"toy": 3}, r"\[models.m.recipes.toy\] must be a table"),
    ({"toy": {"data": {"name": "other"}}}, r"\[models.m.recipes.toy\] sets data.name"),
])
def test_bad_recipes_are_catalogue_errors_naming_the_entry(recipes, message):
    catalogue = Catalogue()
    with pytest.raises(ZooError, match=message):
        catalogue.add_manifest(_manifest(recipes), origin="m.toml")
    assert not catalogue.models and not catalogue.datasets   # a rejected manifest adds nothing


def test_recipe_for_a_dataset_of_another_task_is_an_error():
    with pytest.raises(ZooError, match=r"dataset 'toy' is a classification dataset; model 'm' is for regression"):
        Catalogue().add_manifest(_manifest({"toy": {}}, task="classification"), origin="m.toml")


def test_recipe_may_name_a_dataset_declared_by_an_earlier_manifest():
    catalogue = Catalogue()
    catalogue.add_manifest({"datasets": {"toy": {"plugin": "p", "task": "regression"}}}, origin="a.toml")
    manifest = _manifest({"toy": {"train": {"epochs": 3}}})
    del manifest["datasets"]
    catalogue.add_manifest(manifest, origin="b.toml")
    assert "toy" in catalogue.models["m"].recipes


def test_a_broken_recipe_is_reported_by_resolve():
    with pytest.raises(ZooError, match="train.epoch: unknown key"):
        cfg.resolve("m", _Model, {}, "a", options={"data": {"name": "b"}},
                    recipes={"b": {"train": {"epoch": 3}}})


@pytest.mark.parametrize("model, dataset", RECIPES, ids=[f"{m}-{d}" for m, d in RECIPES])
def test_every_registry_recipe_validates(model, dataset):
    """Its model's config schema and its dataset's options class take it (no data loaded)."""
    from zoo.core.contract.plugins import get_zoo

    entry, _, config = api.resolve_config(model, options={"data": {"name": dataset}})
    assert config.data.name == dataset
    assert load_catalogue().datasets[dataset].task in entry.tasks
    options_class = get_zoo().registry.dataset(dataset).options_class
    if options_class is not None:
        cfg.validate(options_class, config.data.options)
    else:
        assert config.data.options == {}


def test_registry_declares_the_documented_recipes():
    assert {("lstm", "adding-problem"), ("lstm", "atis"), ("gru", "adding-problem"),
            ("elman", "adding-problem"), ("cnn", "digits"), ("cnn", "fashion-mnist-transformed"),
            ("graphrnn", "grid-small"), ("graphrnn-s", "grid-small")} <= set(RECIPES)


# The docs/results.md rows whose command is the plain `zoo train MODEL --dataset X`, with the
# settings each was measured with (as the row states them): the recipe (or the defaults) must keep
# giving exactly these, and the row must keep the plain command.
_ADDING = {"model.bidirectional": False, "model.pooling": "last", "model.dropout": 0.0, "model.hidden_size": 64,
           "data.options.T": 100, "data.options.n": 10000, "train.epochs": 16, "optim.lr": 0.003}
_GRAPHRNN_GRID = {"train.epochs": 400, "schedule.name": "step", "schedule.step_size": 160, "schedule.gamma": 0.3,
                  "data.options.repeat": 13, "train.batch_size": 32, "optim.lr": 0.003}
DOCUMENTED_ROWS = [
    ("mlp", "fashion-mnist", {"model.hidden": [512, 256], "model.dropout": 0.2, "train.epochs": 15}),
    ("cnn", "digits", {"train.epochs": 30, "train.batch_size": 32}),
    ("cnn", "fashion-mnist-transformed", {"model.channels": [16, 32], "train.epochs": 10}),
    ("lstm", "atis", {"model.dropout": 0.2, "model.bidirectional": True, "model.embedding_dim": 64,
                      "model.hidden_size": 64, "optim.lr": 0.003, "train.epochs": 12, "train.batch_size": 32}),
    ("lstm", "adding-problem", _ADDING),
    ("gru", "adding-problem", _ADDING),
    ("elman", "adding-problem", {"model.hidden_size": 64, "data.options.T": 150, "data.options.n": 10000,
                                 "train.epochs": 16, "optim.lr": 0.003}),
    ("rnn-seq2seq", "addition", {"data.options.n": 50000, "data.options.digits": 5,
                                 "data.options.little_endian": False, "train.epochs": 10}),
    ("transformer-seq2seq", "sort", {"data.options.n": 10000, "data.options.max_length": 10, "train.epochs": 12}),
    ("transformer-seq2seq", "addition", {"data.options.n": 50000, "data.options.little_endian": False,
                                         "train.epochs": 12}),
    ("graphrnn", "grid-small", _GRAPHRNN_GRID),
    ("graphrnn-s", "grid-small", _GRAPHRNN_GRID),
]


def _setting(config, dotted: str):
    """A value as `zoo config` shows it: data.options filled in by the dataset's options class."""
    from zoo.core.contract.plugins import get_zoo

    head, *rest = dotted.split(".")
    value = getattr(config, head)
    if rest[0] == "options":
        options_class = get_zoo().registry.dataset(config.data.name).options_class
        value, rest = cfg.validate(options_class, config.data.options), rest[1:]
    for key in rest:
        value = getattr(value, key)
    return value


@pytest.mark.parametrize("model, dataset, expected", DOCUMENTED_ROWS,
                         ids=[f"{m}-{d}" for m, d, _ in DOCUMENTED_ROWS])
def test_documented_rows_need_only_dataset(model, dataset, expected):
    import re
    from pathlib import Path

    _, _, config = api.resolve_config(model, options={"data": {"name": dataset}})
    assert {key: _setting(config, key) for key in expected} == expected
    results = (Path(__file__).resolve().parents[2] / "docs" / "results.md").read_text(encoding="utf-8")
    plain = re.compile(rf"zoo train {re.escape(model)} --dataset {re.escape(dataset)}"
                       r"(?: --device \S+| --quiet| -q| --out \S+| --seed \S+)*`")
    assert plain.search(results), f"no docs/results.md row runs plain `zoo train {model} --dataset {dataset}`"


def test_doctor_finds_no_recipe_problems():
    from zoo.core.doctor import run_checks

    assert not [f for f in run_checks() if f.check == "recipes" and not f.ok]


def test_info_and_list_show_recipes():
    from click.testing import CliRunner
    from zoo.cli import main

    runner = CliRunner()
    info = runner.invoke(main, ["info", "lstm"])
    assert info.exit_code == 0 and "recipe for --dataset adding-problem:" in info.output
    listed = runner.invoke(main, ["list", "lstm"])
    assert "[recipes: adding-problem, atis]" in listed.output


def test_explicit_option_check_follows_the_options_class():
    from pydantic import BaseModel, ConfigDict

    class Loose(BaseModel):
        model_config = ConfigDict(extra="allow")

    class Aliased(BaseModel):
        model_config = ConfigDict(extra="forbid")
        size: int = Field(1, alias="Size")

    for cls, key in ((Loose, "anything"), (Aliased, "Size"), (Aliased, "size")):
        config = cfg.resolve("m", _Model, {}, "a", sets=(f"data.options.{key}=2",),
                             option_classes={"a": cls})
        assert config.data.options == {key: 2}
    with pytest.raises(ZooError, match=r"data.options sise \(from --set\) do not fit dataset 'a'; it takes: size"):
        cfg.resolve("m", _Model, {}, "a", sets=("data.options.sise=2",), option_classes={"a": Aliased})
