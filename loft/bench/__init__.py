"""The training-step benchmark behind scripts/bench_step.py: `step` builds and times the methods,
`memory` holds the optimizer-state closed forms (LoFT paper, Appendix E.2), `report` the text table."""
