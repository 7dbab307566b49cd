"""syngrpo_jax: the JAX side of Syn-GRPO (policy model, GRPO, rewards, data, trainer).

Kept import-light on purpose: `syngrpo_jax.protocol` is imported by the torch data server and the vLLM worker,
which must not pull in JAX. Import submodules explicitly. The JAX side never imports torch, with one exception:
`syngrpo_jax.rollout.vllm_worker`, the vLLM rollout worker, which runs in vLLM's own environment (torch, no JAX).
"""
