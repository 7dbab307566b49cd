r"""The paper's sweeps, as lists of runs: each run is a config argument plus field overrides.

    .venv/bin/python launch/sweep.py --sweep=configs/sweeps.py:gamma --base=configs/rec.py:model=qwen2_5_vl_3b \
        --workdir_root=/runs/gamma --print          # the commands, one per run
    .venv/bin/python launch/sweep.py --sweep=configs/sweeps.py:gamma --base=configs/rec.py:model=qwen2_5_vl_3b \
        --workdir_root=/runs/gamma --slurm=launch/slurm.sbatch   # submit each as a job

Sweeps:
  gamma     diversity smoothing gamma in {0.1, 0.3, 0.5, 0.7, 0.9} (Syn-GRPO)
  methods   every method of the baselines table (SFT, GRPO and its entropy / clip variants, offline generation,
            Syn-GRPO without R_div, Syn-GRPO, MM-UPT)
  data_size training set size in {400, 800, 1200, 1600, 2000} for GRPO and Syn-GRPO
"""
from syngrpo_jax import methods

SWEEPS = ("gamma", "methods", "data_size")


def get_sweep(name: str) -> list[dict]:
    """Runs of sweep `name`: dicts with `name` (the run's directory name) and `arg` (appended to the base config's
    argument)."""
    if name == "gamma":
        return [{"name": f"gamma{g}", "arg": f"method=syn_grpo,gamma={g}"} for g in (0.1, 0.3, 0.5, 0.7, 0.9)]
    if name == "methods":
        return [{"name": m, "arg": f"method={m}"} for m in methods.METHODS]
    if name == "data_size":
        return [{"name": f"{m}_n{n}", "arg": f"method={m},num_samples={n}"}
                for m in ("grpo", "syn_grpo") for n in (400, 800, 1200, 1600, 2000)]
    raise ValueError(f"sweep {name!r} is unknown; choose one of {SWEEPS}")


def get_config(arg=None):
    """Not a run config: `launch/sweep.py` reads get_sweep. Kept so --config=configs/sweeps.py fails clearly."""
    raise ValueError("configs/sweeps.py describes sweeps; run it through launch/sweep.py")
