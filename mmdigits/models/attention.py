"""Multi-head attention on batch-first tokens with torch's own modules' parameters.

`nn.MultiheadAttention` (and `nn.TransformerEncoderLayer`, which calls it) turns batch-first
tokens to sequence-first and back, and splits its packed projection through zero-filled
gradients: copies and fills that cost the flagship 4-5 % of its training step on the CPU
(docs/benchmarks.md). These functions do the same arithmetic on the modules' own parameters,
with the same attention dropout, so the state_dict keys and every checkpoint stay as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def attend(attention: nn.MultiheadAttention, query: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
    """`attention(query, context, context, need_weights=False)[0]` for (B, T, d) tokens; self-
    attention when `context` is None (one projection for queries, keys and values)."""
    batch, length, width = query.shape
    heads = attention.num_heads

    def split_heads(projected: torch.Tensor, parts: int) -> tuple[torch.Tensor, ...]:  # -> parts x (B, h, T, d/h)
        return projected.unflatten(-1, (parts, heads, width // heads)).permute(2, 0, 3, 1, 4).unbind(0)

    if context is None:
        q, k, v = split_heads(F.linear(query, attention.in_proj_weight, attention.in_proj_bias), 3)
    else:
        weight_q, weight_kv = attention.in_proj_weight.split([width, 2 * width])
        bias_q, bias_kv = attention.in_proj_bias.split([width, 2 * width])
        (q,) = split_heads(F.linear(query, weight_q, bias_q), 1)
        k, v = split_heads(F.linear(context, weight_kv, bias_kv), 2)
    dropout = attention.dropout if attention.training else 0.0
    attended = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)  # (B, h, T, d/h)
    return attention.out_proj(attended.transpose(1, 2).reshape(batch, length, width))


def encode(encoder: nn.TransformerEncoder, tokens: torch.Tensor) -> torch.Tensor:
    """`encoder(tokens)` for a stack of pre-norm (`norm_first=True`) layers without masks."""
    for layer in encoder.layers:
        tokens = tokens + layer.dropout1(attend(layer.self_attn, layer.norm1(tokens)))
        tokens = tokens + layer.dropout2(
            layer.linear2(layer.dropout(layer.activation(layer.linear1(layer.norm2(tokens)))))
        )
    return tokens if encoder.norm is None else encoder.norm(tokens)
