"""One interface over every masked diffusion LM, and the registry of known models.

docs/ARCHITECTURE.md "Data flow": encode a chat prompt, append mask tokens, read logits, know the
mask / end-of-sequence ids. The paper's probe (§4, issue (i): 128 masks after a chat
prompt, one forward pass) and the marginal trap (§4, issue (ii)) both go through
:class:`DiffusionLM`, so they run unchanged on the embedded model, LLaDA and Dream.
Notebook 00_models tabulates :meth:`DiffusionLM.describe`; notebooks 03 and 04 call
:meth:`DiffusionLM.logits`.

Loading goes through :func:`load_model`; :func:`check_model_name` validates a name
without loading anything so callers (CLI, notebooks) can fail before expensive work.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from dlmpaper import paths
from dlmpaper.lm.hub import HubAccessError, hub_available, model_cached, offline

__all__ = [
    "DiffusionLM",
    "ModelSpec",
    "REGISTRY",
    "RETRAIN_COMMAND",
    "UnknownModelError",
    "HubAccessError",
    "ModelNotFoundError",
    "RemoteCodeRequiredError",
    "SPEC_KINDS",
    "TokenIdError",
    "check_model_name",
    "is_hub_id",
    "load_model",
    "parse_max_memory",
    "resolve_device",
    "resolve_dtype",
    "spec_for",
    "spec_kind_from_config",
    "with_overrides",
]

#: Command that rebuilds the shipped embedded checkpoint (named in every checkpoint error).
from dlmpaper.lm.embedded import RETRAIN_COMMAND  # noqa: E402  (one place for the recipe)

#: Checksum file shipped next to the embedded checkpoint (``<sha256>  <filename>`` lines).
from dlmpaper.provenance import MANIFEST_NAME, verify_manifest  # noqa: E402


# --------------------------------------------------------------------------- errors
class UnknownModelError(ValueError):
    """A model name that is neither registered, a local directory, nor a hub id."""


class ModelNotFoundError(FileNotFoundError):
    """A local checkpoint directory (e.g. the embedded model) is missing or incomplete."""


class RemoteCodeRequiredError(ValueError):
    """The model needs ``trust_remote_code=True`` and the caller did not pass it."""


class TokenIdError(ValueError):
    """Special-token ids that are missing or disagree between registry and tokenizer."""


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class ModelSpec:
    """How to load one model and which special ids it uses (docs/ARCHITECTURE.md "Facts the code relies on").

    Ids are resolved in this order: explicit ``*_id``; else the ``*_token`` string
    looked up in the tokenizer; else the tokenizer's own special tokens.

    ``attention_mask``: ``"2d"`` (HF standard ``(B, L)``) or ``"4d"`` (boolean
    ``(B, 1, L, L)``, what Dream's remote code expects). ``rotary``: positions enter
    only through rotary embeddings (LLaDA), so left padding with a key mask leaves the
    real tokens' logits unchanged even without ``position_ids``.
    """

    name: str
    hub_id: str | None
    adapter: str  # "embedded" | "llada" | "dream" | "masked_lm"
    family: str = "masked"
    mask_id: int | None = None
    eos_id: int | None = None
    eot_id: int | None = None
    pad_id: int | None = None
    shift_logits: bool = False
    dtype: str = "float32"
    description: str = ""
    licence: str = ""
    auto_class: str = "AutoModelForMaskedLM"
    needs_remote_code: bool = False
    mask_token: str | None = None
    eos_token: str | None = None
    eot_token: str | None = None
    attention_mask: str = "2d"
    rotary: bool = False


_LLADA = dict(
    adapter="llada",
    family="masked",
    mask_id=126336,
    eos_id=126081,
    eot_id=126348,
    pad_id=126081,
    shift_logits=False,
    dtype="bfloat16",
    licence="MIT",
    auto_class="AutoModel",
    needs_remote_code=True,
    mask_token="<|mdm_mask|>",
    eos_token="<|endoftext|>",
    eot_token="<|eot_id|>",
    attention_mask="2d",
    rotary=True,
)

#: Known models by short name (notebook 00_models lists them).
REGISTRY: dict[str, ModelSpec] = {
    "embedded": ModelSpec(
        name="embedded",
        hub_id=None,  # lives at dlmpaper.paths.EMBEDDED_MODEL
        adapter="embedded",
        dtype="float32",
        description="the project's small masked diffusion LM, trained by dlmpaper, shipped in data/",
        licence="MIT",
        mask_token="<|mdm_mask|>",
        eos_token="<|endoftext|>",
        eot_token="<|eot_id|>",
    ),
    "llada-8b-instruct": ModelSpec(
        name="llada-8b-instruct",
        hub_id="GSAI-ML/LLaDA-8B-Instruct",
        description="LLaDA 8B Instruct (Nie et al. 2025): the model the paper probes",
        **_LLADA,
    ),
    "llada-8b-base": ModelSpec(
        name="llada-8b-base",
        hub_id="GSAI-ML/LLaDA-8B-Base",
        description="LLaDA 8B Base (pre-trained only)",
        **_LLADA,
    ),
    "dream-7b-instruct": ModelSpec(
        name="dream-7b-instruct",
        hub_id="Dream-org/Dream-v0-Instruct-7B",
        adapter="dream",
        family="masked",
        mask_id=151666,
        eos_id=151643,
        eot_id=151645,  # <|im_end|> (Qwen2 vocabulary)
        pad_id=151643,
        shift_logits=True,
        dtype="bfloat16",
        description="Dream 7B Instruct (Ye et al. 2025): output at i-1 predicts token i",
        licence="Apache-2.0",
        auto_class="AutoModel",
        needs_remote_code=True,
        mask_token="<|mask|>",
        eos_token="<|endoftext|>",
        eot_token="<|im_end|>",
        attention_mask="4d",
        rotary=True,
    ),
}

_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}$")


def is_hub_id(name: str) -> bool:
    """True when ``name`` has the shape of a hub repository id (``org/name``)."""
    return bool(_HUB_ID_RE.match(name)) and "--" not in name and ".." not in name


def _known_names() -> str:
    return ", ".join(REGISTRY)


#: ``--spec`` values: which registry entry's ids and behaviour a checkpoint gets.
SPEC_KINDS = {"llada": "llada-8b-instruct", "dream": "dream-7b-instruct", "masked_lm": None}


def spec_kind_from_config(config: dict) -> str:
    """``"llada"``, ``"dream"`` or ``"masked_lm"`` from a ``config.json`` (``model_type``, ``auto_map``,
    ``architectures``): how a local directory or an unregistered hub id is recognised."""
    model_type = str(config.get("model_type", "")).lower()
    names = " ".join(
        [str(v) for v in (config.get("auto_map") or {}).values()] + [str(a) for a in config.get("architectures") or []]
    ).lower()
    if model_type == "llada" or "llada" in names:
        return "llada"
    if model_type == "dream" or "dream" in names:
        return "dream"
    return "masked_lm"


def spec_for(kind: str, name: str, source: str | None) -> ModelSpec:
    """A :class:`ModelSpec` of ``kind`` (see :data:`SPEC_KINDS`) for the checkpoint at ``source``."""
    if kind not in SPEC_KINDS:
        raise ValueError(f"unknown spec {kind!r}; use one of {', '.join(SPEC_KINDS)}")
    registered = SPEC_KINDS[kind]
    if registered is None:
        return ModelSpec(name=name, hub_id=source, adapter="masked_lm")
    return dataclasses.replace(REGISTRY[registered], name=name, hub_id=source)


def _read_local_config(path: Path) -> dict:
    import json

    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelNotFoundError(
            f"{path / 'config.json'} is not readable JSON ({exc}); restore or re-save the checkpoint"
        ) from exc
    if not isinstance(config, dict):
        raise ModelNotFoundError(
            f"{path / 'config.json'} does not hold a JSON object; restore or re-save the checkpoint"
        )
    return config


def check_model_name(name_or_path: str | os.PathLike, *, spec: str | None = None) -> ModelSpec:
    """Validate a model name cheaply (no loading, no network) and return its :class:`ModelSpec`.

    Accepts a registry short name, an existing local HF directory, or a hub id
    ``org/name``. A local directory whose ``config.json`` says LLaDA or Dream gets that
    model's ids and behaviour (:func:`spec_kind_from_config`); ``spec`` (``llada | dream |
    masked_lm``) overrides the recognition. Raises :class:`UnknownModelError` (listing the
    known names) or :class:`ModelNotFoundError` (embedded checkpoint / local directory incomplete).
    """
    name = os.fspath(name_or_path)
    if spec is not None and spec not in SPEC_KINDS:
        raise ValueError(f"unknown spec {spec!r}; use one of {', '.join(SPEC_KINDS)}")
    if name in REGISTRY and spec is None:
        found = REGISTRY[name]
        if found.hub_id is None:
            _require_local_checkpoint(Path(paths.EMBEDDED_MODEL), embedded=True)
        return found
    path = Path(name).expanduser()
    if path.is_dir():
        _require_local_checkpoint(path, embedded=False)
        kind = spec or spec_kind_from_config(_read_local_config(path))
        return spec_for(kind, path.name, str(path))
    if is_hub_id(name):
        if spec is not None:
            return spec_for(spec, name, name)
        for known in REGISTRY.values():  # a registered model named by its hub id
            if known.hub_id == name:
                return known
        return ModelSpec(name=name, hub_id=name, adapter="masked_lm")
    raise UnknownModelError(
        f"unknown model {name!r}: not a known name, an existing directory, or a hub id "
        f"'org/name'. Known names: {_known_names()}."
    )


_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.txt", "vocab.json")


def _require_local_checkpoint(path: Path, *, embedded: bool) -> None:
    """Fail before loading when a local checkpoint lacks its config, weights, tokenizer or (shipped
    embedded model) its ``MANIFEST.sha256``, naming what is missing and the fix."""
    if embedded:
        fix = f"restore data/embedded_model from the repository (`git checkout -- data/embedded_model`) or rebuild it with `{RETRAIN_COMMAND}`"
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"the embedded model checkpoint is missing at {path} (no config.json). Fix: {fix}."
            )
    else:
        fix = (
            "pass a directory written by save_pretrained (config.json, weights, tokenizer), a hub id, or one of: "
            + _known_names()
        )
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path} is not a Hugging Face model directory (no config.json). Fix: {fix}")
    missing = []
    if not any((path / f).is_file() for f in _WEIGHT_FILES) and not any(path.glob("*.safetensors")):
        missing.append("weights (model.safetensors)")
    if not any((path / f).is_file() for f in _TOKENIZER_FILES):
        missing.append("a tokenizer (tokenizer.json or tokenizer_config.json)")
    if embedded and not (path / MANIFEST_NAME).is_file():
        missing.append(f"its checksum file {MANIFEST_NAME} (the shipped model is only loaded when verified)")
    if missing:
        raise ModelNotFoundError(f"{path} lacks {' and '.join(missing)}. Fix: {fix}.")


# --------------------------------------------------------------------------- manifest
#: What a failed check of the shipped embedded checkpoint tells the user.
EMBEDDED_FIX = f"restore it from the repository (git) or retrain with `{RETRAIN_COMMAND}`"


# --------------------------------------------------------------------------- hub access
def _hub_error(hub_id: str, detail: str) -> HubAccessError:
    unset = ", unset HF_HUB_OFFLINE" if offline() else ""
    return HubAccessError(
        f"cannot load {hub_id!r}: {detail}. Fix: on a machine with hub access run "
        f"`hf download {hub_id}` (after `hf auth login` if the model is gated) "
        f"so it is in the local cache{unset}, or run offline with `--model embedded`."
    )


# --------------------------------------------------------------------------- device / dtype
_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"float32" | "bfloat16" | "float16"`` (or a ``torch.dtype``) -> ``torch.dtype``."""
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise ValueError(f"unsupported dtype {dtype}; use float32, bfloat16 or float16")
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use 'float32', 'bfloat16' or 'float16'")
    return _DTYPES[key]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or ``"auto"`` -> ``torch.device``, checked."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'auto'") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} requested but CUDA is not available on this machine; use device='cpu' (or 'auto')"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device={device!r} requested but MPS is not available; use device='cpu'")
    return dev


