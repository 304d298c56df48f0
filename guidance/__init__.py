"""SG-I2V (Namekata et al., ICLR 2025): trajectory control by latent optimisation; sg_i2v.py is the entry.

Public names: the method's settings and step hook (sg_i2v.py), trajectories (trajectory.py) and drawing
them (draw.py). The steps of the paper live in features.py, loss.py, optimize.py and frequency.py.
"""
from guidance.draw import draw_condition, draw_overlay
from guidance.sg_i2v import SGI2VConfig, make_step_hook, optimised_steps
from guidance.trajectory import Trajectories, TrajectoryError, latent_boxes, load_trajectories, rescale

__all__ = ["SGI2VConfig", "Trajectories", "TrajectoryError", "draw_condition", "draw_overlay", "latent_boxes",
           "load_trajectories", "make_step_hook", "optimised_steps", "rescale"]
