"""Stand-in for LLaDA's remote ``modeling_llada.py`` (tests only; see ../README.md).

Our own small re-implementation of the upstream *interface*, not its code: Llama-style blocks
(RMSNorm, q/k/v/attn_out, SwiGLU ff_proj/up_proj/ff_out, RoPE), bidirectional attention, no
timestep input, unshifted logits. What the tests rely on being faithful:

- ``LLaDAModel`` is a plain ``nn.Module``; ``LLaDAModelLM(PreTrainedModel)`` builds it in
  ``__init__`` and never calls ``post_init()`` (transformers 5.x then lacks ``all_tied_weights_keys``);
- ``tie_weights(self)`` takes no arguments (5.x passes ``recompute_mapping=...``);
- ``forward(use_cache=None)`` reads ``self.config.use_cache`` (missing on 5.x configs);
- the rotary sin/cos cache is computed at construction on an explicit CPU device and kept in a
  ``BufferCache`` dict, not as module buffers;
- the 2-D ``attention_mask`` becomes an additive ``finfo.min`` bias on padded keys;
  ``IGNORE_ATTENTION_MASK = True`` (set by the test builder) imitates copies that accept it and drop it.
"""

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_llada import MODEL_CONFIG_FIELDS, LLaDAConfig, ModelConfig

IGNORE_ATTENTION_MASK = False


class BufferCache(dict):
    """Tensors shared by every block (rotary sin/cos), outside the module's state dict."""


class RMSLayerNorm(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.eps = config.rms_norm_eps
        self.weight = nn.Parameter(torch.ones(config.d_model, device=config.init_device))

    def forward(self, x):
        with torch.autocast(enabled=False, device_type=x.device.type):
            og = x.dtype
            x = x.float()
            x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
            x = x.to(og)
        return self.weight * x


class RotaryEmbedding(nn.Module):
    def __init__(self, config: ModelConfig, cache: BufferCache):
        super().__init__()
        self.config = config
        self.cache = cache
        self.rope_theta = config.rope_theta
        self.get_rotary_embedding(config.max_sequence_length, torch.device("cpu"))

    def get_rotary_embedding(self, seq_len, device):
        sin, cos = self.cache.get("rope_pos_sin"), self.cache.get("rope_pos_cos")
        if sin is not None and sin.shape[-2] >= seq_len:
            if sin.device != device:
                sin, cos = sin.to(device), cos.to(device)
                self.cache["rope_pos_sin"], self.cache["rope_pos_cos"] = sin, cos
            return sin[:, :, :seq_len, :], cos[:, :, :seq_len, :]
        dim = self.config.d_model // self.config.n_heads
        inv_freq = 1.0 / (self.rope_theta ** (torch.arange(0, dim, 2, device=device, dtype=torch.float) / dim))
        seq = torch.arange(seq_len, device=device, dtype=torch.float)
        freqs = torch.outer(seq, inv_freq)
        positions = torch.cat((freqs, freqs), dim=-1)
        sin, cos = positions.sin()[None, None], positions.cos()[None, None]
        self.cache["rope_pos_sin"], self.cache["rope_pos_cos"] = sin, cos
        return sin, cos

    @staticmethod
    def rotate_half(x):
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((-x2, x1), dim=-1)

    def forward(self, q, k):
        q_, k_ = (q.float(), k.float()) if self.config.rope_full_precision else (q, k)
        sin, cos = self.get_rotary_embedding(k_.shape[-2], q_.device)
        sin, cos = sin.type_as(q_), cos.type_as(q_)
        q_ = (q_ * cos + self.rotate_half(q_) * sin).to(q_.dtype)
        k_ = (k_ * cos + self.rotate_half(k_) * sin).to(k_.dtype)
        return q_.type_as(q), k_.type_as(k)


class LLaDALlamaBlock(nn.Module):
    def __init__(self, layer_id: int, config: ModelConfig, cache: BufferCache):
        super().__init__()
        self.config = config
        d, hidden = config.d_model, config.mlp_hidden_size or config.mlp_ratio * config.d_model
        n_kv = config.n_kv_heads or config.n_heads
        head_dim = d // config.n_heads
        bias, dev = config.include_bias, config.init_device
        self.attn_norm = RMSLayerNorm(config)
        self.ff_norm = RMSLayerNorm(config)
        self.q_proj = nn.Linear(d, d, bias=bias, device=dev)
        self.k_proj = nn.Linear(d, n_kv * head_dim, bias=bias, device=dev)
        self.v_proj = nn.Linear(d, n_kv * head_dim, bias=bias, device=dev)
        self.attn_out = nn.Linear(d, d, bias=bias, device=dev)
        self.ff_proj = nn.Linear(d, hidden, bias=bias, device=dev)
        self.up_proj = nn.Linear(d, hidden, bias=bias, device=dev)
        self.ff_out = nn.Linear(hidden, d, bias=bias, device=dev)
        self.rotary_emb = RotaryEmbedding(config, cache)

    def attention(self, q, k, v, attention_bias):
        B, T, C = q.shape
        nh, n_kv = self.config.n_heads, self.config.n_kv_heads or self.config.n_heads
        q = q.view(B, T, nh, C // nh).transpose(1, 2)
        k = k.view(B, T, n_kv, C // nh).transpose(1, 2)
        v = v.view(B, T, n_kv, C // nh).transpose(1, 2)
        q, k = self.rotary_emb(q, k)
        if nh != n_kv:
            k = k.repeat_interleave(nh // n_kv, dim=1)
            v = v.repeat_interleave(nh // n_kv, dim=1)
        mask = None if attention_bias is None else attention_bias.to(q.dtype)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False)
        return self.attn_out(att.transpose(1, 2).contiguous().view(B, T, C))

    def forward(self, x, attention_bias=None):
        h = self.attn_norm(x)
        x = x + self.attention(self.q_proj(h), self.k_proj(h), self.v_proj(h), attention_bias)
        h = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(h)) * self.up_proj(h))


class LLaDAModel(nn.Module):
    def __init__(self, config: ModelConfig, init_params: bool = True):
        super().__init__()
        self.config = config
        cache = BufferCache()
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.embedding_size or config.vocab_size, config.d_model, device=config.init_device),
                ln_f=RMSLayerNorm(config),
                blocks=nn.ModuleList(LLaDALlamaBlock(i, config, cache) for i in range(config.n_layers)),
            )
        )
        if not config.weight_tying:
            self.transformer.update(
                {
                    "ff_out": nn.Linear(
                        config.d_model,
                        config.embedding_size or config.vocab_size,
                        bias=config.include_bias,
                        device=config.init_device,
                    )
                }
            )

    def forward(self, input_ids, attention_mask=None):
        x = self.transformer.wte(input_ids)
        if self.config.input_emb_norm:
            x = x * self.config.d_model**0.5
        bias = None
        if attention_mask is not None and not IGNORE_ATTENTION_MASK and 0.0 in attention_mask:
            keep = attention_mask.to(torch.float).view(input_ids.shape[0], -1)[:, None, None, :]
            bias = (1.0 - keep) * torch.finfo(torch.float).min
        for block in self.transformer.blocks:
            x = block(x, attention_bias=bias)
        x = self.transformer.ln_f(x)
        if self.config.weight_tying:
            logits = F.linear(x, self.transformer.wte.weight, None)
        else:
            logits = self.transformer.ff_out(x)
        if self.config.scale_logits:
            logits = logits / math.sqrt(self.config.d_model)
        return logits


