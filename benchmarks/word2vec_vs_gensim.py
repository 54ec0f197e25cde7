"""Our skip-gram and CBOW against gensim's Word2Vec, same settings, one run, one table.

    python benchmarks/word2vec_vs_gensim.py [--threads 2] [--epochs 5] [--dataset wiki-sample] [--loss hs]

Both train on the same token lists (our streaming reader), with the same dimension, window,
negatives, min_count, subsampling threshold, epochs and thread count (``torch.set_num_threads``
vs gensim ``workers``; at more than one thread ours, like gensim, runs its update on that many
persistent worker threads, one batch per job), and are evaluated by the same code (``zoo.plugins.word2vec.evaluate``):
WordSim353 Spearman (OOV pairs skipped) and 3CosAdd analogy accuracy restricted to the 30,000
most frequent words. Words/s = words trained on × epochs / training seconds (ours: the training
positions, i.e. in-vocabulary tokens minus the 1 % held out for the test loss, over the sum of the
epoch times; gensim: all in-vocabulary tokens over ``Word2Vec.train``), so loading, vocabulary
and export are excluded on both sides. ``--loss hs``: hierarchical softmax on both sides
(ours ``model.loss = "hs"``, gensim ``hs=1, negative=0``); ``--lr`` sets our initial learning
rate only; ``--batch-size`` our centre words per step (the catalogue's defaults: 1,024 for
skip-gram, 4,096 for CBOW; gensim's jobs are 10,000 words). Our fused CPU kernels (numba) are compiled or loaded from numba's cache
before the timing starts, as gensim's C loop is compiled at install time. Needs gensim and numba
(``pip install 'zoo-ml[word2vec]'``).

``--device cuda`` trains ours on the GPU, where the torch ops run (the numba kernels are CPU-only;
``model.kernel = "torch"`` is set so the path is explicit) against gensim on ``--threads`` CPU
threads (the issue's goal: ≥ 2 × gensim's words/s at 2 threads). ``--kernel torch`` selects the same
torch path on the CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def _scores(evaluation: dict, words: int, seconds: float) -> dict:
    return {"ws353": evaluation.get("wordsim353_spearman"), "analogy": evaluation.get("analogy_accuracy"),
            "simlex": evaluation.get("simlex999_spearman"), "seconds": seconds, "words": words,
            "words_per_s": words / seconds}


def _mean(runs: list[dict]) -> dict:
    """Quality: the mean over the runs; speed: all words over all seconds."""
    out = {key: sum(r[key] for r in runs) / len(runs) if all(r[key] is not None for r in runs) else None
           for key in ("ws353", "analogy", "simlex")}
    seconds, words = sum(r["seconds"] for r in runs), sum(r["words"] for r in runs)
    return {**out, "seconds": seconds / len(runs), "words_per_s": words / seconds}


def _warm_up_device(torch, device: str) -> None:
    """Start CUDA and cuBLAS before the timing (seconds on the first call): gensim's side has no
    such one-off cost, and our words/s is measured over the epoch times only."""
    x = torch.ones(64, 64, device=device, requires_grad=True)
    (x @ x).sum().backward()
    torch.cuda.synchronize(device)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="wiki-sample")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--models", default="skipgram,cbow")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--negatives", type=int, default=5)
    parser.add_argument("--loss", choices=("ns", "hs"), default="ns",
                        help="ns: negative sampling; hs: hierarchical softmax (both sides)")
    parser.add_argument("--lr", type=float, default=None,
                        help="Our initial learning rate (default: the catalogue's); gensim keeps its alpha")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="Our centre words per step (default: the catalogue's)")
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--sample", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0, help="First seed (both sides)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="Runs per side with seeds seed, seed+1, ...: quality is their mean, words/s "
                             "all words over all training seconds (the corpus is small: one seed moves "
                             "WordSim353 by several hundredths on both sides)")
    parser.add_argument("--device", default="cpu", help="Ours: cpu (default) or cuda[:N]; gensim is CPU-only")
    parser.add_argument("--kernel", choices=("auto", "numba", "torch"), default=None,
                        help="Our model.kernel (default: the catalogue's, auto; on CUDA always torch)")
    parser.add_argument("--json", help="Also write the rows to this JSON file.")
    args = parser.parse_args(argv)
    if args.device != "cpu":
        args.kernel = "torch"  # the numba kernels are CPU-only: say so rather than rely on auto

    import numpy as np
    import torch

    try:
        from gensim.models import Word2Vec
    except ImportError:
        print("gensim is not installed: pip install 'zoo-ml[word2vec]'", file=sys.stderr)
        return 2
    from zoo.core import api
    from zoo.core.train.runs import Run
    from zoo.plugins.word2vec.corpus import CorpusOptions, iter_documents
    from zoo.plugins.word2vec.evaluate import WordVectors, evaluate_all
    from zoo.plugins.word2vec.run_files import evaluation_folder

    torch.set_num_threads(args.threads)
    if torch.device(args.device).type == "cuda":
        _warm_up_device(torch, args.device)
    elif args.kernel != "torch":
        try:  # compile (or load) the fused CPU kernels before anything is timed
            from zoo.plugins.word2vec import kernels

            kernels.warm_up()
        except ImportError:
            print("numba is not installed: ours runs the torch ops (pip install 'zoo-ml[word2vec]')",
                  file=sys.stderr)
    data = {"name": args.dataset, "options": {"min_count": args.min_count, "window": args.window,
                                              "sample": args.sample}}
    if args.data_dir:
        data["data_dir"] = args.data_dir
    folder = evaluation_folder(args.data_dir)
    rows = []
    for name in args.models.split(","):
        options = {"model": {"dim": args.dim, "negatives": args.negatives, "loss": args.loss}, "data": data,
                   "train": {"epochs": args.epochs, "device": args.device, "progress": False}}
        if args.kernel is not None:
            options["model"]["kernel"] = args.kernel
        if args.batch_size is not None:
            options["train"]["batch_size"] = args.batch_size
        if args.lr is not None:
            options["optim"] = {"lr": args.lr}
        _, _, run_config = api.resolve_config(name, options=options)
        dataset, _ = api.load_data(run_config, __import__("zoo.core.contract.catalogue", fromlist=["x"])
                                   .load_catalogue().models[name])
        tokens = dataset.info.extra["tokens"]           # in-vocabulary tokens: what gensim trains on
        positions = len(dataset.train)                  # ours: minus the held-out test positions
        corpus_options = CorpusOptions.model_validate(run_config.data.options)
        docs = list(iter_documents(dataset.info.extra["corpus"], corpus_options.tokenizer,
                                   corpus_options.max_tokens))
        ours, theirs = [], []
        for seed in range(args.seed, args.seed + args.seeds):
            options["train"]["seed"] = seed
            with tempfile.TemporaryDirectory() as tmp:
                summary = api.train(name, options=options, out=str(Path(tmp) / "run"), log=None)
                seconds = sum(r["epoch_seconds"] for r in Run(Path(tmp) / "run").read_metrics())
            ours.append(_scores(summary["embedding_eval"], positions * args.epochs, seconds))

            hs = args.loss == "hs"
            model = Word2Vec(vector_size=args.dim, window=args.window, negative=0 if hs else args.negatives,
                             hs=int(hs), min_count=args.min_count, sample=args.sample,
                             sg=1 if name == "skipgram" else 0, workers=args.threads, seed=seed)
            model.build_vocab(docs)
            started = time.time()
            model.train(docs, total_examples=len(docs), epochs=args.epochs)
            seconds = time.time() - started
            vectors = WordVectors(list(model.wv.index_to_key), np.asarray(model.wv.vectors, dtype=np.float32))
            theirs.append(_scores(evaluate_all(vectors, folder), tokens * args.epochs, seconds))
        rows.append({"model": name, "dataset": args.dataset, "threads": args.threads, "epochs": args.epochs,
                     "seeds": list(range(args.seed, args.seed + args.seeds)), "tokens": tokens,
                     "vocab": len(vectors.words), "ours": _mean(ours), "gensim": _mean(theirs),
                     "ours_per_seed": ours, "gensim_per_seed": theirs,
                     "device": args.device, "kernel": args.kernel or "auto"})

    objective = "hierarchical softmax" if args.loss == "hs" else f"negatives {args.negatives}"
    lr = f", our lr {args.lr}" if args.lr is not None else ""
    batch = f", our batch {args.batch_size}" if args.batch_size is not None else ""
    seeds = f"seed {args.seed}" if args.seeds == 1 else f"mean of seeds {args.seed}..{args.seed + args.seeds - 1}"
    print(f"dataset {args.dataset}: dim {args.dim}, window {args.window}, {objective}{lr}{batch}, "
          f"min_count {args.min_count}, sample {args.sample}, epochs {args.epochs}, threads {args.threads}, {seeds}"
          + (f", ours on {args.device} (kernel {args.kernel})" if args.device != "cpu" or args.kernel else ""))
    print("| model | metric | ours | gensim | ours / gensim |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        for key, label in (("ws353", "WordSim353 Spearman"), ("simlex", "SimLex-999 Spearman"),
                           ("analogy", "analogy accuracy (3CosAdd, top 30k)"),
                           ("words_per_s", "training words/s"), ("seconds", "training seconds")):
            a, b = row["ours"][key], row["gensim"][key]
            ratio = a / b if b else float("nan")
            fmt = "{:,.0f}" if key == "words_per_s" else "{:.4f}" if key != "seconds" else "{:.1f}"
            print(f"| {row['model']} | {label} | {fmt.format(a)} | {fmt.format(b)} | {ratio:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
