"""Experiments: angle/range sweeps (Fig. 2), architecture ablation (Fig. 4), the timing table (Table 1)."""