def create_model_config_from_pretrained_config(config: LLaDAConfig) -> ModelConfig:
    return ModelConfig(**{name: getattr(config, name) for name in MODEL_CONFIG_FIELDS})


class LLaDAModelLM(PreTrainedModel):
    config_class = LLaDAConfig
    base_model_prefix = "model"
    _no_split_modules = ["LLaDALlamaBlock"]

    def __init__(self, config: LLaDAConfig, model: Optional[LLaDAModel] = None, init_params: bool = False):
        super().__init__(config)
        if model is None:
            model_config = create_model_config_from_pretrained_config(config)
            model_config.init_device = "cpu"
            model = LLaDAModel(model_config, init_params=init_params)
        self.model = model

    def forward(
        self,
        input_ids=None,
        inputs_embeds=None,
        attention_mask=None,
        attention_bias=None,
        past_key_values=None,
        labels=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        cache_position=None,
    ):
        if use_cache is None:
            use_cache = self.config.use_cache
        assert past_key_values is None and not use_cache, "The kvcache is not supported for MDM."
        logits = self.model(input_ids, attention_mask=attention_mask)
        return CausalLMOutputWithPast(logits=logits)

    def get_input_embeddings(self):
        return self.model.transformer.wte

    def set_input_embeddings(self, value):
        self.model.transformer.wte = value

    def get_output_embeddings(self):
        return self.model.transformer.wte if self.config.weight_tying else self.model.transformer.ff_out

    def set_output_embeddings(self, value):
        if self.config.weight_tying:
            self.model.transformer.wte = value
        else:
            self.model.transformer.ff_out = value

    def tie_weights(self):
        if self.config.weight_tying:
            self.model.transformer.ff_out = self.model.transformer.wte