# --------------------------------------------------------------------------- adapter
_GENERIC_EOT = ("<|eot_id|>", "<|im_end|>", "<|end|>")


def _token_id(vocab: dict[str, int], token: str | None) -> int | None:
    """Id of an exact token string, or None when the vocabulary lacks it."""
    return None if token is None else vocab.get(token)


class DiffusionLM:
    """A masked diffusion LM behind one interface (docs/ARCHITECTURE.md "Data flow").

    Build it with :func:`load_model`, or wrap an in-memory model directly with
    ``DiffusionLM(model, tokenizer, spec)`` (e.g. right after training).

    Attributes: ``name``, ``hub_id`` (hub id or local path), ``revision``, ``family``,
    ``tokenizer``, ``model``, ``device``, ``dtype``, ``mask_id``, ``eos_id``, ``end_ids``
    (EOS and EoT where present), ``pad_id``, ``vocab_size`` (logit width),
    ``max_length`` (context limit or None), ``shift_logits``, ``spec`` and
    ``padding_mode`` (how left padding is kept invisible, see :meth:`logits`).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        spec: ModelSpec | None = None,
        *,
        hub_id: str | None = None,
        revision: str | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.spec = spec or ModelSpec(name=type(model).__name__, hub_id=hub_id, adapter="masked_lm")
        self.name = self.spec.name
        self.hub_id = hub_id if hub_id is not None else self.spec.hub_id
        self.revision = revision
        self.family = self.spec.family
        self.shift_logits = bool(self.spec.shift_logits)
        param = next(model.parameters())
        embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
        #: where inputs go: the input embeddings' device (the first device of a sharded model)
        self.device = getattr(getattr(embeddings, "weight", None), "device", None) or param.device
        self.dtype = param.dtype
        #: remote-code compatibility steps applied at load time (dlmpaper.lm.remote_code)
        self.compat_steps: tuple[str, ...] = ()
        self.vocab_size = self._logit_width()
        self.max_length = self._context_limit()
        self._resolve_ids()
        accepts = "position_ids" in inspect.signature(model.forward).parameters
        #: "position_ids": pass positions counting from 0 at the first real token;
        #: "relative": rotary model, the key mask alone suffices; "per_row": run each
        #: padded row alone (exact, slower). Chosen from the forward signature and spec.
        self.padding_mode = "position_ids" if accepts else ("relative" if self.spec.rotary else "per_row")

    # ---- construction helpers
    def _logit_width(self) -> int:
        head = self.model.get_output_embeddings() if hasattr(self.model, "get_output_embeddings") else None
        weight = getattr(head, "weight", None)
        if weight is not None:
            return int(weight.shape[0])
        return int(self.model.config.vocab_size)

    def _context_limit(self) -> int | None:
        cfg = self.model.config
        for key in ("max_position_embeddings", "max_sequence_length", "n_positions", "max_seq_len"):
            value = getattr(cfg, key, None)
            if isinstance(value, int) and value > 0:
                return value
        limit = getattr(self.tokenizer, "model_max_length", None)
        return int(limit) if isinstance(limit, int) and 0 < limit < 10**7 else None

    def _resolve_ids(self) -> None:
        spec, tok = self.spec, self.tokenizer
        vocab = tok.get_vocab()  # built once: large vocabularies make this costly

        def pick(explicit, token, fallback):
            if explicit is not None:
                return int(explicit)
            found = _token_id(vocab, token)
            if found is not None:
                return int(found)
            return None if fallback is None else int(fallback)

        mask = pick(spec.mask_id, spec.mask_token, getattr(tok, "mask_token_id", None))
        if mask is None:
            wanted = f" {spec.mask_token!r}" if spec.mask_token else ""
            raise TokenIdError(
                f"{self.name}: the tokenizer has no mask token{wanted}; a masked diffusion LM needs one. "
                "Register it as tokenizer.mask_token, or pass a ModelSpec with mask_id."
            )
        eos_fallback = tok.eos_token_id if tok.eos_token_id is not None else getattr(tok, "sep_token_id", None)
        eos = pick(spec.eos_id, spec.eos_token, eos_fallback)
        eot = pick(spec.eot_id, spec.eot_token, None)
        if eot is None and spec.adapter == "masked_lm":
            eot = next((i for i in (_token_id(vocab, t) for t in _GENERIC_EOT) if i is not None), None)
        pad = pick(spec.pad_id, None, tok.pad_token_id if tok.pad_token_id is not None else eos)
        if pad is None:
            pad = mask  # nothing better: padding is masked out of attention anyway
        n_tok = len(tok)
        for label, value in (("mask", mask), ("eos", eos), ("eot", eot), ("pad", pad)):
            if value is None:
                continue
            if not 0 <= value < min(n_tok, self.vocab_size):
                raise TokenIdError(
                    f"{self.name}: {label} id {value} is outside the tokenizer vocabulary ({n_tok} tokens) "
                    f"or the model's logits ({self.vocab_size}); tokenizer and registry entry disagree. "
                    "Check that the checkpoint matches the model name."
                )
        for label, value, token, strict in (
            ("mask", mask, spec.mask_token, True),
            ("eos", eos, spec.eos_token, True),
            ("eot", eot, spec.eot_token, False),
        ):
            if value is None or token is None:
                continue
            actual = tok.convert_ids_to_tokens(value)
            if actual != token:
                msg = (
                    f"{self.name}: {label} id {value} is {actual!r} in this tokenizer, expected {token!r}; "
                    "tokenizer and registry entry disagree."
                )
                if strict:
                    raise TokenIdError(msg)
                warnings.warn(msg, stacklevel=3)
        self.mask_id, self.eos_id, self.pad_id = mask, eos, pad
        self.eot_id = eot
        self.end_ids = tuple(dict.fromkeys(i for i in (eos, eot) if i is not None))

    # ---- text <-> ids
    def encode_chat(self, prompt: str, *, system: str | None = None) -> list[int]:
        """Token ids of a one-turn chat prompt, ready for masks to be appended (paper §4 probe).

        With a chat template: render it with ``add_generation_prompt=True`` and tokenize
        with ``add_special_tokens=False`` (LLaDA's recipe: the template already holds BOS).
        Without one: the plain encoding ``tokenizer(prompt)`` with its special tokens.
        User text is encoded as text: a prompt that contains the *string* of a special token
        (``"<|mdm_mask|>"``, ``"<|eot_id|>"``) gets that string's ordinary pieces, never the
        special id, so a prompt cannot inject masks or end its own turn.
        """
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        texts = [t for t in (system, prompt) if t]
        as_text = any(special in text for special in self._special_strings() for text in texts)
        if not getattr(self.tokenizer, "chat_template", None):
            if system:
                prompt = f"{system}\n\n{prompt}"
            return list(self.tokenizer(prompt, split_special_tokens=as_text)["input_ids"])

        def render(user: str, sys_text: str | None) -> str:
            messages = ([{"role": "system", "content": sys_text}] if sys_text else []) + [
                {"role": "user", "content": user}
            ]
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

        if not as_text:
            return list(self.tokenizer(render(prompt, system), add_special_tokens=False)["input_ids"])
        # Render with sentinels in place of the user's texts, tokenize the template's own parts as
        # usual and the user's texts with special-token strings split into ordinary pieces.
        sentinels = ("\u2063dlmpaper-system\u2063", "\u2063dlmpaper-user\u2063")
        template = render(sentinels[1], sentinels[0] if system else None)
        trims = sentinels[1] in render(f" {sentinels[1]} ", None) and f" {sentinels[1]} " not in render(
            f" {sentinels[1]} ", None
        )
        ids: list[int] = []
        for piece in re.split(f"({'|'.join(map(re.escape, sentinels))})", template):
            if piece in sentinels:
                text = system if piece == sentinels[0] else prompt
                text = text.strip() if trims else text
                ids += self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
            elif piece:
                ids += self.tokenizer(piece, add_special_tokens=False)["input_ids"]
        return list(ids)

    def _special_strings(self) -> list[str]:
        """Strings the tokenizer maps to special ids (its special and added special tokens)."""
        if not hasattr(self, "_specials"):
            tok = self.tokenizer
            added = [
                t.content for t in getattr(tok, "added_tokens_decoder", {}).values() if getattr(t, "special", False)
            ]
            self._specials = sorted(set(tok.all_special_tokens) | set(added))
        return self._specials

    @staticmethod
    def _as_id_list(ids: int | Iterable[int] | torch.Tensor) -> list[int]:
        if isinstance(ids, torch.Tensor):
            return [int(i) for i in ids.reshape(-1).tolist()]
        if isinstance(ids, int):
            return [ids]
        return [int(i) for i in ids]

    def token_text(self, ids: int | Iterable[int] | torch.Tensor) -> list[str]:
        """Readable text of each single token, e.g. ``[" cells", "<|endoftext|>"]`` (notebook 03 tables)."""
        return [
            self.tokenizer.decode([i], skip_special_tokens=False, clean_up_tokenization_spaces=False)
            for i in self._as_id_list(ids)
        ]

    def decode(self, ids: Iterable[int] | torch.Tensor, *, skip_special_tokens: bool = False) -> str:
        """Text of a token sequence (special tokens kept unless ``skip_special_tokens``)."""
        return self.tokenizer.decode(
            self._as_id_list(ids), skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False
        )

    # ---- tensors
    def batch(self, ids_list: Sequence[Sequence[int]], n_masks: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-pad ``ids_list`` with ``pad_id`` after appending ``n_masks`` mask tokens to each.

        Returns ``(input_ids, attention_mask)``, both ``long`` ``(B, L)`` on :attr:`device`;
        attention is 0 on padding. All masks therefore sit at the same columns
        ``L - n_masks ... L - 1`` (paper §4 probe: masks right after the prompt).
        """
        if n_masks < 0:
            raise ValueError(f"n_masks must be >= 0, got {n_masks}")
        if len(ids_list) == 0:
            raise ValueError("batch() needs at least one sequence")
        seqs = [self._as_id_list(s) + [self.mask_id] * n_masks for s in ids_list]
        if any(len(s) == 0 for s in seqs):
            raise ValueError("batch() got an empty sequence and n_masks=0: nothing to feed the model")
        length = max(len(s) for s in seqs)
        if self.max_length is not None and length > self.max_length:
            raise ValueError(
                f"sequence of {length} tokens exceeds {self.name}'s context of {self.max_length}; "
                "use fewer masks or a shorter prompt"
            )
        input_ids = torch.full((len(seqs), length), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(seqs), length), dtype=torch.long)
        for row, seq in enumerate(seqs):
            input_ids[row, length - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            attention[row, length - len(seq) :] = 1
        return input_ids.to(self.device), attention.to(self.device)

    # ---- forward
    def _raw_forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        kwargs: dict[str, Any] = {}
        if attention_mask is not None:
            if self.spec.attention_mask == "4d":
                # keys masked for every query; pad queries still see real keys (no all-masked rows)
                length = attention_mask.shape[1]
                kwargs["attention_mask"] = attention_mask.bool()[:, None, None, :].expand(-1, 1, length, -1)
            else:
                kwargs["attention_mask"] = attention_mask
            if self.padding_mode == "position_ids":
                kwargs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=input_ids, **kwargs)
        raw = out.logits if hasattr(out, "logits") else out[0]
        return raw.float().to(self.device)  # a sharded model returns logits on its last device

    def _align(self, raw: torch.Tensor, first: torch.Tensor | None) -> torch.Tensor:
        """Dream-style shift: out[:, i] = raw[:, i-1]; each row's first real position keeps its own."""
        if not self.shift_logits:
            return raw
        out = torch.cat([raw[:, :1], raw[:, :-1]], dim=1)
        if first is not None:
            rows = torch.arange(raw.shape[0], device=raw.device)
            out[rows, first] = raw[rows, first]
        return out

    @torch.no_grad()
    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.FloatTensor:
        """float32 logits ``(B, L, V)`` where position ``i`` predicts token ``i`` (inference only).

        Dream-style models (``shift_logits``) emit the prediction for token ``i`` at
        ``i-1``; this method shifts it back: ``out[:, i] = raw[:, i-1]``, and the first
        real position (column 0 without padding), which has no predecessor, gets its own
        raw output. Left padding (``attention_mask`` 0) does not change real positions'
        logits (see :attr:`padding_mode`); logits at padding positions are unspecified.
        Output stays on :attr:`device`.
        """
        input_ids = torch.as_tensor(input_ids, dtype=torch.long, device=self.device)
        if input_ids.dim() == 1:
            input_ids = input_ids[None]
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, L), got shape {tuple(input_ids.shape)}")
        if attention_mask is None or bool(torch.as_tensor(attention_mask).all()):
            return self._align(self._raw_forward(input_ids, None), None)
        attention_mask = torch.as_tensor(attention_mask, device=self.device).long().reshape(input_ids.shape)
        if bool((attention_mask[:, 1:] < attention_mask[:, :-1]).any()):
            raise ValueError("attention_mask must be left padding (zeros, then ones) as built by batch()")
        n_real = attention_mask.sum(-1)
        if bool((n_real == 0).any()):
            raise ValueError("a row of attention_mask is all zeros: no real tokens")
        first = input_ids.shape[1] - n_real
        if self.padding_mode == "per_row":
            out = torch.zeros((*input_ids.shape, self.vocab_size), dtype=torch.float32, device=self.device)
            for row in range(input_ids.shape[0]):
                start = int(first[row])
                alone = self._raw_forward(input_ids[row : row + 1, start:], None)
                out[row, start:] = self._align(alone, None)[0]
            return out
        return self._align(self._raw_forward(input_ids, attention_mask), first)

    def check_padding(self, *, tolerance: float | None = None) -> float:
        """Check that left padding leaves real positions' logits unchanged; fall back if not.

        Runs one short chat input alone and left-padded by 3 tokens. When the largest logit
        difference exceeds ``tolerance`` (default 1e-3 in float32; 0.5 in 16-bit types, whose
        rounding moves 8B-model logits by ~0.1 while an ignored mask moves them by several units),
        :attr:`padding_mode` becomes ``"per_row"`` (exact, one forward per row) and a warning says
        so once. Returns the measured difference (under the mode in force before the check).
        """
        if tolerance is None:
            tolerance = 1e-3 if self.dtype == torch.float32 else 0.5
        ids = self.encode_chat("Hello")[:12] + [self.mask_id] * 4
        alone_ids, _ = self.batch([ids])
        padded_ids, padded_mask = self.batch([ids, ids + [self.mask_id] * 3])
        alone = self.logits(alone_ids)[0]
        padded = self.logits(padded_ids, padded_mask)[0, 3:]
        diff = float((alone - padded).abs().max())
        if not diff <= tolerance and self.padding_mode != "per_row":
            warnings.warn(
                f"{self.name}: left padding changes its logits by {diff:.3g} (> {tolerance:g}): the model "
                "ignores its attention mask; each padded row is now computed alone (exact, slower).",
                stacklevel=2,
            )
            self.padding_mode = "per_row"
        return diff

    # ---- reporting
    def describe(self) -> dict[str, Any]:
        """One row for notebook 00_models' table of models."""
        return {
            "name": self.name,
            "hub_id": self.hub_id,
            "revision": self.revision,
            "family": self.family,
            "n_parameters": int(sum(p.numel() for p in self.model.parameters())),
            "mask_id": self.mask_id,
            "eos_id": self.eos_id,
            "end_ids": self.end_ids,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
        }

    def __repr__(self) -> str:
        return (
            f"DiffusionLM(name={self.name!r}, hub_id={self.hub_id!r}, dtype={self.dtype}, "
            f"device={self.device}, mask_id={self.mask_id}, end_ids={self.end_ids})"
        )


