"""Calling: calls, participants, media operations and recordings, driven by the Call Automation API and by
commgrid's simulation of the other end of the line."""
