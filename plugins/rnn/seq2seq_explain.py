"""Where did the decoder look? ``zoo explain RUN_DIR --index I`` for ``rnn-seq2seq``: the attention
matrix ``α [L, S]`` of test pair I under greedy decoding, one row per emitted token (up to and
including ``<eos>``), one column per source token; row t is the distribution the decoder used to
build its context for token t (Bahdanau et al. 2015, Fig. 3). On ``reverse`` a good model draws
the anti-diagonal; on ``addition`` it reads the two digits (and the carry's neighbours) of each
output position.

Files: ``attention.png`` (needs matplotlib, the ``plots`` extra) and ``explain.json`` (source,
target, decode, whether it is exact, and the matrix itself).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from zoo.core.train.data import DataInfo, unwrap
from zoo.core.contract.errors import ZooError
from zoo.plugins.sequence.pipeline import Vocabulary


def _draw(alpha: list[list[float]], source: list[str], decoded: list[str], path: Path, title: str) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(max(3.5, 1.2 + 0.45 * len(source)), max(3.0, 1.2 + 0.45 * len(decoded))))
    image = ax.imshow(alpha, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source)), source, rotation=90 if max(map(len, source)) > 2 else 0)
    ax.set_yticks(range(len(decoded)), decoded)
    ax.set_xlabel("source")
    ax.set_ylabel("decoded (greedy)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


@torch.no_grad()
def explain(model: torch.nn.Module, sample: dict[str, torch.Tensor], info: DataInfo, out_dir: Path) -> dict[str, Any]:
    net = unwrap(model)
    if getattr(net, "attend", None) is None:
        raise ZooError("this model decodes without attention (model.attention = 'none'): there is no "
                       "attention matrix to draw; explain an rnn-seq2seq run")
    vocab = Vocabulary.from_metadata(info.extra["onnx_vocabulary"])
    eos = info.extra["eos_id"]
    tokens, lengths = sample["tokens"][:1], sample["lengths"][:1]
    generated, alpha = net.greedy_with_attention(tokens, lengths)          # (1, L), (1, L, S)
    n_source = int(lengths[0])
    ids = generated[0].tolist()
    steps = ids.index(eos) + 1 if eos in ids else len(ids)                   # through <eos>
    matrix = alpha[0, :steps, :n_source].tolist()
    source = vocab.decode(tokens[0, :n_source].tolist())
    decoded = vocab.decode(ids[:steps])
    target_ids = sample["target"][0, :int(sample["target_lengths"][0])].tolist()
    target = vocab.decode(target_ids)
    exact = ids[:steps] == target_ids
    title = f"{' '.join(source)} → {' '.join(decoded)} ({'exact' if exact else 'target ' + ' '.join(target)})"
    files = {}
    png = _draw(matrix, source, decoded, out_dir / "attention.png", title)
    if png is not None:
        files["attention"] = str(png)
    report = {"source": source, "target": target, "decoded": decoded, "exact": exact,
              "attention": matrix, "files": files}
    path = out_dir / "explain.json"
    report["files"]["report"] = str(path)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
