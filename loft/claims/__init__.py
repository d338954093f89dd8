"""The claims suite: claim files (spec), runs (execute), lr selection and comparisons (analysis),
the verdict rule (verdict), tests/bench claims (external) and the report (report, figures); the
halved WikiText-2 eval the causal-LM claims use is a task (tasks/lm/halved.py). Entry point: scripts/claims.py."""
