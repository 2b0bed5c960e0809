"""Names and defaults shared by the pruning modules and the command line (no torch import)."""

# score variant -> (weigh heads by their attention-output ASR, weigh neurons by their own ASR)
VARIANTS = {"fim": (False, False), "fim_asr_neuron": (False, True), "fim_asr_attn": (True, False),
            "fim_asr": (True, True)}
VARIANT_LABELS = {"fim": "FIM", "fim_asr_neuron": "FIM + ASR (neurons)", "fim_asr_attn": "FIM + ASR (attention)",
                  "fim_asr": "FIM + ASR (both)"}
DEFAULT_VARIANCE = 0.99999   # PCA explained variance for c^l
DEFAULT_B = 1.02             # eq. 10's base
PCA_DATA = ("running", "step", "samples")