# --------------------------------------------------------------------------- loading
def parse_max_memory(text: str | None) -> dict[int | str, str] | None:
    """``"0=20GiB,1=20GiB,cpu=64GiB"`` -> ``{0: "20GiB", 1: "20GiB", "cpu": "64GiB"}`` (accelerate's
    ``max_memory``); None stays None. A malformed entry raises ``ValueError`` naming it."""
    if text is None or not str(text).strip():
        return None
    out: dict[int | str, str] = {}
    for part in str(text).split(","):
        key, sep, value = part.strip().partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", value, flags=re.IGNORECASE):
            raise ValueError(f"max memory entry {part.strip()!r} is not DEVICE=SIZE (e.g. 0=20GiB or cpu=64GiB)")
        if not (key.isdigit() or key in ("cpu", "disk", "mps")):
            raise ValueError(f"max memory device {key!r} is not a GPU index, cpu, mps or disk")
        out[int(key) if key.isdigit() else key] = value
    return out


def _hub_config(source: str, hub_kwargs: dict[str, Any]) -> dict:
    """``config.json`` of a hub repository (from the cache when ``local_files_only``)."""
    import json

    from huggingface_hub import hf_hub_download

    path = hf_hub_download(
        source,
        "config.json",
        revision=hub_kwargs.get("revision"),
        local_files_only=bool(hub_kwargs.get("local_files_only")),
    )
    return json.loads(Path(path).read_text(encoding="utf-8"))


