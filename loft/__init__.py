"""Reference runner for low-rank and orthogonal fine-tuning research (LoFT, LOFT)."""
