"""pixelda-tf: PixelDA (Bousmalis et al., CVPR 2017) in TensorFlow 2 / Keras 3."""

import setuptools

setuptools.setup(
    name="pixelda-tf",
    version="0.1.0",
    description="Unsupervised pixel-level domain adaptation (PixelDA) in "
                "TensorFlow 2 / Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["pixelda_tf", "pixelda_tf.*"]),
    package_data={"pixelda_tf": ["data/*.txt", "data/*.json"]},
    # Each binary also runs as `python -m pixelda_tf.<name>`.
    entry_points={"console_scripts": [
        f"pixelda-{name}=pixelda_tf.{module}:run" for name, module in (
            ("train", "train"), ("evaluate", "evaluate"), ("adapt", "adapt"),
            ("export", "export"), ("classify", "classify"),
            ("seeds", "seeds"), ("bench", "bench"), ("refine", "refine"),
            ("rank", "rank"),
            ("data", "data.__main__"))]},
    install_requires=[
        "keras>=3.5,<4",
        "tensorflow-datasets>=4.9",
        # TFDS 4.9.10 imports importlib_resources without declaring it.
        "importlib_resources",
        "absl-py>=1.0",
        "numpy",
        "pillow",
        # Natural photos for the offline MNIST-M variant, and USPS's .h5 layout.
        "scikit-image",
        "h5py",
        # tf.summary's writer; the TensorFlow 2.21 wheels no longer pull it in.
        "tensorboard",
    ],
    extras_require={
        # The CPU wheel: the quick install on laptops and CI.
        "cpu": ["tensorflow-cpu>=2.16,<2.22"],
        # NVIDIA GPUs: TensorFlow with its CUDA libraries from pip.
        "gpu": ["tensorflow[and-cuda]>=2.16,<2.22"],
        # tfds.testing imports dill; pytest-xdist runs the suite on two
        # workers (`-n 2`, README). tensorflow-serving-api is installed
        # separately with --no-deps (see README): it requires the `tensorflow`
        # wheel, which would be installed over tensorflow-cpu.
        "test": ["pytest>=7", "pytest-xdist>=3", "dill"],
        # benchmarks/accuracy.py's accuracy-vs-time plot.
        "bench": ["matplotlib"],
    },
)
