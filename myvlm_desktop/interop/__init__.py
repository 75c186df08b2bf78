"""Names and concepts in and out of files other apps read: XMP face regions and keywords, concept packs.

Reads and writes files only: no Qt, no models, no library database.
"""
