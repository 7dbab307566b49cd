"""Runs inside vLLM's worker process(es) (`worker_extension_cls`): load pushed weights in place.

vLLM mixes this class into its Worker, so `self` is the worker that owns the model. `collective_rpc` calls
`syngrpo_load_weights(path, table)` on every worker; only plain data crosses process boundaries (a path and a
table of (name, dtype, shape, offset)), never tensors. The weights go through the worker's own
`reload_weights` (checkpoint names and layouts in; the model's loaders fuse q/k/v, repack for the CPU kernels,
shard for tensor parallelism), the only in-place path that works on the CPU backend: `model.load_weights`
directly fails there on repacked linear layers.

One thing reload_weights misses: with tied embeddings the LM head shares the embedding's weight but has no
checkpoint tensor of its own, so it is never "loaded" and its derived state (the CPU backend's packed GEMM
copy of the weight) keeps the old values. `refresh_tied_heads` rebuilds it from the updated shared weight.
"""
from __future__ import annotations

import mmap

import torch

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def iter_tensors(buffer, table):
    """(name, tensor) for each [name, dtype, shape, offset] of `table`, viewing `buffer` (no copy)."""
    for name, dtype, shape, offset in table:
        torch_dtype = TORCH_DTYPES[dtype]
        count = 1
        for d in shape:
            count *= int(d)
        yield name, torch.frombuffer(buffer, dtype=torch_dtype, count=count, offset=int(offset)).view(*shape)


def refresh_tied_heads(model: torch.nn.Module) -> int:
    """Re-run weight post-processing of every LM head whose weight is an embedding's; returns how many."""
    from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead, VocabParallelEmbedding

    embeddings = {m.weight.data_ptr() for m in model.modules()
                  if isinstance(m, VocabParallelEmbedding) and not isinstance(m, ParallelLMHead)}
    heads = [m for m in model.modules() if isinstance(m, ParallelLMHead) and m.weight.data_ptr() in embeddings]
    for head in heads:
        head.quant_method.process_weights_after_loading(head)
    return len(heads)


class WeightLoader:
    def syngrpo_load_weights(self, path: str, table: list) -> int:
        """Load every tensor of `table` from the raw file at `path`; returns how many were loaded."""
        with open(path, "rb") as f:
            # A private (copy-on-write) map: writable for torch.frombuffer, never written, so nothing is copied.
            buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        try:
            self.reload_weights(weights_iterator=iter_tensors(buffer, table))
            refresh_tied_heads(self.model_runner.get_model())
        finally:
            try:
                buffer.close()
            except BufferError:  # a view still alive (only if a loader kept one); the GC closes it later
                pass
        return len(table)
