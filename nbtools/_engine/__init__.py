"""The engine: sends a batch's requests and fills its rows. It alone knows the wire (wire.py, replies.py), imports
only nbtools._base and itself, and never IPython or markup. launch.py chooses how a batch runs."""
