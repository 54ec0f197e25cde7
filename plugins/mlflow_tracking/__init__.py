"""MLflow tracking, built only on zoo's public training-event hooks.

A declared logger (``[loggers.mlflow]`` in ``registry.toml``), enabled per run with
``zoo train ... --log mlflow`` (``train.log = ["mlflow"]``); the client and the MLflow run id
live in the run's ``ctx.state``. Logs the resolved config as params, every epoch metric with its
epoch as the step, the test metrics, and the run's ``model.onnx`` (plus ``summary.json``) as
artifacts. The tracking URI is ``$MLFLOW_TRACKING_URI`` or, by default, a local file store
``mlruns/`` next to the run directory. Needs ``mlflow-skinny`` (``zoo-ml[mlflow]``).
"""

from __future__ import annotations

import os
from pathlib import Path

from zoo import hookimpl
from zoo.core.contract.toml_io import flatten

NAME = "mlflow"


def tracking_uri(run_path: Path) -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    # A local file store beside the runs: MLflow 3 keeps it working only when asked explicitly.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return (run_path.resolve().parent / "mlruns").as_uri()


@hookimpl
def on_train_start(ctx):
    MlflowClient = ctx.logger_import(NAME, "mlflow.tracking", "MlflowClient",
                                     "--log mlflow needs MLflow: pip install 'zoo-ml[mlflow]'")
    if MlflowClient is None:
        return
    client = MlflowClient(tracking_uri(ctx.path))
    experiment = client.get_experiment_by_name("zoo")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("zoo")
    tracked = client.create_run(experiment_id, run_name=ctx.run.name,
                                tags={"zoo.model": ctx.model_name, "zoo.run_dir": str(ctx.path)})
    for key, value in flatten(ctx.config).items():
        client.log_param(tracked.info.run_id, key, str(value)[:500])
    ctx.state[NAME] = (client, tracked.info.run_id)


@hookimpl
def on_epoch_end(ctx, epoch, metrics):
    active = ctx.state.get(NAME)
    if active is None:
        return
    client, run_id = active
    for name, value in metrics.items():
        if name != "epoch" and isinstance(value, (int, float)):
            client.log_metric(run_id, name, float(value), step=epoch)


@hookimpl
def on_train_end(ctx, summary):
    active = ctx.state.pop(NAME, None)
    if active is None:
        return
    client, run_id = active
    for name, value in (summary.get("metrics") or {}).items():
        if isinstance(value, (int, float)):
            client.log_metric(run_id, f"test_{name}", float(value))
    for name in ("model.onnx", "summary.json"):
        if (ctx.path / name).exists():
            client.log_artifact(run_id, str(ctx.path / name))
    status = {"finished": "FINISHED", "interrupted": "KILLED", "pruned": "KILLED"}.get(summary.get("status"), "FAILED")
    client.set_terminated(run_id, status=status)
