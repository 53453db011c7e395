"""The short greedy loop (model/text/greedy_t5.py) returns exactly what transformers' generate() returns."""

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList, T5Config

from mmcot_cli.model.fusion import MMCoTForConditionalGeneration
from mmcot_cli.model.text import greedy_t5


def _model(tied: bool, image: bool, seed: int = 0):
    config = T5Config(vocab_size=40, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, tie_word_embeddings=tied)
    config.mmcot = {"image_shape": [5, 12] if image else None}
    torch.manual_seed(seed)
    model = MMCoTForConditionalGeneration(config).eval()
    with torch.no_grad():  # T5's init makes every step pick the same token: spread the logits
        model.lm_head.weight.normal_(0, 4.0)
        model.lm_head.weight[0].mul_(0.01)  # the start/pad token (tied: its embedding too) rarely wins
    return model


def _batch(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, 40, (4, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[3, 3:] = 0
    ids[mask == 0] = 0
    return ids, mask, torch.randn(4, 5, 12, generator=g)


class _BanOdd(LogitsProcessor):
    """A processor that reads the ids so far: after an odd token, odd tokens are banned."""

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        odd = input_ids[:, -1] % 2 == 1
        scores[odd, 1::2] = -float("inf")
        return scores


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("image", [True, False])
@pytest.mark.parametrize("min_new", [None, 5])
def test_same_ids_as_generate(tied, image, min_new):
    torch.set_num_threads(1)
    model = _model(tied, image)
    ids, mask, feats = _batch()
    kwargs = {"max_new_tokens": 12, "num_beams": 1, "do_sample": False, "use_cache": True}
    if min_new:
        kwargs["min_new_tokens"] = min_new
    if image:
        kwargs["image_features"] = feats
    assert greedy_t5.handles(model, kwargs)
    with torch.inference_mode():
        expected = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
    got = greedy_t5.greedy_generate(model, ids, mask, **kwargs)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("seed, all_end", [(0, False), (5, True)])
def test_rows_that_end_early_are_padded_and_the_loop_stops(seed, all_end):
    model = _model(False, True, seed=seed)
    with torch.no_grad():
        model.lm_head.weight[1].mul_(1.3)  # EOS (id 1) likelier: some rows (seed 0) or all (seed 5) end
    ids, mask, feats = _batch(3)
    kwargs = {"max_new_tokens": 30, "image_features": feats}
    with torch.inference_mode():
        expected = model.generate(input_ids=ids, attention_mask=mask, num_beams=1, do_sample=False, **kwargs)
    got = greedy_t5.greedy_generate(model, ids, mask, **kwargs)
    assert torch.equal(got, expected)
    ended = (got[:, 1:] == 1).any(dim=1)
    assert bool(ended.all()) == all_end and bool(ended.any())
    assert (got.shape[1] < 31) == all_end  # the loop stops once every row has ended


def test_logits_processors_see_the_ids_so_far():
    model = _model(False, True)
    ids, mask, feats = _batch(2)
    kwargs = {"max_new_tokens": 10, "min_new_tokens": 10, "image_features": feats,
              "logits_processor": LogitsProcessorList([_BanOdd()])}
    with torch.inference_mode():
        expected = model.generate(input_ids=ids, attention_mask=mask, num_beams=1, do_sample=False, **kwargs)
    got = greedy_t5.greedy_generate(model, ids, mask, **kwargs)
    assert torch.equal(got, expected)
    assert not torch.equal(got, greedy_t5.greedy_generate(model, ids, mask, max_new_tokens=10, min_new_tokens=10,
                                                          image_features=feats))


@pytest.mark.parametrize("kwargs", [{"num_beams": 2, "max_new_tokens": 4}, {"do_sample": True, "max_new_tokens": 4},
                                    {"use_cache": False, "max_new_tokens": 4},
                                    {"max_new_tokens": 4, "num_return_sequences": 2}])
def test_other_decoding_goes_to_generate(kwargs):
    assert not greedy_t5.handles(_model(True, True), kwargs)


def test_a_generation_config_with_its_own_settings_goes_to_generate():
    model = _model(True, True)
    model.generation_config.no_repeat_ngram_size = 3
    assert not greedy_t5.handles(model, {"max_new_tokens": 4})
