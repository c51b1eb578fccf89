"""LLaDA's and Dream's hub code under the pinned transformers (docs/ARCHITECTURE.md, "Loading remote-code models").

The paper's model (LLaDA-8B-Instruct, §4) and Dream ship their own modelling files, written for
transformers 4.38 and 4.46. Under the 5.x line that dlmpaper pins they fail in five ways, each
imitated by the stand-ins in ``tests/upstream_like`` and fixed here by a small step applied to the
*loaded classes in memory* (files in the user's Hugging Face cache are never edited):

1. the model class never calls ``post_init()``, so 5.x's loader lacks ``all_tied_weights_keys``
   -> :func:`patch_remote_classes` runs ``post_init()`` after the class's own ``__init__``;
2. ``tie_weights(self)`` takes no arguments, 5.x passes ``recompute_mapping=``
   -> the patched method accepts and drops the new keywords;
3. 5.x configs no longer carry ``use_cache``, which LLaDA's ``forward`` reads
   -> :func:`prepare_config` sets ``use_cache = False`` (masked diffusion has no KV cache);
4. ``ROPE_INIT_FUNCTIONS`` has no ``"default"`` entry, and a ``GenerationConfig`` subclass defines
   ``validate(self, is_init=False)`` while 5.x calls ``validate(user_set_attributes=...)``
   -> the remote module sees a table with RoPE's standard frequencies, the ``validate`` drops keywords;
5. non-persistent rotary state is not in the checkpoint and 5.x's meta-device loading leaves it
   uninitialised -> :func:`repair_rotary_state` recomputes it from the config and then verifies it
   (finite, equal to base^(-2i/d)); a mismatch that cannot be repaired raises :class:`RemoteCodeError`.

Every failure while loading remote code surfaces as one :class:`RemoteCodeError` line naming the
model, the transformers version and the fix.
"""

from __future__ import annotations

import functools
import inspect
import sys
from typing import Any

import torch

__all__ = [
    "RemoteCodeError",
    "default_rope_parameters",
    "load_remote_model",
    "patch_remote_classes",
    "prepare_config",
    "remote_class",
    "repair_rotary_state",
]

_MARK = "_dlmpaper_compat"
_AUTO_KEYS = ("AutoModel", "AutoModelForMaskedLM", "AutoModelForCausalLM")


class RemoteCodeError(RuntimeError):
    """A model's own (remote) code failed to load or produced unusable state."""


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


def remote_error(name: str, what: str) -> RemoteCodeError:
    """One-line error: model, transformers version, fix."""
    return RemoteCodeError(
        f"{name}: its remote code failed under transformers {_transformers_version()}: {what}. "
        "Fix: pin the model to a known revision (--revision) or report the upstream change; "
        "dlmpaper's compatibility steps are listed in docs/ARCHITECTURE.md."
    )


# --------------------------------------------------------------------------- RoPE
def default_rope_parameters(config: Any = None, device: Any = None, seq_len: int | None = None, **kwargs: Any):
    """RoPE's standard inverse frequencies ``base^(-2i/d)`` and attention scaling 1.0.

    What transformers 4.x registered as ``ROPE_INIT_FUNCTIONS["default"]``; the signature accepts
    the 4.x legacy keywords (``base``, ``dim``) as well as a config.
    """
    base = kwargs.get("base")
    dim = kwargs.get("dim")
    if config is not None:
        base = getattr(config, "rope_theta", base)
        heads = getattr(config, "num_attention_heads", None)
        head_dim = getattr(config, "head_dim", None) or (config.hidden_size // heads if heads else None)
        dim = int(head_dim * getattr(config, "partial_rotary_factor", 1.0)) if head_dim else dim
    if base is None or dim is None:
        raise ValueError("default_rope_parameters needs a config with rope_theta/hidden_size/num_attention_heads")
    inv_freq = 1.0 / (
        float(base) ** (torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float) / dim)
    )
    return inv_freq, 1.0