def load_model(
    name_or_path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    local_files_only: bool | None = None,
    spec: ModelSpec | str | None = None,
    device_map: str | dict | None = None,
    max_memory: dict | None = None,
    check_padding: bool = True,
    **from_pretrained_kwargs: Any,
) -> DiffusionLM:
    """Load a masked diffusion LM by short name, local directory or hub id (notebooks 00, 03, 04).

    ``dtype`` defaults to the registry's (bf16 for LLaDA/Dream, float32 otherwise).
    ``trust_remote_code`` is forwarded only when True; models that need it raise
    :class:`RemoteCodeRequiredError` without it. Remote code is loaded through
    :mod:`dlmpaper.lm.remote_code` (the compatibility steps for transformers 5.x).
    Hub ids that are not cached fail fast with :class:`HubAccessError` when the hub is
    unreachable (``HF_HUB_OFFLINE=1``). ``local_files_only``: None = decide from hub access;
    True = cache only; False = let transformers go to the network without the quick check.
    ``spec``: a :class:`ModelSpec`, or ``"llada" | "dream" | "masked_lm"`` to override what
    the checkpoint's ``config.json`` says (:func:`spec_kind_from_config`).
    ``device_map`` / ``max_memory`` (accelerate): shard a large model over several GPUs or offload
    part of it to CPU; inputs then go to the device of the input embeddings. Further keyword
    arguments go to ``from_pretrained``. ``check_padding``: compare one padded and unpadded input
    and fall back to exact per-row computation when the model ignores its attention mask.
    """
    if isinstance(spec, ModelSpec):
        source = os.fspath(name_or_path)
    else:
        spec = check_model_name(name_or_path, spec=spec)
        source = str(paths.EMBEDDED_MODEL) if spec.hub_id is None else spec.hub_id
    dev = resolve_device(device) if device_map is None else None
    torch_dtype = resolve_dtype(dtype if dtype is not None else spec.dtype)
    if spec.needs_remote_code and not trust_remote_code:  # before any download
        raise _remote_code_required(spec.name, source)

    kwargs: dict[str, Any] = {}
    if revision is not None:
        kwargs["revision"] = revision
    if trust_remote_code:
        kwargs["trust_remote_code"] = True
    local = Path(source).expanduser()
    is_local = local.is_dir()
    if is_local:
        _require_local_checkpoint(local, embedded=spec.adapter == "embedded")
        verify_manifest(local, fix=EMBEDDED_FIX if spec.adapter == "embedded" else "re-download or rebuild it")
        source = str(local)
    elif not is_hub_id(source):
        raise UnknownModelError(
            f"unknown model {source!r}: not an existing directory or a hub id 'org/name'. "
            f"Known names: {_known_names()}."
        )
    elif local_files_only is not False:
        cached = model_cached(source, revision)
        if local_files_only and not cached:
            raise _hub_error(source, "local_files_only=True and it is not in the local Hugging Face cache")
        if not cached and not hub_available():
            why = "HF_HUB_OFFLINE is set" if offline() else "the hub is unreachable"
            raise _hub_error(source, f"{why} and it is not in the local Hugging Face cache")
        if cached and (local_files_only or not hub_available()):
            kwargs["local_files_only"] = True
    try:
        config = _read_local_config(local) if is_local else _hub_config(source, kwargs)
    except OSError as exc:
        raise _hub_error(source, f"config.json could not be fetched ({exc.__class__.__name__}: {exc})") from exc
    if spec.adapter == "masked_lm" and spec_kind_from_config(config) != "masked_lm":
        spec = spec_for(spec_kind_from_config(config), spec.name, spec.hub_id)  # an unregistered LLaDA/Dream hub id
    remote = bool(config.get("auto_map")) and (spec.needs_remote_code or trust_remote_code)
    if (spec.needs_remote_code or config.get("auto_map")) and not trust_remote_code and spec.adapter != "embedded":
        if spec.needs_remote_code or not _native_model_type(config):
            raise _remote_code_required(spec.name, source)

    model_kwargs = dict(from_pretrained_kwargs)
    if device_map is not None:
        model_kwargs["device_map"] = device_map
    if max_memory is not None:
        model_kwargs["max_memory"] = max_memory
    import transformers

    compat: list[str] = []
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
        if remote:
            from dlmpaper.lm.remote_code import load_remote_model

            model, compat = load_remote_model(
                source, spec.name, dtype=torch_dtype, hub_kwargs=kwargs, model_kwargs=model_kwargs
            )
        else:
            auto_model = getattr(transformers, spec.auto_class)
            model = auto_model.from_pretrained(source, dtype=torch_dtype, **kwargs, **model_kwargs)
    except OSError as exc:
        if is_local:
            raise ModelNotFoundError(
                f"{source}: loading failed ({exc.__class__.__name__}: {exc}). Fix: re-save or re-download the checkpoint."
            ) from exc
        raise _hub_error(source, f"download or cache lookup failed ({exc.__class__.__name__}: {exc})") from exc
    if device_map is None:
        model = model.to(dev)
    model = model.eval()
    if is_local and local.resolve().is_relative_to(paths.ROOT):
        source = str(local.resolve().relative_to(paths.ROOT))  # stable in manifests and notebooks
    lm = DiffusionLM(model, tokenizer, spec, hub_id=source, revision=revision)
    lm.compat_steps = tuple(compat)
    if check_padding:
        lm.check_padding()
    return lm


