"""Installs the FLAN instruction-tuning project: task definitions, trainer, evaluation, launchers."""

from setuptools import find_packages, setup

setup(
    name="flan-jax",
    version="0.1.0",
    description="FLAN instruction tuning in JAX: SeqIO tasks, a T5X-compatible trainer, zero-shot evals.",
    python_requires=">=3.11",
    packages=find_packages(include=["flan_tasks*", "flan_trainer*", "evals*", "launch*"]),
    package_data={"": ["*.gin", "*.json"]},
    include_package_data=True,
    install_requires=[
        "jax",
        "flax",
        "optax",
        "orbax-checkpoint",
        "seqio",
        "tensorflow-datasets",
        "tensorflow-text",
        "gin-config",
        "sentencepiece",
        "clu",
        "tqdm",
        "sacrebleu",
        "rouge-score",
        "scikit-learn",
        "safetensors",
        "matplotlib",
    ],
    extras_require={
        "test": ["pytest", "pytest-xdist", "ruff"],
        "interop": ["torch", "transformers"],
    },
    entry_points={
        "console_scripts": [
            "flan-tasks=flan_tasks.__main__:main",
            "flan-train=flan_trainer.main:main",
            "flan-eval=evals.__main__:main",
        ]
    },
)
