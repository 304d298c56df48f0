"""EDM Euler sampling and SVD conditioning (schedule.py, euler.py, conditioning.py)."""
