"""LLaDA and Dream through their remote code under the pinned transformers (dlmpaper.lm.remote_code).

The stand-ins in tests/upstream_like imitate the upstream classes' interfaces (upstream_like/README.md).
The first group of tests shows that each failure reported against the real code happens with them
too, so the later tests would have caught it; the rest checks the compatibility steps, recognition
by config, padding, sharding and the one-line errors. No downloads.
"""

from __future__ import annotations

import shutil

import pytest
import torch
import transformers
from standins import build_dream_remote, build_llada_remote, direct_upstream_model

from dlmpaper.lm import models, remote_code
from dlmpaper.lm.models import RemoteCodeRequiredError, check_model_name, load_model

PROMPTS = ["Can brain cells move? By movement I mean long distance migration", "Yes", "He likes it"]


def _fresh(tmp_path, builder, name, **kwargs):
    """A stand-in in its own directory: its remote module is imported afresh (unpatched)."""
    return builder(tmp_path / name, **kwargs)


def _remote_class(directory):
    config = transformers.AutoConfig.from_pretrained(directory, trust_remote_code=True)
    return config, remote_code.remote_class(str(directory), config)


# ------------------------------------------------------------------ the reported failures, reproduced
def test_llada_unpatched_lacks_post_init(tmp_path):
    directory = _fresh(tmp_path, build_llada_remote, "llada_a")
    with pytest.raises(AttributeError, match="all_tied_weights_keys"):
        transformers.AutoModel.from_pretrained(directory, trust_remote_code=True)


def test_llada_tie_weights_takes_no_recompute_mapping(tmp_path):
    directory = _fresh(tmp_path, build_llada_remote, "llada_b")
    config, cls = _remote_class(directory)
    remote_code._patch_init(cls)  # step 1 only
    with pytest.raises(TypeError, match="recompute_mapping"):
        cls.from_pretrained(directory, config=config)


def test_llada_forward_reads_use_cache_from_config(tmp_path):
    directory = _fresh(tmp_path, build_llada_remote, "llada_c")
    config, cls = _remote_class(directory)
    remote_code._patch_init(cls)
    remote_code._patch_tie_weights(cls)
    model = cls.from_pretrained(directory, config=config)
    with pytest.raises(AttributeError, match="use_cache"):
        model(input_ids=torch.tensor([[1, 2, 3]]))


def test_dream_unpatched_has_no_default_rope(tmp_path):
    directory = _fresh(tmp_path, build_dream_remote, "dream_a")
    with pytest.raises(KeyError, match="default"):
        transformers.AutoModel.from_pretrained(directory, trust_remote_code=True)


def test_dream_generation_config_validate_signature(tmp_path):
    directory = _fresh(tmp_path, build_dream_remote, "dream_b")
    config, cls = _remote_class(directory)
    for module in remote_code._remote_modules(cls):
        if isinstance(getattr(module, "ROPE_INIT_FUNCTIONS", None), dict):
            module.ROPE_INIT_FUNCTIONS = {**module.ROPE_INIT_FUNCTIONS, "default": remote_code.default_rope_parameters}
    with pytest.raises(TypeError, match="user_set_attributes"):
        cls.from_pretrained(directory, config=config)


def test_dream_rotary_buffer_is_left_uninitialised_without_repair(tmp_path, monkeypatch):
    directory = _fresh(tmp_path, build_dream_remote, "dream_c")
    monkeypatch.setattr(remote_code, "repair_rotary_state", lambda model, name: 0)
    model, _ = remote_code.load_remote_model(
        str(directory), "dream", dtype=torch.float32, hub_kwargs={"trust_remote_code": True}, model_kwargs={}
    )
    expected, _ = remote_code.default_rope_parameters(model.config)
    assert not torch.equal(model.model.rotary_emb.inv_freq, expected)  # what 5.x leaves behind


# ------------------------------------------------------------------ the fixes
@pytest.mark.parametrize("family", ["llada", "dream"])
def test_adapter_logits_equal_a_direct_upstream_forward(request, family):
    lm = request.getfixturevalue(f"{family}_remote")
    reference = direct_upstream_model(lm.hub_id, family)
    ids, _ = lm.batch([lm.encode_chat(PROMPTS[0])], n_masks=16)
    with torch.no_grad():
        raw = reference(input_ids=ids).logits.float()
    if family == "dream":  # Dream's output i-1 predicts token i; the adapter aligns it
        raw = torch.cat([raw[:, :1], raw[:, :-1]], dim=1)
    assert torch.equal(lm.logits(ids), raw)


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_padding_leaves_real_logits_unchanged_in_fp32(request, family):
    lm = request.getfixturevalue(f"{family}_remote")
    ids, mask = lm.batch([lm.encode_chat(p) for p in PROMPTS], n_masks=8)
    batched = lm.logits(ids, mask)
    for row, prompt in enumerate(PROMPTS):
        alone_ids, _ = lm.batch([lm.encode_chat(prompt)], n_masks=8)
        alone = lm.logits(alone_ids)[0]
        assert (batched[row, -alone.shape[0] :] - alone).abs().max() <= 1e-5


