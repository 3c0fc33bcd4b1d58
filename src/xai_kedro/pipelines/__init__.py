"""One folder per pipeline, found by `find_pipelines`; `namespaced` builds each one's nodes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kedro.pipeline import Node, Pipeline, node, pipeline

# A node's inputs or outputs: one dataset name, several, or none.
Datasets = str | list[str] | None
# (function, inputs, outputs): a node named after its function.
Step = tuple[Callable[..., Any], Datasets, Datasets]


def namespaced(namespace: str, steps: Sequence[Step | Node]) -> Pipeline:
    """One folder's pipeline: its nodes grouped under ``namespace`` for kedro-viz while the
    datasets keep their catalog names (the catalog is flat). A (function, inputs, outputs)
    step becomes a node named after its function; a `Node` (another name) is kept as it is."""
    nodes = [
        step if isinstance(step, Node) else node(*step, name=step[0].__name__) for step in steps
    ]
    return pipeline(nodes, namespace=namespace, prefix_datasets_with_namespace=False)


def folder_steps(
    run: str, lister: Callable[..., Any], reader: Callable[..., Any], images: str
) -> list[Step]:
    """The first two steps of a separate run over an unlabeled folder with the deployed model
    (scoring, monitor): list the folder its `params:<run>` block names into `<run>_listing`,
    then read and decode those files with the model into ``images`` and `<run>_quarantine`."""
    return [
        (lister, f"params:{run}", f"{run}_listing"),
        (
            reader,
            [f"{run}_listing", "deployed_model", f"params:{run}"],
            [images, f"{run}_quarantine"],
        ),
    ]
