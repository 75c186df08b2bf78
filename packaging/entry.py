"""The frozen app's entry point, shared by both executables of the bundle: `myvlm` runs the command line,
`myvlm-desktop` (any other name) the app."""

import multiprocessing
import sys
from pathlib import Path

CLI_NAME = "myvlm"


def main() -> int:
    if Path(sys.executable).stem == CLI_NAME:
        from myvlm_desktop.cli import main as cli

        return cli()
    from myvlm_desktop.gui.app import main

    return main()


if __name__ == "__main__":
    multiprocessing.freeze_support()  # no DataLoader workers in the frozen app, but torch may still spawn
    sys.exit(main())
