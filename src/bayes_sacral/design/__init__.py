"""Follow-up trial design for any study card: power, probability of success and sample size by simulation, exact where
the maths allows.

``config`` (design configs validated against the card), ``context`` (truth and analysis prior), ``exact``,
``simulate`` (vectorised) and ``full_model`` (the PyMC score model refitted per trial) engines, ``runner``
(batches, Dask, resume) and ``output`` (files, figures, protocol paragraph).
"""