def test_compat_steps_are_recorded(llada_remote, dream_remote):
    assert set(llada_remote.compat_steps) == {"use_cache", "post_init", "tie_weights"}
    assert {"rope_default", "generation_validate", "rotary_recomputed"} <= set(dream_remote.compat_steps)


def test_dream_rotary_state_equals_its_formula(dream_remote):
    expected, _ = remote_code.default_rope_parameters(dream_remote.model.config)
    assert torch.equal(dream_remote.model.model.rotary_emb.inv_freq, expected)


def test_llada_rotary_cache_is_verified_and_repaired(llada_remote):
    rotary = llada_remote.model.model.transformer.blocks[0].rotary_emb
    cache = rotary.cache
    good = cache["rope_pos_sin"].clone()
    cache["rope_pos_sin"] = torch.full_like(good, float("nan"))
    try:
        assert remote_code.repair_rotary_state(llada_remote.model, "llada") == 1
        assert torch.allclose(cache["rope_pos_sin"], good, atol=1e-6)
    finally:
        cache["rope_pos_sin"] = good


def test_dream_diffusion_generate_runs(dream_remote):
    ids = torch.tensor([dream_remote.encode_chat("Yes")])
    out = dream_remote.model.diffusion_generate(ids, max_new_tokens=4, steps=4)
    assert out.shape == (1, ids.shape[1] + 4) and not (out == dream_remote.mask_id).any()


def test_ignored_attention_mask_is_detected_and_made_exact(tmp_path):
    directory = build_llada_remote(tmp_path / "llada_ignores_mask", ignore_attention_mask=True)
    with pytest.warns(UserWarning, match="ignores its attention mask"):
        lm = load_model(directory, trust_remote_code=True, dtype="float32")
    assert lm.padding_mode == "per_row"
    ids, mask = lm.batch([lm.encode_chat(p) for p in PROMPTS], n_masks=4)
    alone_ids, _ = lm.batch([lm.encode_chat(PROMPTS[1])], n_masks=4)
    assert torch.equal(lm.logits(ids, mask)[1, -alone_ids.shape[1] :], lm.logits(alone_ids)[0])


def test_mask_respecting_model_passes_the_padding_check(llada_remote):
    assert llada_remote.padding_mode == "relative" and llada_remote.check_padding() <= 1e-5


# ------------------------------------------------------------------ recognition by config
def test_local_directories_are_recognised_by_config(llada_remote_dir, dream_remote_dir, llada_remote, dream_remote):
    assert check_model_name(llada_remote_dir).adapter == "llada"
    assert check_model_name(dream_remote_dir).adapter == "dream"
    assert (llada_remote.mask_id, llada_remote.eos_id, llada_remote.shift_logits) == (126336, 126081, False)
    assert (dream_remote.mask_id, dream_remote.eos_id, dream_remote.shift_logits) == (151666, 151643, True)
    assert check_model_name(llada_remote_dir, spec="masked_lm").adapter == "masked_lm"
    with pytest.raises(ValueError, match="unknown spec"):
        check_model_name(llada_remote_dir, spec="llama")


def test_spec_kind_from_config():
    assert models.spec_kind_from_config({"model_type": "llada"}) == "llada"
    assert models.spec_kind_from_config({"auto_map": {"AutoModel": "modeling_llada.LLaDAModelLM"}}) == "llada"
    assert models.spec_kind_from_config({"model_type": "Dream"}) == "dream"
    assert models.spec_kind_from_config({"model_type": "bert"}) == "masked_lm"


def test_local_remote_code_needs_explicit_trust(llada_remote_dir):
    with pytest.raises(RemoteCodeRequiredError, match="trust_remote_code"):
        load_model(llada_remote_dir)


def test_registry_name_loads_from_the_hub_cache(hub_cache, llada_remote_dir):
    hub_cache("GSAI-ML/LLaDA-8B-Instruct", llada_remote_dir)
    lm = load_model("llada-8b-instruct", trust_remote_code=True, dtype="float32")
    assert (lm.name, lm.hub_id, lm.mask_id) == ("llada-8b-instruct", "GSAI-ML/LLaDA-8B-Instruct", 126336)
    assert "post_init" in lm.compat_steps


def test_dream_registry_name_loads_from_the_hub_cache(hub_cache, dream_remote_dir):
    hub_cache("Dream-org/Dream-v0-Instruct-7B", dream_remote_dir)
    lm = load_model("dream-7b-instruct", trust_remote_code=True, dtype="float32")
    assert (lm.name, lm.mask_id, lm.shift_logits, lm.padding_mode) == (
        "dream-7b-instruct",
        151666,
        True,
        "position_ids",
    )


def test_unregistered_hub_id_is_recognised_by_its_config(hub_cache, dream_remote_dir):
    hub_cache("someone/dream-finetune", dream_remote_dir)
    lm = load_model("someone/dream-finetune", trust_remote_code=True, dtype="float32")
    assert (lm.spec.adapter, lm.mask_id, lm.shift_logits) == ("dream", 151666, True)


