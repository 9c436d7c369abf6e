"""Write the COCO loss masks: ``python training/generate_masks.py --mode train``; see --help."""

from rtpose.coco.generate_masks import main

if __name__ == "__main__":
    main()
