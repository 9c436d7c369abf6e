"""Check a running dataset server: pull a few batches and print their shapes and the rate.

Training code uses the client class itself, ``rtpose.data.client.DataGeneratorClient``.
"""

from rtpose.tools.ds_generator_client import main

if __name__ == "__main__":
    main()
