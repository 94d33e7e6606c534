"""The remote-runs family: backends that stage a run directory on a login node over a
transport and follow it with one poller (the batch schedulers and the ssh backend)."""
