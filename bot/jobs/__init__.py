"""The job core: what a job is, where it is kept, and the rules it follows from admission to delivery.

It imports neither discord nor torch, so it can be unit-tested on its own and driven by any front end.
"""
