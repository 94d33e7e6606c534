"""Code that runs on the cluster: the task runner, the login-node agent and the
Kubernetes entry point.

Nothing here imports the rest of clustrix or its dependencies: these files are copied
to clusters as they are and run with the standard library and cloudpickle only.
"""
