"""The package imports without pulling JAX into the torch side's shared modules."""
import subprocess
import sys


def test_protocol_import_is_jax_free():
    code = "import sys, syngrpo_jax, syngrpo_jax.protocol; assert 'jax' not in sys.modules, 'jax imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_atomic_write_and_run_dir_are_jax_free():
    """The data server (synth_torch) and launchers may use the one atomic write and the run directory's layout."""
    code = ("import sys, syngrpo_jax.atomic_write, syngrpo_jax.run_dir\n"
            "bad = sorted(m for m in ('jax', 'numpy', 'torch') if m in sys.modules)\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
