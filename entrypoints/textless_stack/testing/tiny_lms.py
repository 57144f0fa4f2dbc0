"""Tiny random TWIST-style speech LMs (Hugging Face OPT or LLaMA, as TWIST-350M/1.3B and TWIST-7B are),
saved as a hub directory with TWIST's `offset` in config.json. For tests and the image smoke tests."""

from __future__ import annotations

from pathlib import Path

import torch


def make_twist(root: Path, arch: str = "opt", units: int = 5, offset: int = 4, seed: int = 0,
               weights: str = "safetensors", only_units: bool = True) -> Path:
    """only_units: the generation config suppresses the tokens below `offset`, so every sampled token is a
    unit (random weights would sample the special tokens often). weights: "safetensors" or "bin"
    (pytorch_model.bin, as 2023 checkpoints are saved)."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    common = dict(vocab_size=offset + units, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                  max_position_embeddings=64, pad_token_id=1, bos_token_id=None, eos_token_id=None)
    torch.manual_seed(seed)
    if arch == "opt":
        model = transformers.OPTForCausalLM(transformers.OPTConfig(ffn_dim=32, word_embed_proj_dim=16,
                                                                   init_std=0.5, **common))
    elif arch == "llama":
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
            intermediate_size=32, num_key_value_heads=2, initializer_range=0.5, **common))
    else:
        raise ValueError(arch)
    model.config.offset = offset
    if only_units:
        model.generation_config.suppress_tokens = list(range(offset))
    root = Path(root)
    model.save_pretrained(root)
    if weights == "bin":
        (root / "model.safetensors").unlink()
        torch.save(model.state_dict(), root / "pytorch_model.bin")
    return root
