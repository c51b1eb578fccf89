"""Stand-in for Dream's remote ``generation_utils.py`` (tests only; see ../README.md).

``DreamGenerationConfig`` sets its fields itself and defines ``validate(self, is_init=False)``
(transformers 5.x calls ``validate(user_set_attributes=...)``); ``diffusion_generate`` reads
``generation_config.eps`` and ``steps``. The decoder here is a small greedy "origin"-style loop
(commit the most confident masked positions each step), enough to exercise the interface.
"""

import torch
from transformers import GenerationConfig, __version__


class DreamGenerationConfig(GenerationConfig):
    def __init__(self, **kwargs):
        self.temperature = kwargs.pop("temperature", 0.0)
        self.max_length = kwargs.pop("max_length", 20)
        self.max_new_tokens = kwargs.pop("max_new_tokens", None)
        self.eps = kwargs.pop("eps", 1e-3)
        self.steps = kwargs.pop("steps", 512)
        self.alg = kwargs.pop("alg", "origin")
        self.num_return_sequences = kwargs.pop("num_return_sequences", 1)
        self.return_dict_in_generate = kwargs.pop("return_dict_in_generate", False)
        self.output_history = kwargs.pop("output_history", False)
        self.mask_token_id = kwargs.pop("mask_token_id", None)
        self.pad_token_id = kwargs.pop("pad_token_id", None)
        self.bos_token_id = kwargs.pop("bos_token_id", None)
        self.eos_token_id = kwargs.pop("eos_token_id", None)
        self.generation_kwargs = kwargs.pop("generation_kwargs", {})
        self._from_model_config = kwargs.pop("_from_model_config", False)
        self._commit_hash = kwargs.pop("_commit_hash", None)
        self.transformers_version = kwargs.pop("transformers_version", __version__)
        if not self._from_model_config:
            for key, value in kwargs.items():
                setattr(self, key, value)
        self.validate(is_init=True)

    def validate(self, is_init=False):
        pass


class DreamGenerationMixin:
    @torch.no_grad()
    def diffusion_generate(self, inputs, generation_config=None, **kwargs):
        config = generation_config if generation_config is not None else self.generation_config
        steps = kwargs.get("steps", config.steps)
        eps = config.eps
        max_new = kwargs.get("max_new_tokens", config.max_new_tokens) or 16
        mask_id = config.mask_token_id
        x = torch.cat(
            [inputs, torch.full((inputs.shape[0], max_new), mask_id, dtype=inputs.dtype, device=inputs.device)], 1
        )
        timesteps = torch.linspace(1, eps, steps + 1, device=x.device)
        for i in range(steps):
            masked = x == mask_id
            if not masked.any():
                break
            logits = self(x).logits
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
            conf, pred = logits.float().softmax(-1).max(-1)
            conf = torch.where(masked, conf, torch.tensor(-1.0, device=x.device))
            t, s = timesteps[i], timesteps[i + 1]
            n = int(masked.sum(-1).min()) if i == steps - 1 else max(1, int(masked.sum(-1).min() * (1 - s / t)))
            idx = conf.topk(n, dim=-1).indices
            x.scatter_(1, idx, pred.gather(1, idx))
        return x
