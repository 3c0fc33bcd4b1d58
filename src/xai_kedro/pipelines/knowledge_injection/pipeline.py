"""The knowledge_injection pipeline: which node reads and writes which dataset (names shared with the catalog)."""

from kedro.pipeline import Node, Pipeline, node, pipeline

from xai_kedro.spark.silver_nodes import compute_silver_ood, compute_silver_xai, silver_inputs

from .nodes import (
    build_knowledge_injection,
    diagnose_failures,
    generate_training_images,
    knowledge_injection_gallery,
    plot_knowledge_injection,
    refine_adapters,
    silver_inputs_node,
    write_knowledge_injection_report,
)


def _diagnose_and_generate() -> list[Node]:
    """Failures of the selected adapters on the validation split, then the images made for them."""
    return [
        node(
            silver_inputs_node(diagnose_failures),
            inputs=[
                *silver_inputs("xai_silver"),
                "params:knowledge_injection",
                "params:ingestion.source",
            ],
            outputs=["injection_failures", "injection_failure_profile"],
            name="diagnose_failures",
        ),
        node(
            generate_training_images,
            inputs=[
                "injection_failures",
                "bronze_images",
                "params:knowledge_injection",
                "params:ingestion.source",
            ],
            outputs="knowledge_injection_images",
            name="generate_training_images",
        ),
    ]


def _refine_and_score() -> list[Node]:
    """Retrain each selected adapter per arm and seed; the refined adapters go through the very
    Silver stages (the same nodes) the zoo went through."""
    return [
        node(
            silver_inputs_node(refine_adapters),
            inputs=[
                *silver_inputs("adapter_training.zoo"),
                "knowledge_injection_images",
                "params:knowledge_injection",
            ],
            outputs="injection_adapter_zoo",
            name="refine_adapters",
        ),
        node(
            compute_silver_xai,
            inputs=silver_inputs("xai_silver", "injection_adapter_zoo"),
            outputs="injection_silver_xai",
            name="score_refined_xai",
        ),
        node(
            compute_silver_ood,
            inputs=silver_inputs("ood", "injection_adapter_zoo"),
            outputs="injection_silver_ood",
            name="score_refined_ood",
        ),
    ]


def _measure_and_report() -> list[Node]:
    """Gold `knowledge_injection` against the baseline, its plot, gallery and report."""
    return [
        node(
            build_knowledge_injection,
            inputs=[
                "silver_xai",
                "silver_ood",
                "injection_silver_xai",
                "injection_silver_ood",
                "injection_adapter_zoo",
                "params:knowledge_injection",
            ],
            outputs="knowledge_injection",
            name="build_knowledge_injection",
        ),
        node(
            plot_knowledge_injection,
            inputs="knowledge_injection",
            outputs="knowledge_injection_plot",
            name="plot_knowledge_injection",
        ),
        node(
            knowledge_injection_gallery,
            inputs=[
                "injection_failures",
                "knowledge_injection_images",
                "bronze_images",
                "adapter_zoo",
                "params:knowledge_injection",
            ],
            outputs="knowledge_injection_gallery",
            name="knowledge_injection_gallery",
        ),
        node(
            write_knowledge_injection_report,
            inputs=[
                "injection_failure_profile",
                "knowledge_injection",
                "knowledge_injection_images",
                "params:knowledge_injection",
            ],
            outputs="knowledge_injection_report",
            name="write_knowledge_injection_report",
        ),
    ]


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [*_diagnose_and_generate(), *_refine_and_score(), *_measure_and_report()],
        namespace="knowledge_injection",
        prefix_datasets_with_namespace=False,
    )
