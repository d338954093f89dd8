"""Reference runner for low-rank and orthogonal fine-tuning research (LoFT, LOFT)."""

import logging

# bitsandbytes (imported by peft) warns on every CPU import that its optional `kernels` package is
# absent; its pure-torch CPU path is what we use, so the line is noise before every error message.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
