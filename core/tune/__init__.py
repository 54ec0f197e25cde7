"""Tuning and reproducing on top of training: search spaces (``space``), Optuna studies
(``sweep``), the objective's direction (``objective``) and the catalogue's reference recipes
(``reproduce``). Runs go through :mod:`zoo.core.api` like any ``zoo train``.
"""
