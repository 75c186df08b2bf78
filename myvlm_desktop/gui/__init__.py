"""PySide6 widgets and Qt models: a thin face on the pipeline. The only package that imports Qt."""
