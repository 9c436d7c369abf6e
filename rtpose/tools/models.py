"""List the models: those present (path, size, sha256, OpenVINO models cached) and those to fetch.

    rtpose models             # the checkout's model/keras/, then the store ($RTPOSE_HOME)
"""

from __future__ import annotations

import argparse

from rtpose import store
from rtpose.tools.common import one_line_errors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    with one_line_errors():
        rows = [store.describe(name) for name in store.REGISTRY]
    print(f"store: {store.home()} (${store.HOME_ENV}); checkout: "
          f"{store.checkout_root() or 'none'}")
    for row in rows:
        print(f"\n{row['name']}: {row['description']}")
        if row["path"] is None:
            print(f"  not present: `rtpose fetch {row['name']}` writes "
                  f"{store.store_path(row['name'])}")
        else:
            print(f"  {row['path']}  {row['size'] / 1e6:.1f} MB  sha256 {row['sha256']}")
            print(f"  openvino: {row['openvino'] or 'not converted yet'}")
        print(f"  source: {row['source']}")


if __name__ == "__main__":
    main()