# --------------------------------------------------------------------------- classes
def remote_class(source: str, config: Any, **hub_kwargs: Any) -> type:
    """The model class named by ``config.auto_map`` (AutoModel first), through transformers' own loader."""
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    auto_map = getattr(config, "auto_map", None) or {}
    ref = next((auto_map[k] for k in _AUTO_KEYS if k in auto_map), None)
    if ref is None:
        raise ValueError(f"{source}: config.json has no auto_map entry for {', '.join(_AUTO_KEYS)}")
    return get_class_from_dynamic_module(ref, source, **hub_kwargs)


def _remote_modules(cls: type) -> list[Any]:
    """The modules of the remote package that defined ``cls`` (its modelling, config, generation files)."""
    package = cls.__module__.rpartition(".")[0]
    return [m for name, m in list(sys.modules.items()) if m is not None and name.rpartition(".")[0] == package]


def _accepts(func: Any, name: str) -> bool:
    params = inspect.signature(func).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _patch_init(cls: type) -> None:
    original = cls.__init__

    @functools.wraps(original)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if "all_tied_weights_keys" not in self.__dict__:
            self.post_init()  # 5.x bookkeeping only: tied keys, no-split modules; no weight init

    cls.__init__ = __init__


def _patch_tie_weights(cls: type) -> None:
    original = cls.tie_weights

    @functools.wraps(original)
    def tie_weights(self, missing_keys: Any = None, recompute_mapping: bool = True, **_: Any) -> Any:
        return original(self)

    cls.tie_weights = tie_weights


def _patch_validate(gen_cls: type) -> None:
    original = gen_cls.validate
    allowed = set(inspect.signature(original).parameters) - {"self"}

    @functools.wraps(original)
    def validate(self, *args: Any, **kwargs: Any) -> Any:
        return original(self, *args, **{k: v for k, v in kwargs.items() if k in allowed})

    gen_cls.validate = validate


def patch_remote_classes(cls: type) -> list[str]:
    """Apply the compatibility steps 1, 2 and 4 (module docstring) to ``cls`` and its package.

    Idempotent; returns the names of the steps applied (empty for code that needs none).
    """
    from transformers import GenerationConfig

    applied: list[str] = []
    if cls.__dict__.get(_MARK):
        return list(cls.__dict__[_MARK])
    try:
        calls_post_init = "post_init" in inspect.getsource(cls.__init__)
    except (OSError, TypeError):
        calls_post_init = False
    if not calls_post_init:
        _patch_init(cls)
        applied.append("post_init")
    if not _accepts(cls.tie_weights, "recompute_mapping"):
        _patch_tie_weights(cls)
        applied.append("tie_weights")
    for module in _remote_modules(cls):
        table = getattr(module, "ROPE_INIT_FUNCTIONS", None)
        if isinstance(table, dict) and "default" not in table:
            module.ROPE_INIT_FUNCTIONS = {**table, "default": default_rope_parameters}
            applied.append("rope_default")
        for value in list(vars(module).values()):
            if (
                isinstance(value, type)
                and issubclass(value, GenerationConfig)
                and value is not GenerationConfig
                and value.__module__ == module.__name__
                and not _accepts(value.validate, "user_set_attributes")
            ):
                _patch_validate(value)
                applied.append("generation_validate")
    setattr(cls, _MARK, tuple(applied))
    return applied


def prepare_config(config: Any) -> list[str]:
    """Compatibility step 3: give the config the keys 4.x configs carried and the remote code reads."""
    applied = []
    if "use_cache" not in config.__dict__:
        config.use_cache = False
        applied.append("use_cache")
    return applied


