"""The frozen app's entry point, shared by both commands of the bundle: started as `myvlm` it runs the command
line, under any other name (`myvlm-desktop`) the app.

The name comes from argv[0], not sys.executable: on Linux and macOS `myvlm` is a symlink to `myvlm-desktop`,
and the bootloader resolves sys.executable through it.
"""

import multiprocessing
import sys
from pathlib import Path

CLI_NAME = "myvlm"


def wants_cli(argv0: str) -> bool:
    return Path(argv0).stem == CLI_NAME  # "myvlm", "/opt/myvlm-desktop/myvlm", "myvlm.exe"


def main() -> int:
    if wants_cli(sys.argv[0]):
        from myvlm_desktop.cli import main as cli

        return cli()
    from myvlm_desktop.gui.app import main

    return main()


if __name__ == "__main__":
    multiprocessing.freeze_support()  # no DataLoader workers in the frozen app, but torch may still spawn
    sys.exit(main())
