"""Constrained answer decoding (mmcot_cli.model.answer_constraint): the answer sentence's tokens come from the run's
own tokenizer, whatever its vocabulary makes of "(A).", and decoding stays inside the item's letters."""

from __future__ import annotations

import pytest
import torch

from mmcot_cli.model.answer_constraint import (
    AnswerConstraints,
    answer_position,
    letter_paths,
)

REFERENCE_TOKENIZER = "/work/shared/reference-checkpoint/checkpoint"


def _scratch():
    from mmcot_plugins.scratch_t5 import train_tokenizer

    return train_tokenizer(["The answer is (A).", "Solution: red. The answer is (B)."] * 5)


def _merged_pieces():
    """A vocabulary where "(A", "(B", "(C" are single pieces but "(D", "(E" are not (a mixed trie)."""
    from transformers import T5Tokenizer

    pieces = ["▁The", "▁answer", "▁is", "▁(A", "▁(B", "▁(C", ").", "▁(", *"ABCDE", ")", ".", "▁", "▁Solution", ":", "▁red"]
    return T5Tokenizer(vocab=[("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(p, -1.0) for p in pieces],
                       extra_ids=0)


def _reference():
    from pathlib import Path

    from mmcot_cli.model.t5_dirs import load_tokenizer

    if not Path(REFERENCE_TOKENIZER).is_dir():
        pytest.skip("the reference checkpoint (../shared) is not here")
    return load_tokenizer(REFERENCE_TOKENIZER)  # a sentencepiece T5 vocabulary (700 pieces)


TOKENIZERS = {"t5-scratch": _scratch, "merged-pieces": _merged_pieces, "sentencepiece": _reference}


def _walk(constraint, tokenizer, n_rows=1, prefix=()):
    """Greedy decoding against random scores under the constraint: the text it is forced into."""
    generated = list(prefix)
    for _ in range(12):
        ids = torch.tensor([[0, *generated]] * n_rows)
        scores = constraint(ids, torch.randn(n_rows, len(tokenizer)))
        token = int(scores[0].argmax())
        if token == tokenizer.eos_token_id:
            break
        generated.append(token)
    return tokenizer.decode(generated, skip_special_tokens=True, clean_up_tokenization_spaces=True)


@pytest.mark.parametrize("name", list(TOKENIZERS))
def test_letter_paths_round_trip_in_every_vocabulary(name):
    tokenizer = TOKENIZERS[name]()
    paths = letter_paths(tokenizer, "ABCDE")
    assert set(paths) == set("ABCDE")
    for letter, ids in paths.items():
        assert tokenizer.decode(list(ids), skip_special_tokens=True) == f"The answer is ({letter})."


@pytest.mark.parametrize("name", list(TOKENIZERS))
@pytest.mark.parametrize("choices", [2, 3, 4, 5])
def test_answer_only_output_is_forced_to_an_item_letter(name, choices):
    tokenizer = TOKENIZERS[name]()
    constraint = AnswerConstraints(tokenizer, "QCMG-A", [choices]).for_batch([0])
    seen = set()
    for seed in range(25):
        torch.manual_seed(seed)
        text = _walk(constraint, tokenizer)
        assert text in {f"The answer is ({letter})." for letter in "ABCDE"[:choices]}, text
        seen.add(text)
    assert len(seen) > 1  # the letter is the model's choice (here: random scores), not a fixed one


def _pieces(tokenizer, ids):
    return {tokenizer.convert_ids_to_tokens(t) for t in ids}


def test_mixed_trie_allows_exactly_the_items_letters():
    tokenizer = _merged_pieces()
    constraint = AnswerConstraints(tokenizer, "QCM-A", [4]).for_batch([0])
    ids = tokenizer("The answer is", add_special_tokens=False)["input_ids"]
    trie = constraint.tries[0]
    kind, after_is = constraint.rule(trie, ids)
    assert kind == "allow" and _pieces(tokenizer, after_is) == {"▁(A", "▁(B", "▁(C", "▁("}  # D: "▁(" + "D"; no E
    kind, after_paren = constraint.rule(trie, [*ids, tokenizer.convert_tokens_to_ids("▁(")])
    assert _pieces(tokenizer, after_paren) == {"D"}
    whole = tokenizer("The answer is (B).", add_special_tokens=False)["input_ids"]
    assert constraint.rule(trie, whole) == ("allow", {tokenizer.eos_token_id})  # output A: nothing after it


def test_answer_first_outputs_are_free_after_the_sentence():
    tokenizer = _scratch()
    constraint = AnswerConstraints(tokenizer, "QCM-AL", [2]).for_batch([0])
    whole = tokenizer("The answer is (B).", add_special_tokens=False)["input_ids"]
    assert constraint.rule(constraint.tries[0], whole) is None
    assert constraint.rule(constraint.tries[0], []) == ("allow", {tokenizer.convert_tokens_to_ids("▁The")})


@pytest.mark.parametrize("name", list(TOKENIZERS))
def test_answer_last_outputs_constrain_the_parenthesis(name):
    tokenizer = TOKENIZERS[name]()
    constraint = AnswerConstraints(tokenizer, "QCM-LEA", [2]).for_batch([0])
    trie = constraint.tries[0]
    rationale = tokenizer("Solution: red.", add_special_tokens=False)["input_ids"]
    assert constraint.rule(trie, rationale) is None  # free text before the answer
    # "The answer is red." may be part of the rationale: after "The answer is" only a wrong "(" is refused
    kind, refused = constraint.rule(trie, tokenizer("Solution: The answer is", add_special_tokens=False)["input_ids"])
    assert kind == "refuse" and all(p.lstrip("▁").startswith("(") for p in _pieces(tokenizer, refused))
    assert tokenizer.convert_tokens_to_ids("▁red") not in refused
    start = tokenizer("Solution: red. The answer is (", add_special_tokens=False)["input_ids"]
    if name == "merged-pieces":  # "(A" and "(B" are single pieces there: the parenthesis comes with the letter
        start = start[:-1] + [tokenizer.convert_tokens_to_ids("▁(A")]
    torch.manual_seed(0)
    text = _walk(constraint, tokenizer, prefix=start)
    assert text in ("Solution: red. The answer is (A).", "Solution: red. The answer is (B).")


def test_rows_follow_their_items_beams_and_samples_included():
    """generate expands each item to K rows (beams, samples) next to each other; each row gets its item's letters."""
    tokenizer = _scratch()
    constraints = AnswerConstraints(tokenizer, "QCMG-A", [2, 5, 3])
    constraint = constraints.for_batch([1, 2])  # items with 5 and 3 choices, 2 rows each
    prefix = tokenizer("The answer is (", add_special_tokens=False)["input_ids"]
    scores = torch.zeros(4, len(tokenizer))
    out = constraint(torch.tensor([[0, *prefix]] * 4), scores)
    letters = [{tokenizer.convert_ids_to_tokens(i) for i in torch.nonzero(row > float("-inf")).flatten().tolist()}
               for row in out]
    assert letters == [set("ABCDE"), set("ABCDE"), set("ABC"), set("ABC")]


def test_the_models_own_valid_choice_is_kept():
    """Where the unconstrained argmax is allowed, the constraint changes nothing."""
    tokenizer = _scratch()
    constraint = AnswerConstraints(tokenizer, "QCMG-A", [3]).for_batch([0])
    prefix = tokenizer("The answer is (", add_special_tokens=False)["input_ids"]
    scores = torch.randn(1, len(tokenizer))
    b = tokenizer.convert_tokens_to_ids("B")
    scores[0, b] = 50.0
    assert int(constraint(torch.tensor([[0, *prefix]]), scores.clone())[0].argmax()) == b
    scores[0, tokenizer.convert_tokens_to_ids("E")] = 100.0  # a letter beyond the 3 choices: not allowed
    assert int(constraint(torch.tensor([[0, *prefix]]), scores.clone())[0].argmax()) == b


def test_positions_and_formats_without_answers():
    assert answer_position("QCMG-A") == "only" and answer_position("QCM-ALE") == "first"
    assert answer_position("QCM-LEA") == "last" and answer_position("QCM-E") is None
    with pytest.raises(ValueError):
        AnswerConstraints(_scratch(), "QCM-LE", [2])
