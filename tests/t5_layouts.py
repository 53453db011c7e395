"""Small T5 checkpoint directories in the layouts the hub has (a test helper, not a test module).

tokenizer: "spiece" (spiece.model only, as UnifiedQA), "json" (tokenizer.json only), "both";
weights: "bin" (pickled pytorch_model.bin, every tied copy inside, as transformers 4 wrote) or "safetensors";
tied: T5 v1.0 (tied head, scaled decoder output, relu) or v1.1/FLAN (own lm_head, gated-gelu).
"""

import io
import json
from pathlib import Path

CORPUS = ["Question: Which colour is the ball? Context: N/A Options: (A) red (B) blue Solution:",
          "Solution: The ball is red. The answer is (A).", "Which of these states is farthest north?",
          "Options: (A) West Virginia (B) Louisiana (C) Arizona (D) Oklahoma", "The object is blue. BECAUSE:"] * 20


def make_tokenizer_files(dest: Path, kind: str, sp_vocab: int = 90) -> int:
    """Write the tokenizer files of `kind` into dest; returns the tokenizer's length (for vocab_size)."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS), model_writer=model, vocab_size=sp_vocab,
                                   model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   hard_vocab_limit=False, minloglevel=2)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "spiece.model").write_bytes(model.getvalue())
    if not (dest / "config.json").exists():  # AutoTokenizer finds the tokenizer class through the config
        (dest / "config.json").write_text(json.dumps({"model_type": "t5"}))
    tokenizer = AutoTokenizer.from_pretrained(dest)  # converted from spiece.model, 100 sentinels added
    if kind != "spiece":
        tokenizer.save_pretrained(dest)
        if kind == "json":
            (dest / "spiece.model").unlink()
    return len(tokenizer)


def make_t5_dir(dest: Path, *, tokenizer: str, weights: str, tied: bool, seed: int = 0) -> Path:
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    vocab = make_tokenizer_files(dest, tokenizer)
    torch.manual_seed(seed)
    config = T5Config(vocab_size=vocab, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
                      decoder_start_token_id=0, feed_forward_proj="relu" if tied else "gated-gelu")
    model = T5ForConditionalGeneration(config)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    raw = config.to_dict()
    raw.pop("scale_decoder_outputs", None)
    raw.pop("tie_word_embeddings", None)
    if tied:
        state["lm_head.weight"] = state["shared.weight"]
    else:
        raw["tie_word_embeddings"] = False
        state["lm_head.weight"] = torch.randn_like(state["shared.weight"])  # its own head
    (dest / "config.json").write_text(json.dumps(raw))
    if weights == "bin":
        torch.save(state, dest / "pytorch_model.bin")
    else:
        from safetensors.torch import save_file

        drop = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight") + (("lm_head.weight",) if tied else ())
        save_file({k: v.contiguous() for k, v in state.items() if k not in drop}, str(dest / "model.safetensors"))
    return dest
