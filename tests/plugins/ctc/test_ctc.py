"""CTC family: decoding (greedy, prefix beam search) on hand-made log-probability matrices, CER,
the sequence-recognition task, the digit-strings and spoken-digit-strings datasets, the CRNN, and
a train → export → predict round trip."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from zoo.core import api
from zoo.core.contract.errors import ZooError
from zoo.plugins.ctc.audio import SpokenDigitOptions, load_spoken_digit_strings, log_mel, mel_filterbank
from zoo.plugins.ctc.data import DigitStringOptions, load_digit_strings
from zoo.plugins.ctc.decode import (
    character_error_rate,
    collapse,
    decode,
    edit_distance,
    greedy_decode,
    prefix_beam_search,
)
from zoo.plugins.ctc.models import CRNN, CRNNConfig
from zoo.plugins.ctc.task import SequenceRecognition


def _log(rows) -> np.ndarray:
    with np.errstate(divide="ignore"):  # a probability of 0 is log −inf on purpose
        return np.log(np.asarray(rows, dtype=np.float64))


# -- decoding ---------------------------------------------------------------------------------

def test_collapse_merges_repeats_then_drops_blanks():
    assert collapse([1, 1, 0, 1, 2, 2, 0, 0]) == [1, 1, 2]
    assert collapse([0, 0, 0]) == []
    assert collapse([3, 0, 3]) == [3, 3] and collapse([3, 3]) == [3]


def test_greedy_decode_takes_the_best_path_within_the_length():
    #        blank  a    b
    rows = [[0.1, 0.8, 0.1],   # a
            [0.1, 0.7, 0.2],   # a (merged)
            [0.8, 0.1, 0.1],   # blank
            [0.2, 0.7, 0.1],   # a again: a second a
            [0.1, 0.1, 0.8]]   # b, beyond length 4 below
    assert greedy_decode(_log(rows)) == [1, 1, 2]
    assert greedy_decode(_log(rows), length=4) == [1, 1]


def test_beam_search_sums_paths_where_greedy_does_not():
    # Two frames, p(blank) = 0.6, p(a) = 0.4 each: the best path is "- -" (0.36), so greedy says "",
    # but p("a") = 0.4·0.4 + 0.4·0.6 + 0.6·0.4 = 0.64 > p("") = 0.36.
    frames = _log([[0.6, 0.4], [0.6, 0.4]])
    assert greedy_decode(frames) == []
    assert prefix_beam_search(frames, beam_width=4) == [1]


def _brute_force(log_probs: np.ndarray) -> tuple[int, ...]:
    """The most likely string: every path enumerated, probabilities summed per collapsed string."""
    totals: dict[tuple[int, ...], float] = {}
    T, K = log_probs.shape
    for path in itertools.product(range(K), repeat=T):
        key = tuple(collapse(path))
        totals[key] = totals.get(key, 0.0) + math.exp(sum(log_probs[t, k] for t, k in enumerate(path)))
    return max(totals, key=totals.get)


@pytest.mark.parametrize("seed", range(12))
def test_wide_beam_finds_the_most_likely_string(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (5, 3))
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    assert tuple(prefix_beam_search(log_probs, beam_width=64)) == _brute_force(log_probs)


def test_batch_decode_respects_lengths_and_modes():
    frames = np.stack([_log([[0.1, 0.9], [0.9, 0.1], [0.1, 0.9]]), _log([[0.6, 0.4], [0.6, 0.4], [0.1, 0.9]])])
    assert decode(frames, [3, 2]) == [[1, 1], []]
    assert decode(frames, [3, 2], beam_width=8) == [[1, 1], [1]]


def test_edit_distance_and_cer():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], [1, 2]) == 2 and edit_distance([1, 2], []) == 2
    assert edit_distance([1, 2, 3], [1, 2, 3]) == 0
    # 1 substitution in "123" + 1 deletion from "45": 2 edits over 5 reference characters
    assert character_error_rate([[1, 9, 3], [4]], [[1, 2, 3], [4, 5]]) == pytest.approx(0.4)


# -- task -------------------------------------------------------------------------------------

def _one_hot_frames(strings: list[list[int]], K: int = 11) -> tuple[torch.Tensor, torch.Tensor]:
    """Confident log-probs spelling each string as ``s1 - s2 - ...`` (a blank after each symbol)."""
    T = max(2 * len(s) for s in strings)
    probs = torch.full((len(strings), T, K), 1e-4)
    probs[:, :, 0] = 1.0
    for b, s in enumerate(strings):
        for i, k in enumerate(s):
            probs[b, 2 * i] = 1e-4
            probs[b, 2 * i, k] = 1.0
    return (probs / probs.sum(-1, keepdim=True)).log(), torch.tensor([2 * len(s) for s in strings])


def test_task_metrics_on_perfect_and_wrong_decodes():
    task = SequenceRecognition()
    target = torch.tensor([[2, 2, 5], [7, 0, 0]])
    batch = {"target": target, "target_lengths": torch.tensor([3, 1])}
    output = _one_hot_frames([[2, 2, 5], [7]])
    metrics = task.finalize({k: float(v) for k, v in task.metric_sums(output, batch).items()})
    assert metrics["cer"] == 0.0 and metrics["exact_match"] == 1.0 and metrics["loss"] < 0.01
    wrong = _one_hot_frames([[2, 5], [7]])          # drops one of the repeated 2s: 1 edit / 4 chars
    metrics = task.finalize({k: float(v) for k, v in task.metric_sums(wrong, batch).items()})
    assert metrics["cer"] == pytest.approx(0.25) and metrics["exact_match"] == 0.5
    assert task.main_metric == "cer" and task.higher_is_better is False
    # the training loss is CTCLoss's "mean": per-sample loss / target length, averaged
    ref = torch.nn.CTCLoss(blank=0, zero_infinity=True)(output[0].transpose(0, 1), target, output[1],
                                                       batch["target_lengths"])
    assert task.loss(output, batch).item() == pytest.approx(ref.item(), rel=1e-5)


def test_postprocess_decodes_strings_with_the_models_beam():
    task = SequenceRecognition()
    frames = np.stack([_log([[0.6, 0.4] + [0.0] * 9] * 2).clip(-50)])   # "" greedy, "0" by beam
    outputs = {"log_probs": frames, "frame_lengths": np.array([2])}
    meta = {"onnx_alphabet": "0123456789", "config": {"model": {"beam_width": 1}}}
    assert task.postprocess(outputs, meta) == [""]
    meta["config"]["model"]["beam_width"] = 4
    assert task.postprocess(outputs, meta) == ["0"]


@pytest.mark.parametrize("data, message", [
    ({"x": [[0.0] * 5] * 3}, "3 rows; this model takes 12"),
    ({"x": [[[0.0] * 5] * 12], "lengths": [6]}, "between 1 and 5"),
    ({"x": [[[0.0] * 5] * 12], "lengths": [0]}, "between 1 and 5"),
    ({"x": "abc"}, "input 'x'"),
    ({"x": [[]] * 12}, "empty"),
])
def test_raw_inputs_refuse_bad_samples(data, message):
    with pytest.raises(ZooError, match=message):
        SequenceRecognition().raw_inputs(data, {"onnx_input_height": 12})


def test_raw_inputs_pad_samples_of_different_widths():
    a, b = np.ones((12, 4)), np.ones((12, 9))
    feed = SequenceRecognition().raw_inputs({"x": [a.tolist(), b.tolist()]}, {"onnx_input_height": 12})
    assert feed["x"].shape == (2, 12, 9) and feed["lengths"].tolist() == [4, 9]
    assert feed["x"][0, :, 4:].sum() == 0


# -- datasets ---------------------------------------------------------------------------------

def test_digit_strings_shapes_lengths_and_labels():
    o = DigitStringOptions(n=300, n_test=50, seed=3)
    data = load_digit_strings(o, None)
    train = data.train.tensors
    assert train["x"].shape[:2] == (300, 12) and data.test.tensors["x"].shape[:2] == (50, 12)
    lengths, n_labels = train["lengths"], train["target_lengths"]
    assert int(lengths.max()) == train["x"].shape[2]
    assert ((n_labels >= 1) & (n_labels <= 8)).all() and set(n_labels.tolist()) == set(range(1, 9))
    # labels 1..10 (0 is the blank) inside each length, 0 after
    mask = torch.arange(train["target"].shape[1])[None] < n_labels[:, None]
    assert ((train["target"] >= 1) & (train["target"] <= 10))[mask].all() and (train["target"][~mask] == 0).all()
    # padding is background, and each glyph is 5-11 px wide with gaps of 0-3 px
    for i in range(20):
        assert train["x"][i, :, int(lengths[i]):].abs().sum() == 0
        k = int(n_labels[i])
        assert 5 * k <= int(lengths[i]) <= 11 * k + 3 * (k + 1)
    # the width does not give the length: strings of one length come in many widths and vice versa
    widths_of_3 = {int(w) for w, n in zip(lengths, n_labels) if n == 3}
    assert len(widths_of_3) >= 5
    lengths_at = {}
    for w, n in zip(lengths.tolist(), n_labels.tolist()):
        lengths_at.setdefault(w, set()).add(n)
    assert any(len(v) > 1 for v in lengths_at.values())
    # seeded: the same options give the same data; another seed other data
    again = load_digit_strings(o, None).train.tensors
    assert torch.equal(again["x"], train["x"]) and torch.equal(again["target"], train["target"])
    other = load_digit_strings(DigitStringOptions(n=300, n_test=50, seed=4), None).train.tensors
    assert not torch.equal(other["target"], train["target"])
    assert data.info.extra["onnx_alphabet"] == "0123456789" and data.info.num_classes == 11


def test_digit_string_batches_are_cut_to_their_widest_input_and_longest_string():
    data = load_digit_strings(DigitStringOptions(n=200, n_test=10), None)
    batch = data.train.batch(torch.arange(5))
    assert batch["x"].shape[2] == int(batch["lengths"].max())
    assert batch["target"].shape[1] == int(batch["target_lengths"].max())


def test_digit_string_options_are_validated():
    with pytest.raises(ValidationError):
        DigitStringOptions(min_digits=5, max_digits=2)
    with pytest.raises(ValidationError):
        DigitStringOptions(nope=1)


def test_spoken_digit_strings_from_the_fixture():
    data = load_spoken_digit_strings(SpokenDigitOptions(n=40, n_test=10, max_digits=3), None)
    train, test = data.train.tensors, data.test.tensors
    assert train["x"].shape[:2] == (40, 40) and test["x"].shape[:2] == (10, 40)
    assert ((train["target_lengths"] >= 1) & (train["target_lengths"] <= 3)).all()
    # 80 ms recordings at a 10 ms hop: ~9 frames a digit, more with pauses
    per_digit = train["lengths"].float() / train["target_lengths"].float()
    assert per_digit.min() >= 8
    assert abs(float(train["x"].mean())) < 0.2           # standardised with the train statistics
    assert len(data.info.extra["onnx_feature_mean"]) == 40


def test_spoken_digit_strings_say_what_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    with pytest.raises(ZooError, match="spoken-digit-strings"):
        load_spoken_digit_strings(SpokenDigitOptions(n=4, n_test=2), None)


def test_log_mel_of_a_tone_peaks_at_its_mel_band():
    rate, n_mels = 8000, 40
    bank = mel_filterbank(256, n_mels, rate)
    assert bank.shape == (129, n_mels) and float(bank.max()) <= 1.0 + 1e-6
    assert (bank.sum(0) > 0).all()                        # no empty filter
    t = torch.arange(rate // 2) / rate
    low, high = (log_mel(torch.sin(2 * math.pi * f * t), rate, n_mels).mean(1).argmax() for f in (300, 2500))
    assert int(low) < int(high)
    centre = int(bank[round(2500 / rate * 256)].argmax())
    assert abs(int(high) - centre) <= 1


# -- model ------------------------------------------------------------------------------------

@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_crnn_outputs_are_log_probs_and_ignore_padding(rnn):
    data = load_digit_strings(DigitStringOptions(n=20, n_test=4), None)
    torch.manual_seed(0)
    model = CRNN(CRNNConfig(name="crnn-ctc", channels=[4, 8], hidden_size=8, layers=2, rnn=rnn), data.info).eval()
    batch = data.train.batch(torch.arange(6))
    with torch.no_grad():
        log_probs, frames = model(batch["x"], batch["lengths"])
        assert log_probs.shape == (6, batch["x"].shape[2] // 2, 11)
        assert torch.allclose(log_probs.exp().sum(-1), torch.ones(log_probs.shape[:2]), atol=1e-5)
        assert frames.tolist() == (batch["lengths"] // 2).tolist()
        # one sample alone gives the same frames as in its padded batch
        i = int(batch["lengths"].argmin())
        alone, _ = model(batch["x"][i:i + 1, :, :int(batch["lengths"][i])], batch["lengths"][i:i + 1])
    n = int(frames[i])
    assert torch.allclose(alone[0, :n], log_probs[i, :n], atol=1e-5)


def test_width_pools_beyond_the_blocks_is_an_error():
    data = load_digit_strings(DigitStringOptions(n=4, n_test=2), None)
    with pytest.raises(ZooError, match="width_pools"):
        CRNN(CRNNConfig(name="crnn-ctc", channels=[4], width_pools=2), data.info)


# -- train, export, predict -------------------------------------------------------------------

@pytest.mark.slow
def test_train_export_predict_round_trip(tmp_path):
    out = tmp_path / "run"
    options = {"model": {"channels": [8, 16], "hidden_size": 16, "layers": 1, "beam_width": 3},
               "data": {"options": {"n": 256, "n_test": 32, "max_digits": 3}},
               "train": {"epochs": 2, "batch_size": 32, "progress": False, "device": "cpu"}}
    summary = api.train("crnn-ctc", options=options, out=str(out), log=None)
    assert summary["status"] == "finished" and summary["parity"] <= 1e-4
    widths = {s[0][2] for s in summary["parity_shapes"]}
    assert len(widths) == 3                               # parity at three widths, two untraced
    _, _, _, net, dataset, task, _ = api.load_run(str(out))
    samples = [dataset.test.batch(torch.tensor([i])) for i in range(3)]
    xs = [s["x"][0, :, :int(s["lengths"][0])].tolist() for s in samples]
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"x": xs}))                # three samples of different widths
    predictions, metadata = api.predict(str(out), str(path))
    assert len(predictions) == 3 and all(isinstance(p, str) and set(p) <= set("0123456789") for p in predictions)
    expected = []
    for s in samples:
        with torch.no_grad():
            log_probs, frames = net(s["x"], s["lengths"])
        ids = prefix_beam_search(log_probs[0].numpy(), 3, int(frames[0]))
        expected.append("".join("0123456789"[k - 1] for k in ids))
    assert predictions == expected
    # zoo serve answers a tensor request with the same strings (Task.answers_tensors)
    from starlette.testclient import TestClient
    from zoo.core.serve import build_app

    feed = task.raw_inputs({"x": xs}, metadata)
    body = {"inputs": [{"name": "x", "shape": list(feed["x"].shape), "datatype": "FP32",
                        "data": feed["x"].ravel().tolist()},
                       {"name": "lengths", "shape": [3], "datatype": "INT64", "data": feed["lengths"].tolist()}]}
    with TestClient(build_app([str(out)], log=lambda line: None)) as client:
        response = client.post("/v2/models/run/infer", json=body)
        assert response.status_code == 200, response.text
        outputs = {o["name"]: o for o in response.json()["outputs"]}
        assert [json.loads(a) for a in outputs["prediction"]["data"]] == predictions
        body["inputs"][0]["shape"] = [3, 5, feed["x"].shape[2]]      # wrong height: a 400, one line
        body["inputs"][0]["data"] = body["inputs"][0]["data"][:3 * 5 * feed["x"].shape[2]]
        assert client.post("/v2/models/run/infer", json=body).status_code == 400
