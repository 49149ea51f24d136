"""GPT-2-style decoder-only transformer for continuous inputs (SPEC §3), vectorised over members.

Input projection, no positional information (the running average the tasks need is
permutation invariant), pre-LayerNorm blocks with causal multi-head self-attention and a
GELU MLP, final LayerNorm, linear readout. Every parameter has a leading member dim M;
inputs are (M, B, T, n_in), or (B, T, n_in) for a single network.
"""

import math
import numbers

import torch
import torch.nn as nn
import torch.nn.functional as F

import checks
import ensemble
from ensemble import with_member_dim


class Dropout(nn.Module):
    """torch.nn.Dropout (train mode only: zero with probability p, scale the rest by
    1/(1-p)), with the mask drawn as 31-bit random integers: on the CPU, torch's
    bernoulli_ draws cost more than the rest of the transformer's elementwise work."""

    fused = True  # False: torch's dropout (the reference)

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.fused:
            return F.dropout(x, self.p, self.training)
        if not self.training or self.p == 0:
            return x
        # random_() fills int32 uniformly on [0, 2^31 - 1] (explicit bounds take a slower
        # path): keep with probability 1 - p, to 2^-31. (The uint8 view only makes the
        # conversion to x's dtype take the fast path.)
        bits = torch.empty(x.shape, dtype=torch.int32, device=x.device).random_()
        keep = (bits >= round(self.p * 2 ** 31)).view(torch.uint8)
        return x * keep.to(x.dtype).mul_(1 / (1 - self.p))

    def extra_repr(self):
        return f"p={self.p}"


class CausalSelfAttention(nn.Module):

    fused = True  # False: the plain reference attention (tests, benchmarks)

    def __init__(self, n_embd, n_head, dropout, n_members):
        super().__init__()
        self.n_head = n_head
        self.c_attn = ensemble.Linear(n_embd, 3 * n_embd, n_members)
        self.c_proj = ensemble.Linear(n_embd, n_embd, n_members)
        self.attn_dropout = Dropout(dropout)
        self.resid_dropout = Dropout(dropout)

    def qkv(self, x):
        """Queries, keys, values per head, each (M, B, T, n_head, head_dim)."""
        M, B, T, C = x.shape
        return [z.view(M, B, T, self.n_head, C // self.n_head)
                for z in self.c_attn(x).split(C, dim=-1)]

    def forward(self, x):
        if not self.fused:
            return self._reference_forward(x)
        M, B, T, C = x.shape
        n_head, head_dim = self.n_head, C // self.n_head
        # q, k, v as (M·B·n_head, T, head_dim) in one copy, so that every product below is
        # one batched matmul over contiguous heads (no per-product copies).
        q, k, v = (self.c_attn(x).view(M * B, T, 3, n_head, head_dim).permute(2, 0, 3, 1, 4)
                   .reshape(3, M * B * n_head, T, head_dim))
        # Causal scores in one op: q kᵀ / sqrt(head_dim) + (0 on and below the diagonal, -inf above).
        future = torch.full((T, T), float("-inf"), dtype=x.dtype, device=x.device).triu_(1)
        att = torch.baddbmm(future, q, k.transpose(1, 2), alpha=1 / math.sqrt(head_dim))
        att = self.attn_dropout(att.softmax(dim=-1))
        y = torch.bmm(att, v).view(M, B, n_head, T, head_dim).transpose(2, 3).reshape(M, B, T, C)
        return self.resid_dropout(self.c_proj(y))

    def _reference_forward(self, x):
        M, B, T, C = x.shape
        q, k, v = [z.transpose(2, 3) for z in self.qkv(x)]  # (M, B, n_head, T, head_dim)
        att = q @ k.transpose(-2, -1) / math.sqrt(k.shape[-1])
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        att = self.attn_dropout(att.masked_fill(future, float("-inf")).softmax(dim=-1))
        y = (att @ v).transpose(2, 3).reshape(M, B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):

    def __init__(self, n_embd, dropout, n_members):
        super().__init__()
        self.c_fc = ensemble.Linear(n_embd, 4 * n_embd, n_members)
        self.c_proj = ensemble.Linear(4 * n_embd, n_embd, n_members)
        self.dropout = Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):

    def __init__(self, n_embd, n_head, dropout, n_members):
        super().__init__()
        self.ln_1 = ensemble.LayerNorm(n_embd, n_members)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, n_members)
        self.ln_2 = ensemble.LayerNorm(n_embd, n_members)
        self.mlp = MLP(n_embd, dropout, n_members)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Decoder-only transformer: wte -> dropout -> n_layer blocks -> ln_f -> rec_to_out."""

    def __init__(self, n_in, n_out, n_embd=64, n_layer=1, n_head=8, dropout=0.1, n_members=1):
        super().__init__()
        for name, value in [("n_in", n_in), ("n_out", n_out), ("n_embd", n_embd),
                            ("n_layer", n_layer), ("n_head", n_head), ("n_members", n_members)]:
            checks.positive_int(name, value)
        if n_embd % n_head:
            checks.fail("n_head", n_head, f"a divisor of n_embd={n_embd}")
        if not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
            checks.fail("dropout", dropout, "a number in [0, 1)")
        self.n_members = n_members
        self.wte = ensemble.Linear(n_in, n_embd, n_members)
        self.drop = Dropout(dropout)
        self.h = nn.ModuleList([Block(n_embd, n_head, dropout, n_members) for _ in range(n_layer)])
        self.ln_f = ensemble.LayerNorm(n_embd, n_members)
        self.rec_to_out = ensemble.Linear(n_embd, n_out, n_members)
        # GPT-2 init; the projections into the residual stream are scaled down with depth.
        with torch.no_grad():
            for name, module in self.named_modules():
                if isinstance(module, ensemble.Linear):
                    std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("c_proj") else 0.02
                    module.weight.normal_(0, std)
                    module.bias.zero_()

    @property
    def hidden_size(self):
        return self.ln_f.n

    @property
    def fused(self):
        """Whether the fast attention and dropout run; False: the plain reference (tests,
        benchmarks)."""
        return self.h[0].attn.fused

    @fused.setter
    def fused(self, value):
        for module in self.modules():
            if isinstance(module, (Dropout, CausalSelfAttention)):
                module.fused = value

    def forward(self, u, noise=None):
        """u (M, B, T, n_in) -> (hidden (M, B, T, n_embd) after ln_f, outputs (M, B, T, n_out)).

        noise is accepted for a signature uniform with RNN, and ignored.
        """
        u, squeeze = with_member_dim(u, self.n_members, 4, "u")
        x = self.drop(self.wte(u))
        for block in self.h:
            x = block(x)
        hidden = self.ln_f(x)
        outputs = self.rec_to_out(hidden)
        return (hidden[0], outputs[0]) if squeeze else (hidden, outputs)

    def head_values(self, u, layer=-1):
        """Per-head value vectors of a layer, (M, B, T, n_head, head_dim) (no member dim if u had none)."""
        n_layer = len(self.h)
        if not isinstance(layer, int) or not -n_layer <= layer < n_layer:
            raise ValueError(f"layer must be an int in [{-n_layer}, {n_layer}), got {layer!r}")
        u, squeeze = with_member_dim(u, self.n_members, 4, "u")
        x = self.drop(self.wte(u))
        for block in self.h[:layer % n_layer]:
            x = block(x)
        block = self.h[layer]
        v = block.attn.qkv(block.ln_1(x))[2]
        return v[0] if squeeze else v
