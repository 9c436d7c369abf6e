"""Build the HDF5 training dataset: ``python training/generate_hdf5.py``; see --help."""

from pathlib import Path

from rtpose.tools.generate_hdf5 import main

if __name__ == "__main__":
    main(dataset_dir=Path(__file__).resolve().parents[1] / "dataset")
