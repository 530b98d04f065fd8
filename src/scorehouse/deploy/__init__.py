"""Shipping scored models elsewhere (layer 11): Kubernetes manifests (`k8s.py`, checked by
`k8s_check.py`, sized by `memory.py`); the serverless handler is the `serverless` package.
"""
