"""Hugging Face transformers models built from random-init configs (never downloads).

They exercise what real LLM pruning meets: BERT's separate q/k/v Linears and pooler,
GPT-2's fused c_attn *Conv1D* (weight laid out (in, out)) and tied lm_head, Llama's
grouped-query attention (4 query heads share 2 kv heads), RMSNorm, SwiGLU MLP and
rotary embeddings. `transformers` is imported lazily so `import zoo` stays light.
"""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn as nn

from zoo.init import finalize

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VOCAB = 100
SEQ_LEN = 12


def _text_inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, VOCAB, (1, SEQ_LEN), generator=g)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}


def llama_config(
    num_layers: int,
    hidden: int,
    heads: int,
    kv_heads: int,
    intermediate: int,
    vocab: int,
    **kwargs: Any,
):
    """LlamaConfig for building bigger models in benchmarks, e.g. Llama-7B:
    llama_config(32, 4096, 32, 32, 11008, 32000)."""
    from transformers import LlamaConfig

    kwargs.setdefault("max_position_embeddings", 2048)
    kwargs.setdefault("tie_word_embeddings", False)
    kwargs.setdefault("use_cache", False)
    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        **kwargs,
    )


def bert_base_config(**kwargs: Any):
    """BertConfig of bert-base-uncased (hidden 768, 12 layers, 12 heads, 3072 MLP, vocab 30522)."""
    from transformers import BertConfig

    kwargs.setdefault("use_cache", False)
    return BertConfig(**kwargs)


def _bert(attn_implementation: str) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=64,
        num_labels=2,
        use_cache=False,
        attn_implementation=attn_implementation,
    )
    return finalize(BertForSequenceClassification(config)), _text_inputs()


def hf_bert() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """BertForSequenceClassification (hidden 64, 2 layers, 4 heads), SDPA attention."""
    return _bert("sdpa")


def hf_bert_eager() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """Same BERT with attn_implementation="eager" (explicit matmul/softmax attention)."""
    return _bert("eager")


def hf_gpt2() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """GPT2LMHeadModel (n_embd 64, 2 layers, 4 heads): fused Conv1D c_attn, tied lm_head."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=VOCAB,
        n_positions=64,
        n_embd=64,
        n_layer=2,
        n_head=4,
        use_cache=False,
        tie_word_embeddings=True,
        bos_token_id=VOCAB - 1,
        eos_token_id=VOCAB - 1,
        attn_implementation="sdpa",
    )
    return finalize(GPT2LMHeadModel(config)), _text_inputs()


def hf_llama_gqa() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """LlamaForCausalLM with GQA (4 q heads, 2 kv heads), RMSNorm, SwiGLU, RoPE."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    config = llama_config(2, 64, 4, 2, 128, VOCAB, max_position_embeddings=64, attn_implementation="sdpa")
    return finalize(LlamaForCausalLM(config)), _text_inputs()
