"""The trajectory editor: `python run.py --edit` serves one page (static/) that draws boxes and paths over the
image, saves the trajectory JSON of guidance/trajectory.py and runs run.py's generation (server.py)."""
