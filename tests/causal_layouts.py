"""Small decoder-only checkpoint directories in the hub's layout (a test helper, not a test module): a random-init
Llama, Qwen2 or GPT-2 (`save_pretrained`: config.json, model.safetensors, generation_config.json) with a byte-level
BPE tokenizer (tokenizer.json, tokenizer_config.json), optionally carrying a chat template as instruct models do.
"""

from pathlib import Path

CORPUS = ["Question: Which colour is the ball?\nContext: N/A\nOptions: (A) red (B) blue\nAnswer:",
          "The answer is (A).", "Question: Which of these states is farthest north?\nSolution:",
          "Solution: West Virginia is farthest north. The answer is (B).", "The object is blue. BECAUSE:"] * 10

# A ChatML-style template (the shape Qwen's and SmolLM2's instruct tokenizers carry).
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def make_causal_dir(dest: Path, family: str, *, chat: bool = False, seed: int = 0, layers: int = 2) -> Path:
    import torch
    from mmcot_plugins.scratch_llama import train_tokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tokenizer = train_tokenizer(CORPUS, 400)
    if chat:
        tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
        tokenizer.chat_template = CHAT_TEMPLATE
        tokenizer.eos_token = "<|im_end|>"
    if family == "gpt2":
        tokenizer.pad_token = None  # GPT-2 has no pad token: mmcot pads with EOS
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                             num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                                             **ids))
    elif family == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                             num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                                             tie_word_embeddings=True, **ids))
    else:
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=layers, n_head=4,
                                           n_positions=256, **ids))
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest
