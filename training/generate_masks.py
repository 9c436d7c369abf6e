"""Write the COCO loss masks: ``python training/generate_masks.py --mode train``; see --help."""

from pathlib import Path

from rtpose.tools.generate_masks import main

if __name__ == "__main__":
    main(dataset_dir=Path(__file__).resolve().parents[1] / "dataset")