# --------------------------------------------------------------------------- rotary state
def _expected_inv_freq(module: torch.nn.Module, config: Any) -> torch.Tensor | None:
    cfg = getattr(module, "config", None) or config
    scaling = getattr(cfg, "rope_scaling", None)
    if scaling and scaling.get("rope_type", scaling.get("type", "default")) != "default":
        return None  # scaled RoPE: only finiteness can be checked
    n = module.inv_freq.numel()
    theta = getattr(cfg, "rope_theta", None)
    if theta is None:
        return None
    dim = 2 * n
    return 1.0 / (float(theta) ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def _expected_sin_cos(cache: dict, config: Any) -> tuple[torch.Tensor, torch.Tensor]:
    sin = cache["rope_pos_sin"]
    dim = sin.shape[-1]
    theta = getattr(config, "rope_theta")
    inv_freq = 1.0 / (float(theta) ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
    freqs = torch.outer(torch.arange(sin.shape[-2], dtype=torch.float), inv_freq)
    positions = torch.cat((freqs, freqs), dim=-1)
    return positions.sin()[None, None], positions.cos()[None, None]


def repair_rotary_state(model: torch.nn.Module, name: str) -> int:
    """Compatibility step 5: recompute rotary state that loading left wrong, then verify all of it.

    Covers ``inv_freq`` buffers (Dream, Qwen2 and Llama-style code) and LLaDA's shared sin/cos
    cache (a dict of tensors on the rotary module). Returns how many tensors were recomputed;
    raises :class:`RemoteCodeError` when a tensor is non-finite or off its formula afterwards.
    """
    config = getattr(model, "config", None)
    repaired = 0
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        inv = module._buffers.get("inv_freq") if hasattr(module, "_buffers") else None
        if inv is not None:
            expected = _expected_inv_freq(module, config)
            if expected is not None:
                expected = expected.to(device=inv.device, dtype=inv.dtype)
                if not torch.allclose(inv, expected, rtol=1e-6, atol=0.0):
                    module._buffers["inv_freq"] = expected.clone()
                    if hasattr(module, "original_inv_freq"):
                        module.original_inv_freq = module._buffers["inv_freq"]
                    repaired += 1
                    inv = module._buffers["inv_freq"]
                ok = torch.equal(inv, expected)
            else:
                ok = bool(torch.isfinite(inv).all())
            if not ok:
                raise remote_error(name, f"rotary buffer {module_name}.inv_freq is wrong after loading")
        for value in vars(module).values():
            if not (isinstance(value, dict) and "rope_pos_sin" in value and id(value) not in seen):
                continue
            seen.add(id(value))
            sin, cos = value["rope_pos_sin"], value["rope_pos_cos"]
            exp_sin, exp_cos = _expected_sin_cos(value, getattr(module, "config", None) or config)
            exp_sin, exp_cos = exp_sin.to(sin.device, sin.dtype), exp_cos.to(cos.device, cos.dtype)
            if not (torch.allclose(sin, exp_sin, atol=1e-5) and torch.allclose(cos, exp_cos, atol=1e-5)):
                value["rope_pos_sin"], value["rope_pos_cos"] = exp_sin, exp_cos
                repaired += 1
    return repaired


# --------------------------------------------------------------------------- loading
def load_remote_model(
    source: str, name: str, *, dtype: torch.dtype, hub_kwargs: dict[str, Any], model_kwargs: dict[str, Any]
) -> tuple[torch.nn.Module, list[str]]:
    """Load a remote-code model with the compatibility steps; returns ``(model, steps applied)``.

    ``hub_kwargs`` (revision, local_files_only, trust_remote_code) go to the config, the class and the
    weights; ``model_kwargs`` (device_map, max_memory, ...) to ``from_pretrained`` only.
    """
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(source, **hub_kwargs)
        steps = prepare_config(config)
        cls = remote_class(source, config, **{k: v for k, v in hub_kwargs.items() if k != "trust_remote_code"})
        steps += patch_remote_classes(cls)
        model = cls.from_pretrained(source, config=config, dtype=dtype, **hub_kwargs, **model_kwargs)
    except (OSError, RemoteCodeError):
        raise
    except Exception as exc:  # noqa: BLE001 - remote code can raise anything; report it in one line
        raise remote_error(name, f"{type(exc).__name__}: {exc}".splitlines()[0]) from exc
    if repair_rotary_state(model, name):
        steps.append("rotary_recomputed")
    return model, steps
