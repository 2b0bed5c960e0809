"""Names and defaults shared by the pruning modules and the command line (no torch import).

Where each default comes from. The issue's text gives the paper's budget, PCA
variance and eq. 10's base; the paper's Table I (retraining hyperparameters)
could not be read here (only the abstract is reachable), so the retraining
numbers are ours, chosen on the shipped model and marked as such. They are the
one place to change when Table I's values are known.
"""

# score variant -> (weigh heads by their attention-output ASR, weigh neurons by their own ASR)
VARIANTS = {"fim": (False, False), "fim_asr_neuron": (False, True), "fim_asr_attn": (True, False),
            "fim_asr": (True, True)}
VARIANT_LABELS = {"fim": "FIM", "fim_asr_neuron": "FIM + ASR (neurons)", "fim_asr_attn": "FIM + ASR (attention)",
                  "fim_asr": "FIM + ASR (both)"}
PCA_DATA = ("running", "step", "samples")

# -- the paper's (as the issue states them) --
DEFAULT_BUDGET = 0.6         # M_c = 0.6 x M(1, 1, T), structural (Appendix B, last paragraph)
DEFAULT_VARIANCE = 0.99999   # PCA explained variance for c^l
DEFAULT_B = 1.02             # eq. 10's base
DEFAULT_VARIANT = "fim_asr"  # FIM x ASR for heads and neurons: the paper's best score (Table II)

# -- ours (Table I not readable here) --
DEFAULT_CALIBRATION = 512    # sentences: ~5 % of the shipped model's training set
DEFAULT_RETRAIN_EPOCHS = 2   # per stage, so the default run is the paper's order (prune -> retrain -> prune ->
                             # retrain); about 30 s an epoch for the shipped model on 2 CPU threads
DEFAULT_PENALTY_EPOCHS = 1   # epochs with the AC penalty and activity loss, then the plain loss (staged)
DEFAULT_LAMBDA = 1.0         # on M / M(1, 1, T), so lambda is scale free: cutting #C by 0.01 is worth 0.01 nats
DEFAULT_ETA = 1e-3           # on sum_l ||a_l||_2, about 40 on the shipped model: adds ~0.04 to a loss of 0.1-0.5,
                             # a push toward sparse firing that does not outweigh the task
DEFAULT_LR = 5e-4            # AdamW; a quarter of the shipped model's training rate (2e-3): fine-tuning
