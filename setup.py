from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="fgdiscover",
    version="0.1.0",
    description="Unsupervised fine-grained category discovery with FineGAN",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["fgdiscover", "fgdiscover.*"]),
    # the published CUB / Dogs / Cars numbers `fgdiscover benchmark` reports beside its own
    package_data={"fgdiscover": ["published.csv"]},
    install_requires=[
        # pinned: these builds lie on the project's machines' disk (see README)
        "torch==2.14.1",
        "torchvision==0.29.1",
        "numpy>=1.24",
        "scipy>=1.10",
        "scikit-learn>=1.3",
        "faiss-cpu>=1.8",
        "pandas>=2.0",
        "matplotlib>=3.7",
        "umap-learn>=0.5.5",
        "click>=8.1",
        "tqdm>=4.66",
        "Pillow>=10.0",
    ],
    extras_require={
        # GPU k-means: `pip uninstall -y faiss-cpu && pip install "fgdiscover[gpu]"`
        # (both wheels provide the `faiss` module)
        "gpu": ["faiss-gpu>=1.8"],
        # selenium drives Debian's chromium in the report test (.ci/run installs it)
        "test": ["pytest>=7.4", "hypothesis>=6.0", "selenium>=4.15"],
    },
    entry_points={"console_scripts": ["fgdiscover=fgdiscover.cli:main"]},
)
