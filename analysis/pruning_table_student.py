"""analysis/pruning_table.py on the distilled SpikingBERT student (WordPiece tokens instead of words).

    python analysis/pruning_table_student.py --device cuda [pruning_table.py's options]

The same table, rows and settings as pruning_table.py (run with its options;
--model defaults to models/spikingbert-minilm-polarity.pt and --out to
analysis/pruning_table_student). The one difference: the task's sentences are
encoded with the tokenizer the student's checkpoint carries
(neurosim.frontend.distill.encode_for_student) instead of a word vocabulary,
on the same polarity split. The hand-written reading is in
pruning_table_student.findings.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
STUDENT = REPO / "models" / "spikingbert-minilm-polarity.pt"


def student_splits(model_path: Path):
    """A drop-in for neurosim.pruning.data.task_splits that encodes with the student's own tokenizer."""
    import torch

    sys.path.insert(0, str(REPO / "models" / "training"))
    import distill_data

    from neurosim.frontend.distill import encode_for_student

    ckpt = torch.load(model_path, map_location="cpu", weights_only=True)

    def task_splits(vocab, seq_len: int, seed: int = 0):
        parts = distill_data.splits(ckpt.get("task", "polarity"), seed=seed)
        return {name: (encode_for_student(ckpt, texts, seq_len), torch.from_numpy(labels))
                for name, (texts, labels) in zip(("train", "val", "test"), parts)}
    return task_splits


def main() -> None:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model", type=Path, default=STUDENT)
    pre.add_argument("--out", type=Path, default=HERE / "pruning_table_student")
    known, rest = pre.parse_known_args()
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(HERE))
    import pruning_table

    import neurosim.pruning.data as data

    if "--reuse" not in rest:
        data.task_splits = student_splits(known.model)   # pruning_table.run imports it when it runs
    sys.argv = [sys.argv[0], "--model", str(known.model), "--out", str(known.out), *rest]
    pruning_table.main()


if __name__ == "__main__":
    main()