def _remote_code_required(name: str, source: str) -> RemoteCodeRequiredError:
    return RemoteCodeRequiredError(
        f"{name} ({source}) runs custom modelling code from its repository (config.json auto_map); "
        "pass trust_remote_code=True (CLI: --trust-remote-code) after reviewing that code."
    )


def _native_model_type(config: dict) -> bool:
    """Whether transformers itself knows ``config["model_type"]`` (no remote code needed)."""
    from transformers import CONFIG_MAPPING

    return str(config.get("model_type", "")) in CONFIG_MAPPING


def with_overrides(spec: ModelSpec, **changes: Any) -> ModelSpec:
    """A copy of ``spec`` with fields replaced (e.g. a stand-in with LLaDA's ids)."""
    return dataclasses.replace(spec, **changes)


def registry_table():
    """The known models as a table (notebook 00_models): name, hub id, family, special ids, logit shift, licence."""
    import pandas as pd

    rows = [
        {
            "name": spec.name,
            "hub_id": spec.hub_id or "data/embedded_model (shipped)",
            "family": spec.family,
            "mask_id": spec.mask_id if spec.mask_id is not None else spec.mask_token,
            "eos_id": spec.eos_id if spec.eos_id is not None else spec.eos_token,
            "eot_id": spec.eot_id if spec.eot_id is not None else spec.eot_token,
            "logits_shifted": spec.shift_logits,
            "needs_remote_code": spec.needs_remote_code,
            "dtype": spec.dtype,
            "licence": spec.licence,
        }
        for spec in REGISTRY.values()
    ]
    return pd.DataFrame(rows)
