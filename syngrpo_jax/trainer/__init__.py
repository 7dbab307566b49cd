"""The RL trainer, in phases: `Trainer` (trainer.py) built once from the config; each step a sequence of named
phases (phases.py) timed by `Chrono` (chrono.py); the host-side state every process must agree on in `HostState`
(host_state.py); the arrays and the jitted update in `Learner` (learner.py); config checks (checks.py); the
summary table (summary.py). docs/DESIGN.md ("The trainer") describes the phases and seams."""
