"""nanoGPT's model (Karpathy, model.py) transcribed into PyTorch: the reference that tinyllm's GPT
is checked against (tests/models/test_models.py) and trained beside (benchmarks/train_vs_torch.py).

The module tree and parameter names are nanoGPT's, so `load_state_dict` takes tinyllm's
`GPT.state_dict()` as it is. Condensed: no dropout (both sides run with dropout 0), no
generate, no weight init (the weights always come from tinyllm). Imports torch when called,
so importing this file does not need PyTorch.
"""


def nanogpt_torch(cfg):
    """A torch.nn.Module for the GPTConfig `cfg`: forward(idx, targets) → (logits, loss)."""
    import torch
    import torch.nn as tnn
    import torch.nn.functional as F

    class CausalSelfAttention(tnn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = tnn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
            self.c_proj = tnn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)

        def forward(self, x):
            B, T, C = x.size()
            q, k, v = self.c_attn(x).split(cfg.n_embd, dim=2)
            q, k, v = (
                t.view(B, T, cfg.n_head, C // cfg.n_head).transpose(1, 2) for t in (q, k, v)
            )  # (B, nh, T, hs)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))

    class MLP(tnn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc = tnn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
            self.gelu = tnn.GELU()
            self.c_proj = tnn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)

        def forward(self, x):
            return self.c_proj(self.gelu(self.c_fc(x)))

    class Block(tnn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = tnn.LayerNorm(cfg.n_embd, bias=cfg.bias)
            self.attn = CausalSelfAttention()
            self.ln_2 = tnn.LayerNorm(cfg.n_embd, bias=cfg.bias)
            self.mlp = MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class NanoGPT(tnn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = tnn.ModuleDict(
                dict(
                    wte=tnn.Embedding(cfg.vocab_size, cfg.n_embd),
                    wpe=tnn.Embedding(cfg.block_size, cfg.n_embd),
                    h=tnn.ModuleList([Block() for _ in range(cfg.n_layer)]),
                    ln_f=tnn.LayerNorm(cfg.n_embd, bias=cfg.bias),
                )
            )
            self.lm_head = tnn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
            self.transformer.wte.weight = self.lm_head.weight  # weight tying

        def forward(self, idx, targets):
            pos = torch.arange(idx.size(1))
            x = self.transformer.wte(idx) + self.transformer.wpe(pos)
            for block in self.transformer.h:
                x = block(x)
            logits = self.lm_head(self.transformer.ln_f(x))
            loss = F.cross_entropy(
                logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1
            )
            return logits, loss

    return NanoGPT()
