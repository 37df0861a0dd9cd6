"""Classical statistics used beside the Bayesian models (the published analysis, reproduced)."""
