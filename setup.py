from setuptools import find_packages, setup

setup(
    name="sgi2v",
    version="0.1.0",
    description="SG-I2V (ICLR 2025) trajectory control for Stable Video Diffusion, written from scratch in PyTorch",
    packages=find_packages(include=["model", "sampler", "guidance", "weights", "weights.*"]),
    py_modules=["run"],
    package_data={"weights.tiny": ["sgi2v-tiny/*.json", "sgi2v-tiny/*/*.safetensors"]},
    python_requires=">=3.10",
    # torch: any recent build; install the one for your machine first (README), pip then adds nothing.
    install_requires=["torch>=2.1", "safetensors>=0.4", "numpy", "pillow", "av", "tqdm"],
    extras_require={"test": ["pytest", "diffusers>=0.29", "transformers>=4.41"]},
    entry_points={"console_scripts": ["sgi2v=run:cli"]},
)
