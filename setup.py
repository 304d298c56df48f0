from setuptools import find_packages, setup

setup(
    name="sgi2v",
    version="0.1.0",
    description="SG-I2V (ICLR 2025) trajectory control for Stable Video Diffusion, written from scratch in PyTorch",
    packages=find_packages(include=["model", "sampler", "guidance", "guidance.*", "weights", "weights.*"]),
    py_modules=["run"],
    package_data={"weights.tiny": ["sgi2v-tiny/*.json", "sgi2v-tiny/*/*.safetensors"],
                  "guidance.editor": ["static/editor.html", "static/editor.js", "static/editor.css"]},
    python_requires=">=3.10",
    # torch: any recent build; install the one for your machine first (README), pip then adds nothing.
    install_requires=["torch>=2.1", "safetensors>=0.4", "numpy", "pillow", "av", "tqdm"],
    # selenium drives Debian's chromium + chromedriver in the editor's browser tests (.ci/run installs them)
    extras_require={"test": ["pytest", "diffusers>=0.29", "transformers>=4.41", "selenium>=4.11"]},
    entry_points={"console_scripts": ["sgi2v=run:cli"]},
)
