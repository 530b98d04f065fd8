"""Shipping scored models elsewhere (layer 11): everything here builds on `registry`,
`loading` and `artifact`, and never on a channel's internals.

Hermetic bundle and container image (`scorehouse bundle`, `doctor`, `container`):

    lock.py       a target platform, pip's download of a wheelhouse, the hash-pinned lock
    bundle.py     `bundle.json`, the artifacts with their sha256, install.sh: `build_bundle`
    doctor.py     does this environment match a bundle's lock? (`check_environment`)
    container.py  a build context (Containerfile, entrypoint) and `podman`/`docker build`
    templates.py  the texts of install.sh, the Containerfile and its entrypoint

Kubernetes manifests (`scorehouse k8s`): `k8s.py`, checked offline by `k8s_check.py`,
sized by `memory.py`. The serverless handler is the `serverless` package (a channel).
"""
