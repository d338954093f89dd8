"""The claims suite: claim files (spec), runs (execute), lr selection and comparisons (analysis),
the verdict rule (verdict), tests/bench claims (external), the report (report, figures), and the
halved WikiText-2 eval the causal-LM claims use (lm_task). Entry point: scripts/claims.py."""
