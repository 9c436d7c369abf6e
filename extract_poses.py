"""Extract the people of whole datasets of videos and images: resumable, in parallel, on a cluster.

The same as ``python -m rtpose.tools.extract_poses``; see ``--help``.
"""

from rtpose.tools.extract_poses import main

if __name__ == "__main__":
    main()
