"""A plain, unbatched restatement of LLaDA's sampler (Nie et al. 2025, low-confidence remasking).

Written from the paper's description to check :func:`dlmpaper.core.sampling.generate` against
(``tests/unit/test_sampling.py``) and to time it (``benchmarks/bench_sampler.py``). One prompt
at a time, simple loops, full-sequence float64 softmax as in LLaDA's public sampler;
temperature 0 only, ``low_confidence`` or ``random`` remasking, optional classifier-free
guidance. As in the library, the mask token is never a candidate (its logit is set to
-inf: LLaDA's trained model gives it no mass, a random stand-in may). ``random`` draws,
per step, one uniform per masked position of the current block
from :func:`dlmpaper.core.sampling.row_generator` (the library's randomness contract).
Not part of the library.
"""

from __future__ import annotations

import torch

from dlmpaper.core.sampling import row_generator


@torch.no_grad()
def reference_llada_generate(
    model,
    prompt_ids_list,
    *,
    gen_length: int,
    block_length: int,
    steps: int,
    remasking: str = "low_confidence",
    cfg_scale: float = 0.0,
    seed: int = 0,
) -> torch.Tensor:
    """Generated ids ``(n_prompts, gen_length)``, each prompt decoded alone (no padding)."""
    assert gen_length % block_length == 0
    n_blocks = gen_length // block_length
    assert steps % n_blocks == 0
    steps_per_block = steps // n_blocks
    mask_id = model.mask_id
    answers = []
    for index, prompt in enumerate(prompt_ids_list):
        prompt = list(prompt)
        generator = row_generator(seed, index, model.device)
        x = torch.tensor([prompt + [mask_id] * gen_length], device=model.device)
        is_prompt = torch.zeros_like(x, dtype=torch.bool)
        is_prompt[:, : len(prompt)] = True
        for block in range(n_blocks):
            start = len(prompt) + block * block_length
            end = start + block_length
            n_masked = int((x[0, start:end] == mask_id).sum())
            # even split of the block's masks over its steps, the first ones get the remainder
            per_step = [n_masked // steps_per_block] * steps_per_block
            for i in range(n_masked % steps_per_block):
                per_step[i] += 1
            for k in per_step:
                is_mask = x == mask_id
                if cfg_scale > 0:
                    un_x = x.clone()
                    un_x[is_prompt] = mask_id
                    both = model.logits(torch.cat([x, un_x]))
                    cond, un = both[:1], both[1:]
                    logits = un + (cfg_scale + 1) * (cond - un)
                else:
                    logits = model.logits(x)
                logits[..., mask_id] = float("-inf")  # never commit the mask token itself
                x0 = logits.argmax(-1)  # temperature 0: Gumbel noise is the identity
                if remasking == "low_confidence":
                    probs = torch.softmax(logits.to(torch.float64), dim=-1)
                    x0_p = torch.gather(probs, -1, x0[..., None]).squeeze(-1)
                elif remasking == "random":
                    x0_p = torch.full(x.shape, float("-inf"), dtype=torch.float64, device=x.device)
                    block_masks = torch.nonzero(is_mask[0, start:end]).squeeze(-1) + start
                    x0_p[0, block_masks] = torch.rand(
                        len(block_masks), generator=generator, dtype=torch.float64, device=x.device
                    )
                else:
                    raise NotImplementedError(remasking)
                x0_p[:, end:] = float("-inf")
                x0 = torch.where(is_mask, x0, x)
                confidence = torch.where(is_mask, x0_p, torch.tensor(float("-inf"), dtype=torch.float64))
                chosen = torch.topk(confidence[0], k).indices
                x[0, chosen] = x0[0, chosen]
        answers.append(x[0, len(prompt) :].cpu())
    return torch.stack(answers)
