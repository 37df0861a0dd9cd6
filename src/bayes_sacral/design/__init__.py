"""Follow-up trial design: power, assurance and sample size by simulation, exact where the maths allows."""
