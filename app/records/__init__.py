"""Clinical records of a consultation: documents the GP attaches and the specialist's report."""
