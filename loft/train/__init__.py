"""Parts of the training loop (loft/training.py drives them): callbacks that the loop calls from
its own step and epoch counters (`callbacks`), and checkpoint selection as one of them
(`selection`). Issue 12 moves the loop and the checkpoint file here too."""
