"""Where the AC penalty leaves the heads: the pruning table's spatial + retraining row with other seeds, on the CPU.

    python analysis/pruning_table_seeds.py     # ~15 min a seed on one thread of a loaded 2-core machine

Runs `neurosim.pruning.prune` on the shipped model as analysis/pruning_table.py's row 5 does (FIM x ASR,
budget 0.6, 2 retraining epochs, the first with the penalty), for retraining seeds 0, 1 and 2, on one CPU
thread, and writes the heads and neurons kept, M / M(1, 1, T) and the validation accuracy (rate_t) after each
epoch to pruning_table_seeds.json. No test-set evaluation: this measures where the masks end, which
pruning_table.findings.md compares with the GPU run's seed 0.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def main() -> None:
    import torch

    from neurosim.frontend.checkpoint import load_encoder
    from neurosim.pruning.data import subset, task_splits
    from neurosim.pruning.pipeline import PruneOptions, prune
    from neurosim.pruning.retrain import RetrainConfig

    torch.set_num_threads(1)
    base, ckpt = load_encoder(REPO / "models" / "spiking-sentiment-2l.pt")
    splits = task_splits(ckpt["vocab"], base.seq_len)
    calib = subset(splits["train"], 512, seed=0)
    out = []
    for seed in (0, 1, 2):
        start = time.time()
        opts = PruneOptions(temporal=False, budget=0.6, retrain_epochs=2, retrain=RetrainConfig(seed=seed))
        _, rec = prune(base, calib, opts, train=splits["train"], val=splits["val"], log=lambda s: print(s, flush=True))
        epochs = rec["retraining"]["spatial"]["epochs"]
        out.append(dict(seed=seed, heads_kept=rec["heads_kept"], neurons_kept=rec["neurons_kept"],
                        structural=rec["structural_ratio"], val=[e["val"] for e in epochs],
                        seconds=round(time.time() - start), machine="1 CPU thread of a shared 2-core machine",
                        torch=torch.__version__))
        (HERE / "pruning_table_seeds.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
