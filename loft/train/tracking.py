"""Weights & Biases side channel. Offline by default (`wandb sync <dir>` uploads later),
`disabled` in tests; records never depend on it."""
from __future__ import annotations

import os


class Tracker:
    def __init__(self, logger_cfg, run_id: str, name: str, config: dict, group: str, enabled: bool = True):
        self.run = None
        if logger_cfg.mode == "disabled" or not enabled:  # only rank 0 logs
            return
        import wandb

        os.makedirs(logger_cfg.dir, exist_ok=True)
        # A stable id means a rerun or resumed run continues the same W&B run.
        self.run = wandb.init(project=logger_cfg.project, entity=logger_cfg.get("entity"), mode=logger_cfg.mode,
                              dir=logger_cfg.dir, id=run_id, resume="allow", name=name, group=group,
                              config=config, settings=wandb.Settings(silent=True))

    def log(self, metrics: dict, step: int) -> None:
        if self.run is not None:
            self.run.log(metrics, step=step)

    def log_adapter(self, folder, sha256: str) -> None:
        """The saved adapter as a W&B model artifact (offline: kept in the run, `wandb sync` uploads it)."""
        if self.run is not None:
            import wandb

            artifact = wandb.Artifact(f"adapter-{self.run.id}", type="model", metadata={"sha256": sha256})
            artifact.add_dir(str(folder))
            self.run.log_artifact(artifact)

    def finish(self, summary: dict) -> None:
        if self.run is not None:
            self.run.summary.update(summary)
            self.run.finish()
