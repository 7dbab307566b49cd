"""The worker runs in vLLM's venv, which has no JAX: none of its modules may import JAX (nor, for the protocol
and server, torch). This package is the one place in syngrpo_jax that imports torch (extension, llm)."""
import subprocess
import sys


def test_worker_modules_never_import_jax():
    code = (
        "import sys\n"
        "import syngrpo_jax.rollout.vllm_worker.server, syngrpo_jax.rollout.vllm_worker.llm\n"
        "import syngrpo_jax.rollout.vllm_worker.__main__, syngrpo_jax.rollout.vllm_worker.venv_fixes\n"
        "import syngrpo_jax.protocol.rollout, syngrpo_jax.protocol.endpoints\n"
        "assert not [m for m in ('jax', 'flax', 'torch', 'vllm') if m in sys.modules], sorted(sys.modules)\n"
        "import syngrpo_jax.rollout.vllm_worker.extension\n"
        "assert 'torch' in sys.modules and 'jax' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
