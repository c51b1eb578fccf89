"""Stand-in for LLaDA's remote ``configuration_llada.py`` (tests only; see ../README.md).

Written for dlmpaper from a reading of the upstream interface: an OLMo-style ``ModelConfig``
dataclass that the model reads field by field, and ``LLaDAConfig(PretrainedConfig)`` with
``model_type = "llada"`` whose ``__init__(use_cache=False, **kwargs)`` hands ``use_cache`` to
``PretrainedConfig`` (transformers 5.x no longer keeps it, so ``config.use_cache`` is missing).
"""

from dataclasses import dataclass, fields

from transformers import PretrainedConfig


@dataclass
class ModelConfig:
    d_model: int = 64
    n_heads: int = 4
    n_kv_heads: int | None = None
    n_layers: int = 2
    mlp_hidden_size: int | None = 128
    mlp_ratio: int = 4
    max_sequence_length: int = 4096
    vocab_size: int = 126464
    embedding_size: int | None = 126464
    rope: bool = True
    rope_theta: float = 500000.0
    rope_full_precision: bool = True
    weight_tying: bool = False
    include_bias: bool = False
    rms_norm_eps: float = 1e-5
    block_type: str = "llama"
    layer_norm_type: str = "rms"
    activation_type: str = "silu"
    scale_logits: bool = False
    input_emb_norm: bool = False
    mask_token_id: int = 126336
    eos_token_id: int = 126081
    pad_token_id: int = 126081
    init_device: str | None = None


MODEL_CONFIG_FIELDS = tuple(f.name for f in fields(ModelConfig))


class LLaDAConfig(PretrainedConfig):
    model_type = "llada"
    keys_to_ignore_at_inference = ["past_key_values"]

    def __init__(self, use_cache: bool = False, **kwargs):
        values = dict(ModelConfig().__dict__)
        values.update(kwargs)
        values["use_cache"] = use_cache
        values.setdefault("architectures", ["LLaDAModelLM"])
        super().__init__(**values)

    @property
    def num_attention_heads(self):
        return self.n_heads

    @property
    def num_hidden_layers(self):
        return self.n_layers

    @property
    def hidden_size(self):
        return self.d_model
