"""The frozen app's entry point."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # no DataLoader workers in the frozen app, but torch may still spawn
    from myvlm_desktop.gui.app import main

    sys.exit(main())