def test_remote_code_failure_is_one_line(tmp_path, llada_remote_dir):
    broken = shutil.copytree(llada_remote_dir, tmp_path / "llada_broken")
    modeling = broken / "modeling_llada.py"
    modeling.write_text(
        modeling.read_text().replace("self.model = model\n", "raise RuntimeError('upstream changed')\n")
    )
    with pytest.raises(remote_code.RemoteCodeError) as err:
        load_model(broken, trust_remote_code=True)
    message = str(err.value)
    assert "\n" not in message and transformers.__version__ in message and "upstream changed" in message


# ------------------------------------------------------------------ sharding and bf16
def test_device_map_loads_and_probes(llada_remote_dir, llada_remote):
    from dlmpaper.core.probe import positional_probe

    lm = load_model(
        llada_remote_dir, trust_remote_code=True, dtype="float32", device_map="auto", max_memory={"cpu": "1GiB"}
    )
    assert lm.device == torch.device("cpu")
    sharded = positional_probe(lm, PROMPTS, n_masks=8, top_k=2, batch_size=2, progress=False).table
    plain = positional_probe(llada_remote, PROMPTS, n_masks=8, top_k=2, batch_size=2, progress=False).table
    assert sharded.equals(plain)


def test_bf16_probe_tables_do_not_depend_on_batch_size(llada_remote_dir):
    from dlmpaper.core.probe import positional_probe

    lm = load_model(llada_remote_dir, trust_remote_code=True, dtype="bfloat16")
    results = [positional_probe(lm, PROMPTS, n_masks=8, top_k=3, batch_size=b, progress=False) for b in (1, 2, 3)]
    assert all(r.meta["batch_size_used"] == 1 for r in results)
    for other in results[1:]:
        assert other.table.equals(results[0].table) and other.per_prompt.equals(results[0].per_prompt)


def _llada_reference():
    import importlib.util

    from dlmpaper import paths

    spec = importlib.util.spec_from_file_location("llada_reference", paths.BENCHMARKS / "llada_reference.py")
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    return reference.reference_llada_generate


def test_sampler_equals_llada_reference_on_remote_code(llada_remote):
    from dlmpaper.core import sampling

    prompts = [llada_remote.encode_chat(p) for p in PROMPTS]
    kw = dict(gen_length=8, block_length=4, steps=4)
    ours = sampling.generate(llada_remote, prompts, batch_size=3, progress=False, record=False, **kw)
    assert torch.equal(ours.tokens, _llada_reference()(llada_remote, prompts, **kw))


def test_bf16_sampler_equals_the_float64_reference_one_prompt_at_a_time(llada_remote_dir):
    from dlmpaper.core import sampling

    lm = load_model(llada_remote_dir, trust_remote_code=True, dtype="bfloat16")
    prompts = [lm.encode_chat(p) for p in PROMPTS]
    kw = dict(gen_length=8, block_length=4, steps=4)
    ours = sampling.generate(lm, prompts, batch_size=1, progress=False, record=False, **kw)
    assert torch.equal(ours.tokens, _llada_reference()(lm, prompts, **kw))


# ------------------------------------------------------------------ CLI and runner options
def test_parse_max_memory():
    assert models.parse_max_memory("0=20GiB, 1=20GiB,cpu=64GiB") == {0: "20GiB", 1: "20GiB", "cpu": "64GiB"}
    assert models.parse_max_memory(None) is None
    for bad in ("0:20GiB", "gpu=20GiB", "0=lots"):
        with pytest.raises(ValueError, match="max memory"):
            models.parse_max_memory(bad)


def test_cli_probe_runs_on_a_local_llada_directory(llada_remote_dir, tmp_path, capsys):
    import json

    import pandas as pd

    from dlmpaper import cli

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS), encoding="utf-8")
    out = tmp_path / "probe.csv"
    argv = [
        "probe",
        "--model",
        str(llada_remote_dir),
        "--prompts",
        str(prompts),
        "--n-masks",
        "8",
        "--n-boot",
        "10",
        "--dtype",
        "float32",
        "--out",
        str(out),
        "--quiet",
    ]
    assert cli.main(argv) == 2 and "--trust-remote-code" in capsys.readouterr().err
    assert cli.main(argv + ["--trust-remote-code", "--device-map", "auto", "--max-memory", "cpu=1GiB"]) == 0
    table = pd.read_csv(out)
    assert table["position"].max() == 8 and table["prompt_id"].nunique() == 3
    assert cli.main(argv + ["--trust-remote-code", "--max-memory", "cpu=1GiB"]) == 2
    assert "needs --device-map" in capsys.readouterr().err


def test_reproduce_checks_sharding_options_before_any_kernel():
    from dlmpaper.reproduce import PreflightError, run

    with pytest.raises(PreflightError, match="needs --device-map"):
        run(max_memory="0=1GiB", notebooks=["00"])
    with pytest.raises(PreflightError, match="max memory entry"):
        run(device_map="auto", max_memory="0=lots", notebooks=["00"])
