"""`k8s`: Kubernetes manifests for serving models (Deployment, Service, HPA, PDB, or a KServe
InferenceService), sized from the models' measured memory and checked offline; see
`scorehouse.deploy.k8s`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .common import JsonOpt, RuntimeOpt, click_exc, where
from .output import console, emit

if TYPE_CHECKING:
    from ..deploy.k8s import Sizing

#: Merged into the root app by `cli/app.py` (`k8s`).
commands = typer.Typer()


@commands.command("k8s")
def k8s(
    refs: Annotated[list[str], typer.Argument(help="Models: churn@production fraud/3 path/to/model.shz …")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the manifests (and a kustomization.yaml).")],
    image: Annotated[str, typer.Option(help="Image with scorehouse on its PATH (`scorehouse container` builds one).")] = "scorehouse:latest",
    replicas: Annotated[int, typer.Option(help="Replicas: the Deployment's, and the autoscaler's minimum.")] = 2,
    max_replicas: Annotated[int | None, typer.Option(help="The autoscaler's maximum (default 3 x --replicas).")] = None,
    name: Annotated[str | None, typer.Option(help="Name of the objects (default: the first model's name).")] = None,
    namespace: Annotated[str | None, typer.Option(help="Namespace written into the manifests (default: none, kubectl's).")] = None,
    memory: Annotated[str | None, typer.Option(help="Memory request (e.g. 768Mi, 2Gi) instead of measuring it; the limit is twice it.")] = None,
    cpu: Annotated[str, typer.Option(help="CPU request per pod (no CPU limit: it would throttle the event loop).")] = "500m",
    cpu_target: Annotated[int, typer.Option(help="Average CPU utilisation (% of the request) the autoscaler keeps.")] = 70,
    drain: Annotated[int, typer.Option(help="Seconds a stopping pod keeps serving (preStop) before SIGTERM, while it leaves the Service's endpoints.")] = 5,
    env_secret: Annotated[str | None, typer.Option(help="Secret whose keys become environment variables (SCOREHOUSE_REGISTRY, SCOREHOUSE_ARTIFACTS, AWS_*...).")] = None,
    serve_arg: Annotated[list[str] | None, typer.Option("--serve-arg", help="One more `scorehouse serve` argument (repeatable), e.g. --serve-arg=--columns --serve-arg=strict.")] = None,
    baked: Annotated[bool, typer.Option(help="The image serves its own baked-in models (a `scorehouse container` image): set no command; REFs only size the memory.")] = False,
    kserve: Annotated[bool, typer.Option(help="A KServe InferenceService (scorehouse as a custom V2 predictor, RawDeployment) instead of the Deployment, Service and autoscaler.")] = False,
    trust: Annotated[bool, typer.Option(help="Trust pickled code in artifact files (when measuring, and passed to serve).")] = False,
    runtime: RuntimeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write Kubernetes manifests serving REFs: Deployment (V2 health probes, memory sized from
    a measured load of the models, preStop drain), Service, HorizontalPodAutoscaler,
    PodDisruptionBudget; checked against the Kubernetes API's models (the `kubernetes`
    client) when it is installed.

    Example: scorehouse k8s churn@production -o manifests/ --image registry.example/scorehouse:1 --env-secret scorehouse
    """
    from ..deploy import k8s as manifests

    extra = [*(["--trust"] if trust and not baked else []),
             *(["--runtime", runtime] if runtime and not baked else []), *(serve_arg or [])]
    options = manifests.K8sOptions(
        refs=list(refs), image=image, baked=baked, name=name, namespace=namespace,
        replicas=replicas, max_replicas=max_replicas, cpu=cpu, cpu_target=cpu_target,
        drain=drain, env_secret=env_secret, serve_args=extra, kserve=kserve)
    sizing = _given(memory) if memory is not None else _measured(refs, runtime, trust)
    built = manifests.build(options, sizing)
    checked = _check(built)
    paths = manifests.write(built, output)
    result = {"files": [str(p) for p in paths], "name": options.app,
              "memory_request": sizing.request, "memory_limit": sizing.limit,
              "memory_source": sizing.source, "checked_with": checked}
    emit(result, as_json, lambda: _say(result))


def _measured(refs: list[str], runtime: str | None, trust: bool) -> Sizing:
    """The memory request of a server of `refs`, from the resident memory of a real one."""
    from ..deploy.k8s import Sizing
    from ..deploy.memory import measure

    m = measure(list(refs), registry=where.registry, artifacts=where.artifacts,
                runtime=runtime, trust=trust)
    return Sizing.from_measured(m.resident, m.peak, f"measured: {m.resident:.0f} MiB resident "
                                f"(peak {m.peak:.0f} MiB) in a serve process of the models")


def _check(built: dict[str, dict]) -> str | None:
    """Check every manifest against the Kubernetes models; returns what checked them (None:
    the client is not installed). A manifest the API would refuse is scorehouse's bug:
    ScorehouseError, and nothing is written."""
    from ..deploy.k8s_check import check, client_version
    from ..errors import ScorehouseError, UsageError

    try:
        checked = f"kubernetes client {client_version()}"
    except UsageError:
        return None
    problems = [f"{file}: {p}" for file, m in built.items() for p in check(m)]
    if problems:
        raise ScorehouseError("the manifests do not pass the Kubernetes models: " + "; ".join(problems))
    return checked


def _given(text: str) -> Sizing:
    """--memory as a Sizing (limit twice the request); BadParameter when it does not parse."""
    from ..deploy.k8s import Sizing

    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Mi|Gi)", text.strip())
    if not m:
        raise click_exc.BadParameter(f"--memory takes a quantity like 768Mi or 2Gi, not {text!r}")
    mib = float(m.group(1)) * (1024 if m.group(2) == "Gi" else 1)
    request = int(-(-mib // 1))
    return Sizing(f"{request}Mi", f"{2 * request}Mi", f"given: --memory {text}")


def _say(result: dict) -> None:
    console.print(f"wrote {len(result['files'])} files for {result['name']} to "
                  f"{Path(result['files'][0]).parent}: " + ", ".join(Path(f).name for f in result["files"]))
    console.print(f"memory request {result['memory_request']}, limit {result['memory_limit']} "
                  f"({result['memory_source']})")
    console.print(f"checked against the {result['checked_with']} models" if result["checked_with"]
                  else "not checked: pip install 'scorehouse[kubernetes]' to check the manifests offline")
