"""Training: the loop every task and method shares (`loop`), the callbacks it calls from its own
step and epoch counters (`callbacks`; checkpoint selection is one of them, `selection`), the
checkpoints a run resumes from (`checkpoint`), data parallelism and FSDP2 (`distributed`), the
W&B side channel (`tracking`) and the full fine-tuning yardstick of Figure 2 (`reference`)."""
