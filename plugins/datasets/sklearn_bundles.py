"""Small tabular and image datasets bundled with scikit-learn (no download involved).

The test split is a fixed, stratified-by-shuffle 20 % (seed 0), so test numbers are comparable
across runs whatever ``train.seed`` is; the validation split is carved from the rest by the core.
"""

from __future__ import annotations

import numpy as np
import torch
from zoo.core.train.data import DataInfo, Dataset, TensorSplit
from zoo.core.contract.errors import DataUnavailable

TEST_FRACTION = 0.2


def _sklearn_datasets():
    try:
        from sklearn import datasets
    except ImportError:
        raise DataUnavailable(
            "this dataset ships with scikit-learn, which is not installed: pip install 'zoo-ml[data]' "
            "(or pip install scikit-learn)") from None
    return datasets


def _split(x: np.ndarray, y: np.ndarray, y_dtype: torch.dtype) -> tuple[TensorSplit, TensorSplit]:
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    n_test = int(round(len(x) * TEST_FRACTION))
    test, train = order[:n_test], order[n_test:]
    X = torch.as_tensor(x, dtype=torch.float32)
    Y = torch.as_tensor(y, dtype=y_dtype)
    return (TensorSplit(x=X[train], y=Y[train]), TensorSplit(x=X[test], y=Y[test]))


def _stats(train: TensorSplit) -> tuple[torch.Tensor, torch.Tensor]:
    x = train.tensors["x"]
    return x.mean(dim=0), x.std(dim=0)


def _tabular_classification(bunch) -> Dataset:
    train, test = _split(bunch.data, bunch.target, torch.int64)
    mean, std = _stats(train)
    names = [str(n) for n in getattr(bunch, "target_names", range(int(bunch.target.max()) + 1))]
    info = DataInfo(input_shape=(bunch.data.shape[1],), num_classes=len(names), class_names=names,
                    input_mean=mean, input_std=std,
                    extra={"feature_names": [str(f) for f in bunch.feature_names]})
    return Dataset(train=train, test=test, info=info)


def load_diabetes(options, data_dir) -> Dataset:
    """442 patients, 10 (already scaled) features, disease progression after one year."""
    bunch = _sklearn_datasets().load_diabetes()
    train, test = _split(bunch.data, bunch.target, torch.float32)
    mean, std = _stats(train)
    y = train.tensors["y"]
    info = DataInfo(input_shape=(10,), output_dim=1, input_mean=mean, input_std=std,
                    target_mean=float(y.mean()), target_std=float(y.std()),
                    extra={"feature_names": list(bunch.feature_names)})
    return Dataset(train=train, test=test, info=info)


def load_breast_cancer(options, data_dir) -> Dataset:
    """569 tumours, 30 features, malignant (0) or benign (1)."""
    return _tabular_classification(_sklearn_datasets().load_breast_cancer())


def load_iris(options, data_dir) -> Dataset:
    """150 flowers, 4 features, 3 species."""
    return _tabular_classification(_sklearn_datasets().load_iris())


def load_wine(options, data_dir) -> Dataset:
    """178 wines, 13 features, 3 cultivars."""
    return _tabular_classification(_sklearn_datasets().load_wine())


def load_digits(options, data_dir) -> Dataset:
    """1,797 handwritten digits as 1×8×8 images with values in [0, 1], 10 classes."""
    bunch = _sklearn_datasets().load_digits()
    images = (bunch.images / 16.0).reshape(-1, 1, 8, 8)
    train, test = _split(images, bunch.target, torch.int64)
    x = train.tensors["x"]
    info = DataInfo(input_shape=(1, 8, 8), num_classes=10, class_names=[str(i) for i in range(10)],
                    input_mean=x.mean().reshape(1, 1, 1), input_std=x.std().reshape(1, 1, 1))
    return Dataset(train=train, test=test, info=info)
